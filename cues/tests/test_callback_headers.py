"""callback.headers must be sendable as they are: HTTP-token names, values without control
characters, surrounding whitespace or characters beyond Latin-1. A bad one is a 422 at the
header's name, on create and on PATCH, that never repeats the value (it may be a secret)."""

from cueapi.testing import HOOK_URL, CueTestCase, cue_body
from cues.models import Cue

TOKEN_RULE = "Header name must be an HTTP token: letters, digits and !#$%&'*+-.^_`|~ only"
SECRET = "Bearer sk_live_do_not_echo"

BAD_HEADERS = [
    ({"Authorization": SECRET + "\r\nX-Evil: 1"}, "Authorization", "Header value must not contain line breaks (CR or LF)"),
    ({"Authorization": SECRET + "\n"}, "Authorization", "Header value must not contain line breaks (CR or LF)"),
    ({"Authorization": SECRET + "\x01"}, "Authorization", "Header value must not contain control characters"),
    ({"Authorization": SECRET + "\x7f"}, "Authorization", "Header value must not contain control characters"),
    ({"Authorization": " " + SECRET}, "Authorization", "Header value must not start or end with whitespace"),
    ({"Authorization": SECRET + "\t"}, "Authorization", "Header value must not start or end with whitespace"),
    ({"Authorization": SECRET + " ☃"}, "Authorization", "Header value must be Latin-1 text; percent-encode other characters"),
    ({"X Team": "ops"}, "X Team", TOKEN_RULE),
    ({"X-Team:": "ops"}, "X-Team:", TOKEN_RULE),
    ({"X-Team\r\nX-Evil": "ops"}, "X-Team\r\nX-Evil", TOKEN_RULE),
    ({"Host ": "evil.example"}, "Host ", TOKEN_RULE),
    ({"Grüße": "ops"}, "Grüße", TOKEN_RULE),
    ({"": "ops"}, "", TOKEN_RULE),
]
GOOD_HEADERS = {
    "Authorization": SECRET, "X-Team": "ops", "X-Latin-1": "café", "X-Tab": "a\tb",
    "X-Empty": "", "x_odd.but~valid!": "1",
}


class CallbackHeaderTests(CueTestCase):
    def assertHeaderRefused(self, response, name, message):
        error = self.assertError(response, 422, "validation_error")
        self.assertEqual(error["details"], [{"field": f"body.callback.headers.{name}", "message": message}])
        self.assertNotIn("sk_live", response.content.decode())

    def test_create_refuses_bad_headers_and_creates_nothing(self):
        for headers, name, message in BAD_HEADERS:
            with self.subTest(name=name, message=message):
                r = self.post("/v1/cues", cue_body(callback={"url": HOOK_URL, "headers": headers}))
                self.assertHeaderRefused(r, name, message)
        self.assertFalse(Cue.objects.exists())

    def test_patch_refuses_bad_headers_and_changes_nothing(self):
        cue = self.create_cue(callback={"url": HOOK_URL, "headers": {"X-Team": "ops"}})
        for headers, name, message in BAD_HEADERS:
            with self.subTest(name=name, message=message):
                r = self.patch(f"/v1/cues/{cue['id']}", {"callback": {"headers": headers}})
                self.assertHeaderRefused(r, name, message)
        self.assertEqual(Cue.objects.get(pk=cue["id"]).callback_headers, {"X-Team": "ops"})

    def test_every_bad_header_is_reported(self):
        r = self.post("/v1/cues", cue_body(callback={"url": HOOK_URL,
                                                     "headers": {"X-Ok": "1", "X A": "1", "X-B": " 1"}}))
        error = self.assertError(r, 422, "validation_error")
        self.assertEqual({d["field"] for d in error["details"]}, {"body.callback.headers.X A", "body.callback.headers.X-B"})

    def test_good_headers_are_kept_as_given(self):
        cue = self.create_cue(callback={"url": HOOK_URL, "headers": GOOD_HEADERS})
        self.assertEqual(cue["callback"]["headers"], GOOD_HEADERS)
        r = self.patch(f"/v1/cues/{cue['id']}", {"callback": {"headers": {"X-Team": "dev"}}})
        self.assertEqual(r.status_code, 200, r.content)
        self.assertEqual(r.json()["callback"]["headers"], {"X-Team": "dev"})
