from django.test import override_settings

from accounts.models import User
from cueapi.ids import api_key_hash
from cueapi.testing import HOSTED_LIMITS, BaseTestCase


class RegisterTests(BaseTestCase):
    def register(self, body, **kwargs):
        return self.post("/v1/auth/register", body, anonymous=True, **kwargs)

    @override_settings(**HOSTED_LIMITS)
    def test_it_works(self):
        r = self.register({"email": "carol@example.com"})
        self.assertEqual(r.status_code, 201)
        body = r.json()
        self.assertEqual(set(body), {"api_key", "email"})
        self.assertEqual(body["email"], "carol@example.com")
        self.assertRegex(body["api_key"], r"^cue_sk_[0-9a-f]{32}$")
        user = User.objects.get(email="carol@example.com")
        # Stored hashed, never in plaintext; the prefix is the first 12 chars.
        self.assertEqual(user.api_keys.get(primary=True).key_hash, api_key_hash(body["api_key"]))
        self.assertEqual(user.api_key_prefix, body["api_key"][:12])
        # An encrypted copy (never the plaintext), so a terminal login can hand the key back.
        self.assertNotIn(body["api_key"], user.api_key_encrypted)
        self.assertRegex(user.webhook_secret, r"^whsec_[0-9a-f]{64}$")
        self.assertEqual(
            (user.plan, user.active_cue_limit, user.monthly_execution_limit,
             user.rate_limit_per_minute),
            ("free", 10, 300, 60),
        )

    def test_the_new_key_works(self):
        key = self.register({"email": "carol@example.com"}).json()["api_key"]
        r = self.get("/v1/auth/me", key=key)
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r.json()["email"], "carol@example.com")

    def test_it_normalises_the_domain(self):
        r = self.register({"email": "Carol@EXAMPLE.com"})
        self.assertEqual(r.json()["email"], "Carol@example.com")

    def test_it_rejects_duplicate_email(self):
        self.assertError(
            self.register({"email": "alice@example.org"}), 409, "duplicate_email",
            "Email already registered",
        )
        self.assertEqual(User.objects.filter(email="alice@example.org").count(), 1)

    def test_it_rejects_invalid_email(self):
        error = self.assertError(self.register({"email": "not-an-email"}), 422, "validation_error")
        self.assertEqual(error["details"][0]["field"], "body.email")
        self.assertTrue(error["message"].startswith("body.email: value is not a valid email"))
        self.assertEqual(User.objects.count(), 2)

    def test_it_requires_email(self):
        error = self.assertError(self.register({}), 422, "validation_error", "body.email: Field required")
        self.assertEqual(error["details"], [{"field": "body.email", "message": "Field required"}])

    def test_it_ignores_unknown_fields(self):
        r = self.register({"email": "dave@example.com", "plan": "enterprise"})
        self.assertEqual(r.status_code, 201)
        self.assertEqual(User.objects.get(email="dave@example.com").plan, "free")

    def test_it_needs_no_api_key(self):
        r = self.register({"email": "erin@example.com"}, headers={"Authorization": "Bearer junk"})
        self.assertEqual(r.status_code, 201)

    @override_settings(CUEAPI_ALLOW_REGISTER=False)
    def test_it_can_be_disabled(self):
        self.assertError(self.register({"email": "carol@example.com"}), 404, "not_found", "Not found")
        self.assertFalse(User.objects.filter(email="carol@example.com").exists())
