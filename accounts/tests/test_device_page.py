"""The /auth/device page shows only well-formed codes, runs no inline script, and every HTML
page the server renders carries a Content-Security-Policy that forbids inline scripts."""

import re
from urllib.parse import quote

from django.contrib.staticfiles import finders

from cueapi.testing import BaseTestCase

INJECTION = '</script><script>document.title="pwned"</script>'


class DevicePageTests(BaseTestCase):
    def test_an_injected_code_is_refused_and_not_echoed(self):
        page = self.client.get("/auth/device?code=" + quote(INJECTION))
        self.assertEqual(page.status_code, 400)
        html = page.content.decode()
        self.assertNotIn("pwned", html)
        self.assertNotIn("<script", html)
        self.assertIn("This login link is not valid", html)
        self.assertNotIn('id="login"', html)  # no form to submit a bad code with

    def test_codes_that_are_not_letters_digits_or_hyphens_are_refused(self):
        for code in ("ABCD EFGH", "ABCD-EFG<", "abc\u00e9defg", "ABCD-EFGH\n", "short", "A" * 129):
            with self.subTest(code=code):
                self.assertEqual(self.client.get("/auth/device", {"code": code}).status_code, 400)
                self.assertError(self.post("/v1/auth/device-code", {"device_code": code}, anonymous=True),
                                 400, "invalid_device_code", "Device code must be 6-128 letters, digits or hyphens")

    def test_a_valid_code_is_data_not_script(self):
        for code in ("ABCD-EFGH", "k7qxm2pa"):  # what `cueapi login` and `cueapi-worker login` pick
            with self.subTest(code=code):
                html = self.client.get("/auth/device", {"code": code}).content.decode()
                self.assertIn(f'<code id="code">{code}</code>', html)
                self.assertIn(f'<script id="device-code" type="application/json">"{code}"</script>', html)
                scripts = re.findall(r"<script[^>]*>", html)
                self.assertEqual(scripts, ['<script id="device-code" type="application/json">',
                                           '<script src="/static/accounts/device.js">'])
        self.assertIsNotNone(finders.find("accounts/device.js"))
        self.assertEqual(self.client.get("/static/accounts/device.js").status_code, 200)

    def test_html_pages_carry_a_content_security_policy(self):
        self.alice.is_staff = self.alice.is_superuser = True
        self.alice.save()
        self.client.force_login(self.alice)
        for path in ("/auth/device?code=ABCD-EFGH", "/auth/device?code=%3C", "/v1/auth/verify?token=x&device_code=nope",
                     "/admin/", "/admin/login/", "/admin/accounts/user/", "/docs", "/redoc"):
            with self.subTest(path=path):
                policy = self.client.get(path)["Content-Security-Policy"]
                self.assertIn("script-src 'self';", policy)
                self.assertNotRegex(policy, r"script-src [^;]*unsafe-inline")
        # JSON answers need none.
        self.assertNotIn("Content-Security-Policy", self.get("/v1/auth/me"))

