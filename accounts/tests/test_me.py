from django.test import override_settings

from accounts.models import User
from cueapi.testing import HOSTED_LIMITS, BaseTestCase
from cueapi.urlsafety import PRIVATE_URLS_HINT


@override_settings(**HOSTED_LIMITS)
class MeTests(BaseTestCase):
    def test_it_works(self):
        r = self.get("/v1/auth/me")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(
            r.json(),
            {
                "email": "alice@example.org",
                "plan": "free",
                "active_cues": 0,
                "active_cue_limit": 10,
                "executions_this_month": 0,
                "monthly_execution_limit": 300,
                "rate_limit_per_minute": 60,
                "has_webhook_secret": True,
                "api_key_prefix": self.alice_key[:12],
            },
        )

    def test_it_requires_api_key(self):
        self.assertError(
            self.get("/v1/auth/me", anonymous=True), 401, "invalid_api_key",
            "Missing or invalid Authorization header",
        )

    def test_it_sends_no_www_authenticate(self):
        r = self.get("/v1/auth/me", anonymous=True)
        self.assertNotIn("WWW-Authenticate", r.headers)

    def test_it_shows_the_callers_own_account(self):
        self.assertEqual(self.get("/v1/auth/me", key=self.bob_key).json()["email"], "bob@example.org")

    def test_it_sees_limit_changes_at_once(self):
        self.get("/v1/auth/me")  # warms the auth cache
        self.alice.active_cue_limit = 42
        self.alice.save()
        self.assertEqual(self.get("/v1/auth/me").json()["active_cue_limit"], 42)


class MePatchTests(BaseTestCase):
    def test_it_sets_alert_webhook_url(self):
        with override_settings(CUEAPI_ALLOW_PRIVATE_URLS=True):
            r = self.patch("/v1/auth/me", {"alert_webhook_url": "http://127.0.0.1:9/alerts"})
        self.assertEqual(r.status_code, 200)
        self.assertEqual(set(r.json()), {"updated_at"})
        self.assertRegex(r.json()["updated_at"], r"\+00:00$")
        self.alice.refresh_from_db()
        self.assertEqual(self.alice.alert_webhook_url, "http://127.0.0.1:9/alerts")

    def test_empty_string_clears_alert_webhook_url(self):
        User.objects.filter(pk=self.alice.pk).update(alert_webhook_url="https://example.com/a")
        self.assertEqual(self.patch("/v1/auth/me", {"alert_webhook_url": ""}).status_code, 200)
        self.alice.refresh_from_db()
        self.assertIsNone(self.alice.alert_webhook_url)

    def test_it_refuses_private_alert_webhook_url(self):
        self.assertError(
            self.patch("/v1/auth/me", {"alert_webhook_url": "http://127.0.0.1/alerts"}),
            400, "invalid_alert_webhook_url", "Callback URL resolves to blocked address range" + PRIVATE_URLS_HINT,
        )
        self.assertError(
            self.patch("/v1/auth/me", {"alert_webhook_url": "http://localhost/alerts"}),
            400, "invalid_alert_webhook_url", "Blocked hostname: localhost" + PRIVATE_URLS_HINT,
        )
        self.assertError(
            self.patch("/v1/auth/me", {"alert_webhook_url": "ftp://example.com/"}),
            400, "invalid_alert_webhook_url", "URL must use http:// or https://",
        )
        self.alice.refresh_from_db()
        self.assertIsNone(self.alice.alert_webhook_url)

    def test_it_changes_email(self):
        self.assertEqual(self.patch("/v1/auth/me", {"email": "alice2@example.org"}).status_code, 200)
        self.alice.refresh_from_db()
        self.assertEqual(self.alice.email, "alice2@example.org")

    def test_it_refuses_anothers_email(self):
        self.assertError(self.patch("/v1/auth/me", {"email": "bob@example.org"}), 409, "duplicate_email")
        self.alice.refresh_from_db()
        self.assertEqual(self.alice.email, "alice@example.org")

    def test_it_requires_a_field(self):
        self.assertError(self.patch("/v1/auth/me", {}), 422, "no_fields", "No fields to update")
        self.assertError(self.patch("/v1/auth/me", {"email": None}), 422, "no_fields")
        self.assertError(self.patch("/v1/auth/me", {"nickname": "al"}), 422, "no_fields")

    def test_it_rejects_wrong_types(self):
        error = self.assertError(self.patch("/v1/auth/me", {"email": 5}), 422, "validation_error")
        self.assertEqual(error["details"], [{"field": "body.email", "message": "Input should be a valid string"}])
