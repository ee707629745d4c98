import json

from cueapi.testing import BaseTestCase


class OpenApiTests(BaseTestCase):
    def test_schema_lists_the_api(self):
        r = self.get("/openapi.json", anonymous=True)
        self.assertEqual(r.status_code, 200)
        schema = json.loads(r.content)
        self.assertIn("/v1/auth/register", schema["paths"])
        self.assertIn("/v1/usage", schema["paths"])

    def test_docs_page(self):
        r = self.get("/docs", anonymous=True)
        self.assertEqual(r.status_code, 200)
        self.assertIn(b"swagger", r.content.lower())


class AuthQueryCountTests(BaseTestCase):
    def test_a_cached_key_costs_one_indexed_lookup(self):
        from cueapi.authentication import user_for_api_key

        user_for_api_key(self.alice_key)  # warms the cache
        # One read of the cache row by its primary key (zero with Redis); no users query.
        with self.assertNumQueries(1):
            self.assertEqual(user_for_api_key(self.alice_key).pk, self.alice.pk)


class SchemaWarningsTests(BaseTestCase):
    def test_schema_generates_without_warnings(self):
        import tempfile

        from django.core.management import call_command

        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            call_command("spectacular", "--fail-on-warn", "--file", out.name)
            self.assertIn(b"/v1/cues/{cue_id}:", out.read())
