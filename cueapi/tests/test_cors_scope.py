"""CORS (any origin reflected, with credentials) is for the API and the health checks only:
the admin and the other HTML pages, which a session cookie opens, never answer another site."""

from accounts.models import User
from cueapi.testing import BaseTestCase

ORIGIN = "https://evil.example"


class CorsScopeTests(BaseTestCase):
    def preflight(self, path):
        return self.client.options(path, HTTP_ORIGIN=ORIGIN, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                                   HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type")

    def test_the_api_and_health_keep_cors(self):
        for path in ("/v1/auth/me", "/health", "/status"):
            with self.subTest(path):
                r = self.get(path, HTTP_ORIGIN=ORIGIN)
                self.assertEqual(r["Access-Control-Allow-Origin"], ORIGIN)
                self.assertEqual(r["Access-Control-Allow-Credentials"], "true")
        self.assertEqual(self.preflight("/v1/cues")["Access-Control-Allow-Origin"], ORIGIN)

    def test_the_admin_and_html_pages_have_none(self):
        self.client.force_login(User.objects.create_superuser("ops@example.org", "correct horse battery"))
        for path in ("/admin/", "/admin/login/", "/admin/accounts/user/", "/auth/device", "/docs"):
            with self.subTest(path):
                r = self.client.get(path, HTTP_ORIGIN=ORIGIN)
                self.assertLess(r.status_code, 500)
                self.assertNotIn("Access-Control-Allow-Origin", r.headers)
                self.assertNotIn("Access-Control-Allow-Credentials", r.headers)
        for path in ("/admin/", "/admin/login/", "/auth/device"):
            with self.subTest("preflight", path=path):
                self.assertNotIn("Access-Control-Allow-Origin", self.preflight(path).headers)
