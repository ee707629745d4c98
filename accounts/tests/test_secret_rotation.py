"""Regenerating a webhook secret with a grace period: both secrets sign `webhook-signature`
until it ends (checked with the real `standardwebhooks` library), `X-CueAPI-Signature` uses
the new one only (checked with cueapi-sdk's verify_webhook)."""

import hashlib
import hmac
from datetime import datetime, timedelta

from django.utils import timezone
from standardwebhooks import Webhook, WebhookVerificationError

from accounts.models import User
from alerts.models import Alert
from alerts.tests.test_alerts import send_notifications
from cueapi.testing import CueTestCase, sdk_verify_webhook
from executions.models import Execution
from executions.tests.test_delivery import deliver_all
from tests.receiver import Receiver

CONFIRM = {"X-Confirm-Destructive": "true"}


def standard_headers(request):
    return {k: v for k, v in request["headers"].items() if k.startswith("webhook-")}


class RegenerateTests(CueTestCase):
    def test_without_grace_the_answer_is_todays(self):
        for body in (None, {}, {"grace_seconds": 0}):
            r = self.post("/v1/auth/webhook-secret/regenerate", body, headers=CONFIRM)
            self.assertEqual(set(r.json()), {"webhook_secret", "previous_secret_revoked"}, body)
            self.assertIs(r.json()["previous_secret_revoked"], True)
        user = User.objects.get(pk=self.alice.pk)
        self.assertEqual((user.previous_webhook_secret, user.previous_webhook_secret_expires_at), (None, None))

    def test_with_grace_it_says_until_when(self):
        before = timezone.now()
        r = self.post("/v1/auth/webhook-secret/regenerate", {"grace_seconds": 3600}, headers=CONFIRM)
        body = r.json()
        self.assertEqual(set(body), {"webhook_secret", "previous_secret_revoked", "previous_secret_expires_at"})
        self.assertIs(body["previous_secret_revoked"], False)
        expires = datetime.fromisoformat(body["previous_secret_expires_at"])
        self.assertAlmostEqual((expires - before).total_seconds(), 3600, delta=2)
        # The old secret is never shown again; GET gives the new one.
        self.assertEqual(self.get("/v1/auth/webhook-secret").json(), {"webhook_secret": body["webhook_secret"]})
        self.assertNotIn(self.alice.webhook_secret, r.content.decode())

    def test_it_validates_grace_seconds(self):
        # A wrong type is 422 too (#19), "60" and 60.0 included: a JSON integer only.
        for value in (-1, 604801, "soon", 1.5, "60", 60.0, True, None, 10**30, [60]):
            r = self.post("/v1/auth/webhook-secret/regenerate", {"grace_seconds": value}, headers=CONFIRM)
            error = self.assertError(r, 422, "validation_error")
            self.assertIn("body.grace_seconds", error["message"])
        self.assertEqual(User.objects.get(pk=self.alice.pk).webhook_secret, self.alice.webhook_secret)
        self.assertEqual(self.post("/v1/auth/webhook-secret/regenerate", {"grace_seconds": 604800},
                                   headers=CONFIRM).status_code, 200)

    def test_it_still_requires_confirmation(self):
        r = self.post("/v1/auth/webhook-secret/regenerate", {"grace_seconds": 60})
        self.assertError(r, 400, "confirmation_required")

    def test_a_rotation_without_grace_ends_a_running_one(self):
        self.post("/v1/auth/webhook-secret/regenerate", {"grace_seconds": 3600}, headers=CONFIRM)
        self.post("/v1/auth/webhook-secret/regenerate", headers=CONFIRM)
        user = User.objects.get(pk=self.alice.pk)
        self.assertIsNone(user.previous_webhook_secret_at(timezone.now()))


class DualSignatureTests(CueTestCase):
    def deliver(self, receiver):
        self.post(f"/v1/cues/{self.cue['id']}/fire")
        deliver_all()
        return receiver.requests[-1]

    def test_both_secrets_verify_during_the_grace_period_and_only_the_new_one_after(self):
        old = self.alice.webhook_secret
        with Receiver() as receiver:
            self.cue = self.create_cue(callback={"url": receiver.url})
            new = self.post("/v1/auth/webhook-secret/regenerate", {"grace_seconds": 600},
                            headers=CONFIRM).json()["webhook_secret"]
            during = self.deliver(receiver)
            User.objects.filter(pk=self.alice.pk).update(
                previous_webhook_secret_expires_at=timezone.now() - timedelta(seconds=1))
            after = self.deliver(receiver)

        headers, body = standard_headers(during), during["body"]
        self.assertEqual(len(headers["webhook-signature"].split(" ")), 2)
        self.assertEqual(Webhook(new).verify(body, headers)["execution_id"], headers["webhook-id"])
        self.assertEqual(Webhook(old).verify(body, headers)["execution_id"], headers["webhook-id"])
        verify = sdk_verify_webhook()
        signature, ts = during["headers"]["X-CueAPI-Signature"], during["headers"]["X-CueAPI-Timestamp"]
        self.assertTrue(verify(body, signature, new, ts))
        self.assertFalse(verify(body, signature, old, ts))

        headers, body = standard_headers(after), after["body"]
        self.assertEqual(len(headers["webhook-signature"].split(" ")), 1)
        Webhook(new).verify(body, headers)
        with self.assertRaises(WebhookVerificationError):
            Webhook(old).verify(body, headers)

    def test_without_grace_the_old_secret_dies_at_once(self):
        old = self.alice.webhook_secret
        with Receiver() as receiver:
            self.cue = self.create_cue(callback={"url": receiver.url})
            self.post("/v1/auth/webhook-secret/regenerate", headers=CONFIRM)
            request = self.deliver(receiver)
        with self.assertRaises(WebhookVerificationError):
            Webhook(old).verify(request["body"], standard_headers(request))


class AlertSecretRotationTests(CueTestCase):
    def raise_alert(self):
        cue = self.create_cue(verification={"mode": "require_external_id"}, on_failure={"email": False})
        execution = Execution.objects.create(cue_id=cue["id"], scheduled_for=timezone.now(), status="success")
        self.post(f"/v1/executions/{execution.id}/outcome", {"success": True})
        return Alert.objects.get()

    def test_both_alert_secrets_sign_during_the_grace_period(self):
        old = self.get("/v1/auth/alert-webhook-secret").json()["alert_webhook_secret"]
        body = self.post("/v1/auth/alert-webhook-secret/regenerate", {"grace_seconds": 60}, headers=CONFIRM).json()
        self.assertEqual(set(body), {"alert_webhook_secret", "previous_secret_revoked", "previous_secret_expires_at"})
        new = body["alert_webhook_secret"]
        with Receiver() as hook:
            User.objects.filter(pk=self.alice.pk).update(alert_webhook_url=hook.url)
            alert = self.raise_alert()
            send_notifications()
        (request,) = hook.requests
        headers = standard_headers(request)
        self.assertEqual(headers["webhook-id"], str(alert.id))
        Webhook(new).verify(request["body"], headers)
        Webhook(old).verify(request["body"], headers)
        ts = request["headers"]["X-CueAPI-Timestamp"]
        expected = hmac.new(new.encode(), f"{ts}.".encode() + request["body"], hashlib.sha256).hexdigest()
        self.assertEqual(request["headers"]["X-CueAPI-Signature"], "v1=" + expected)

    def test_alert_validation(self):
        r = self.post("/v1/auth/alert-webhook-secret/regenerate", {"grace_seconds": 604801}, headers=CONFIRM)
        self.assertError(r, 422, "validation_error")
