"""With the default console email backend, the login email printed into the server's log
carries no working token."""

import contextlib
import io
import re

from django.test import override_settings

from accounts.models import DeviceCode
from cueapi.testing import BaseTestCase


@override_settings(EMAIL_BACKEND="accounts.device.MaskedConsoleEmailBackend", BASE_URL="http://testserver")
class ConsoleLoginEmailTests(BaseTestCase):
    def test_the_printed_link_has_its_token_masked(self):
        self.post("/v1/auth/device-code", {"device_code": "ABCD-EFGH"}, anonymous=True)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            r = self.post("/v1/auth/device-code/submit-email",
                          {"device_code": "ABCD-EFGH", "email": "new@example.com"}, anonymous=True)
        self.assertEqual(r.json(), {"status": "email_sent"})
        output = printed.getvalue()
        token = DeviceCode.objects.get().verification_token
        self.assertNotIn(token, output)
        self.assertIn("To: new@example.com", output)
        self.assertIn("set EMAIL_URL", output)
        link = re.search(r"http://testserver(/v1/auth/verify\S+)", output).group(1)
        self.assertEqual(link, "/v1/auth/verify?token=HIDDEN&device_code=ABCD-EFGH")
        self.assertContains(self.client.get(link), "Invalid verification token", status_code=400)
        # The real link still logs in: only the log copy is masked.
        self.assertContains(self.client.get(f"/v1/auth/verify?token={token}&device_code=ABCD-EFGH"), "You're in.")
