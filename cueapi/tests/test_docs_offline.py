"""/docs (Swagger UI) and /redoc (ReDoc) come entirely from this server: no CDN, so they work on
a host without internet access, and under a Content-Security-Policy that allows only this
server's scripts."""

import re

from cueapi.testing import BaseTestCase

# Every URL an HTML page or a script makes the browser load: src/href attributes, spec-url.
REFERENCE = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']*)["']""")
ANY_URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+""")


class DocsOfflineTests(BaseTestCase):
    def test_the_pages_reference_only_this_server(self):
        for path in ("/docs", "/redoc"):
            with self.subTest(path=path):
                r = self.client.get(path)
                self.assertEqual(r.status_code, 200)
                html = r.content.decode()
                self.assertEqual(ANY_URL.findall(html), [], "an absolute URL would leave this server")
                references = REFERENCE.findall(html)
                self.assertTrue(references)
                for url in references:
                    self.assertTrue(url.startswith("/") and not url.startswith("//"), url)
                    # Each file it loads is served here (static files, the schema, /docs?script).
                    self.assertEqual(self.client.get(url).status_code, 200, url)

    def test_swagger_ui_starts_from_a_script_file(self):
        html = self.client.get("/docs").content.decode()
        self.assertNotRegex(html, r"<script>", "an inline script would need 'unsafe-inline'")
        self.assertIn('<script src="/docs?script="></script>', html)
        script = self.client.get("/docs?script=")
        self.assertEqual(script["Content-Type"], "application/javascript")
        self.assertIn("SwaggerUIBundle", script.content.decode())

    def test_the_policy_allows_only_this_server(self):
        for path in ("/docs", "/redoc"):
            with self.subTest(path=path):
                policy = self.client.get(path)["Content-Security-Policy"]
                self.assertIn("default-src 'self'; script-src 'self';", policy)
                self.assertIn("img-src 'self' data:;", policy)  # Swagger UI's icons
                self.assertNotIn("http", policy)

    def test_options_on_the_docs_is_a_clean_405(self):
        # It was a 500: the docs view's OPTIONS rendered a page with no template.
        for path in ("/docs", "/docs?script"):
            with self.subTest(path):
                self.assertError(self.client.options(path), 405, "http_error")
