"""A JSON body sent as a form (curl -d without -H) or as text gets the contract's 422 with a
message that says to send `Content-Type: application/json`; without any Content-Type it is
parsed as JSON."""

from accounts.models import User
from cueapi.testing import BaseTestCase

MESSAGE = ("body: Input should be a valid dictionary or object to extract fields from; "
           "send a JSON body with the header Content-Type: application/json")


class ContentTypeMessageTests(BaseTestCase):
    def test_a_json_body_sent_as_a_form_says_to_send_the_header(self):
        for content_type in ("application/x-www-form-urlencoded", "text/plain"):
            with self.subTest(content_type):
                r = self.post("/v1/auth/register", '{"email": "carol@example.com"}',
                              content_type=content_type, anonymous=True)
                error = self.assertError(r, 422, "validation_error", MESSAGE)
                self.assertEqual(error["details"], [{"field": "body", "message": MESSAGE.removeprefix("body: ")}])
        self.assertFalse(User.objects.filter(email="carol@example.com").exists())

    def test_no_content_type_is_parsed_as_json(self):
        r = self.post("/v1/auth/register", '{"email": "carol@example.com"}', content_type="", anonymous=True)
        self.assertEqual(r.status_code, 201, r.content)
