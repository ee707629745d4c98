from accounts.models import User
from cueapi.testing import BaseTestCase

CONFIRM = {"X-Confirm-Destructive": "true"}


class WebhookSecretTests(BaseTestCase):
    def test_it_works(self):
        r = self.get("/v1/auth/webhook-secret")
        self.assertEqual(r.json(), {"webhook_secret": self.alice.webhook_secret})

    def test_it_regenerates(self):
        r = self.post("/v1/auth/webhook-secret/regenerate", headers=CONFIRM)
        body = r.json()
        self.assertEqual(set(body), {"webhook_secret", "previous_secret_revoked"})
        self.assertRegex(body["webhook_secret"], r"^whsec_[0-9a-f]{64}$")
        self.assertNotEqual(body["webhook_secret"], self.alice.webhook_secret)
        self.assertEqual(self.get("/v1/auth/webhook-secret").json()["webhook_secret"], body["webhook_secret"])

    def test_regenerate_requires_confirmation(self):
        self.assertError(self.post("/v1/auth/webhook-secret/regenerate"), 400, "confirmation_required")
        self.assertEqual(User.objects.get(pk=self.alice.pk).webhook_secret, self.alice.webhook_secret)

    def test_it_is_404_without_a_secret(self):
        User.objects.filter(pk=self.alice.pk).update(webhook_secret="")
        self.assertError(self.get("/v1/auth/webhook-secret"), 404, "no_webhook_secret", "No webhook secret found")

    def test_each_user_sees_only_their_own(self):
        self.assertEqual(
            self.get("/v1/auth/webhook-secret", key=self.bob_key).json()["webhook_secret"],
            self.bob.webhook_secret,
        )


class AlertWebhookSecretTests(BaseTestCase):
    def test_it_is_created_on_first_need_and_kept(self):
        self.assertIsNone(self.alice.alert_webhook_secret)
        first = self.get("/v1/auth/alert-webhook-secret").json()["alert_webhook_secret"]
        self.assertRegex(first, r"^[0-9a-f]{64}$")
        self.assertEqual(self.get("/v1/auth/alert-webhook-secret").json(), {"alert_webhook_secret": first})
        self.assertEqual(User.objects.get(pk=self.alice.pk).alert_webhook_secret, first)

    def test_it_regenerates(self):
        first = self.get("/v1/auth/alert-webhook-secret").json()["alert_webhook_secret"]
        body = self.post("/v1/auth/alert-webhook-secret/regenerate", headers=CONFIRM).json()
        self.assertEqual(set(body), {"alert_webhook_secret", "previous_secret_revoked"})
        self.assertNotEqual(body["alert_webhook_secret"], first)
        self.assertEqual(
            self.get("/v1/auth/alert-webhook-secret").json()["alert_webhook_secret"],
            body["alert_webhook_secret"],
        )

    def test_regenerate_requires_confirmation(self):
        self.assertError(self.post("/v1/auth/alert-webhook-secret/regenerate"), 400, "confirmation_required")
