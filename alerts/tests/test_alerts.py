import datetime
import hashlib
import hmac
import json
from datetime import timedelta

from django.core import mail
from django.test import override_settings
from django.utils import timezone

from accounts.models import User
from alerts.delivery import claim_notifications
from alerts.models import Alert, Notification
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions import poller
from executions.models import Execution
from executions.tests.test_delivery import deliver_all
from tests.receiver import Receiver


def send_notifications(now=None):
    for send in claim_notifications(now=now or timezone.now(), limit=100):
        send()


@override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
class ConsecutiveFailuresTests(CueTestCase):
    def fire_and_deliver(self, cue_id):
        self.post(f"/v1/cues/{cue_id}/fire")
        deliver_all()

    def test_one_alert_per_streak_of_three(self):
        with Receiver([(500, b"down")]) as receiver:
            cue = self.create_cue(callback={"url": receiver.url}, retry={"max_attempts": 1},
                                  on_failure={"email": False})
            for expected in (0, 0, 1, 1):  # the 4th failure is the same streak: no new alert
                self.fire_and_deliver(cue["id"])
                self.assertEqual(Alert.objects.filter(alert_type="consecutive_failures").count(), expected)
            alert = Alert.objects.get()
            self.assertEqual((alert.cue_id, alert.severity, alert.metadata),
                             (cue["id"], "warning", {"consecutive_failures": 3}))
            self.assertTrue(alert.message.startswith(f"Cue 'nightly' ({cue['id']}) has 3 consecutive failed "
                                                     "executions. Last error: "), alert.message)
            self.assertIn("500", alert.message)
            receiver.responses = [(200, b"ok")]
            self.fire_and_deliver(cue["id"])  # a success ends the streak
            receiver.responses = [(500, b"down")]
            for _ in range(3):
                self.fire_and_deliver(cue["id"])
        # Two streaks, two alerts; the success between them also said `recovered` (its default).
        self.assertEqual(Alert.objects.filter(alert_type="consecutive_failures").count(), 2)
        self.assertEqual(Alert.objects.filter(alert_type="recovered").count(), 1)

    def test_reported_failures_count_whatever_the_transport(self):
        cue = self.create_cue(transport="worker", callback=None, on_failure={"email": False})
        for _ in range(3):
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
            self.post(f"/v1/executions/{execution_id}/outcome", {"success": False, "error": "nope"})
        self.assertEqual(Alert.objects.filter(alert_type="consecutive_failures").count(), 1)

    def test_a_handler_reply_of_failure_counts(self):
        with Receiver([(200, {"success": False, "error": "bad data"})]) as receiver:
            cue = self.create_cue(callback={"url": receiver.url}, on_failure={"email": False})
            for _ in range(3):
                self.fire_and_deliver(cue["id"])
        self.assertEqual(Alert.objects.filter(alert_type="consecutive_failures").count(), 1)


class VerificationFailedTests(CueTestCase):
    def test_missing_evidence_raises_an_alert(self):
        cue = self.create_cue(verification={"mode": "require_external_id"})
        execution = Execution.objects.create(cue_id=cue["id"], scheduled_for=timezone.now(), status="success")
        self.post(f"/v1/executions/{execution.id}/outcome", {"success": True})
        alert = Alert.objects.get()
        self.assertEqual((alert.alert_type, alert.execution_id, alert.metadata),
                         ("verification_failed", execution.id,
                          {"outcome_state": "verification_failed", "transport": "webhook"}))


class OutcomeTimeoutTests(CueTestCase):
    def delivered(self, **cue_fields):
        with Receiver() as receiver:
            cue = self.create_cue(callback={"url": receiver.url}, **cue_fields)
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
            deliver_all()
        return Execution.objects.get(pk=execution_id)

    def test_no_outcome_by_the_deadline(self):
        execution = self.delivered(delivery={"outcome_deadline_seconds": 60})
        self.assertEqual(execution.outcome_deadline_seconds, 60)
        self.assertEqual(poller.time_out_missing_outcomes(now=execution.delivered_at + timedelta(seconds=59)), 0)
        self.assertEqual(poller.time_out_missing_outcomes(now=execution.delivered_at + timedelta(seconds=61)), 1)
        execution.refresh_from_db()
        self.assertEqual((execution.status, execution.error_message),
                         ("outcome_timeout", "No outcome reported within 60s of delivery"))
        alert = Alert.objects.get(alert_type="outcome_timeout")
        self.assertEqual(alert.execution_id, execution.id)

    def test_an_outcome_in_time(self):
        execution = self.delivered(delivery={"outcome_deadline_seconds": 60})
        self.post(f"/v1/executions/{execution.id}/outcome", {"success": True})
        self.assertEqual(poller.time_out_missing_outcomes(now=timezone.now() + timedelta(hours=1)), 0)
        self.assertFalse(Alert.objects.exists())

    def test_default_deadlines(self):
        self.assertIsNone(self.delivered(name="plain").outcome_deadline_at)  # plain webhooks: none
        verified = self.delivered(name="verified", verification={"mode": "manual"})
        self.assertEqual(verified.outcome_deadline_seconds, 3600)
        self.assertIsNone(self.delivered(name="off", verification={"mode": "manual"},
                                         delivery={"outcome_deadline_seconds": 0}).outcome_deadline_at)


@override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
class OnFailureTests(CueTestCase):
    def fail_once(self, **cue_fields):
        with Receiver([(500, b"down")]) as receiver:
            cue = self.create_cue(callback={"url": receiver.url}, retry={"max_attempts": 1}, **cue_fields)
            self.post(f"/v1/cues/{cue['id']}/fire")
            deliver_all()
        return cue

    def test_email(self):
        cue = self.fail_once()
        send_notifications()
        (message,) = mail.outbox
        self.assertEqual(message.subject, "CueAPI: cue 'nightly' failed")
        self.assertEqual(message.to, ["alice@example.org"])
        self.assertIn(cue["id"], message.body)
        self.assertIn("Webhook endpoint returned server error (500)", message.body)
        for secret in (self.alice.webhook_secret, self.alice_key):
            self.assertNotIn(secret, message.body)

    def test_emails_are_capped(self):
        with Receiver([(500, b"down")]) as receiver:
            cue = self.create_cue(callback={"url": receiver.url}, retry={"max_attempts": 1})
            for _ in range(12):
                self.post(f"/v1/cues/{cue['id']}/fire")
                deliver_all()
        self.assertEqual(Execution.objects.filter(status="failed").count(), 12)
        self.assertEqual(Notification.objects.filter(kind="email").count(), 10)

    def test_no_email_when_turned_off(self):
        self.fail_once(on_failure={"email": False})
        self.assertFalse(Notification.objects.filter(kind="email").exists())

    def test_failure_webhook_is_signed(self):
        with Receiver() as hook:
            cue = self.fail_once(on_failure={"email": False, "webhook": hook.url})
            send_notifications()
        (request,) = hook.requests
        body = json.loads(request["body"])
        self.assertEqual({k: body[k] for k in ("event", "cue_id", "cue_name", "attempts", "last_http_status")},
                         {"event": "cue.failed", "cue_id": cue["id"], "cue_name": "nightly", "attempts": 1,
                          "last_http_status": 500})
        ts = request["headers"]["X-CueAPI-Timestamp"]
        expected = hmac.new(self.alice.webhook_secret.encode(), f"{ts}.".encode() + request["body"], hashlib.sha256)
        self.assertEqual(request["headers"]["X-CueAPI-Signature"], "v1=" + expected.hexdigest())

    def test_pause(self):
        cue = self.fail_once(on_failure={"email": False, "pause": True})
        self.assertEqual(Cue.objects.get(pk=cue["id"]).status, "paused")


class AlertWebhookTests(CueTestCase):
    def raise_alert(self, url):
        User.objects.filter(pk=self.alice.pk).update(alert_webhook_url=url)
        cue = self.create_cue(verification={"mode": "require_external_id"}, on_failure={"email": False})
        execution = Execution.objects.create(cue_id=cue["id"], scheduled_for=timezone.now(), status="success")
        self.post(f"/v1/executions/{execution.id}/outcome", {"success": True})
        return Alert.objects.get()

    def test_signed_with_the_alert_secret(self):
        with Receiver() as hook:
            alert = self.raise_alert(hook.url)
            send_notifications()
        (request,) = hook.requests
        secret = User.objects.get(pk=self.alice.pk).alert_webhook_secret  # created on first need
        self.assertRegex(secret, r"^[0-9a-f]{64}$")
        headers = request["headers"]
        expected = hmac.new(secret.encode(), f"{headers['X-CueAPI-Timestamp']}.".encode() + request["body"],
                            hashlib.sha256).hexdigest()
        self.assertEqual(headers["X-CueAPI-Signature"], "v1=" + expected)
        self.assertEqual((headers["X-CueAPI-Alert-Id"], headers["X-CueAPI-Alert-Type"]),
                         (str(alert.id), "verification_failed"))
        body = json.loads(request["body"])
        self.assertEqual(list(body), sorted(body))
        self.assertEqual((body["alert_id"], body["execution_id"], body["severity"]),
                         (str(alert.id), str(alert.execution_id), "warning"))

    @override_settings(CUEAPI_RETRY_UNIT_SECONDS=1)
    def test_a_receiver_that_is_down_is_retried(self):
        with Receiver() as closed:
            url = closed.url
        self.raise_alert(url)
        send_notifications()
        notification = Notification.objects.get(kind="alert_webhook")
        self.assertEqual((notification.attempts, notification.sent_at), (1, None))
        self.assertEqual(notification.last_error, "Could not connect to webhook endpoint")
        self.assertEqual(claim_notifications(now=timezone.now(), limit=10), [])  # not due yet
        with Receiver() as hook:
            Notification.objects.filter(pk=notification.pk).update(url=hook.url)
            send_notifications(now=timezone.now() + timedelta(seconds=2))
        notification.refresh_from_db()
        self.assertIsNotNone(notification.sent_at)
        self.assertEqual(len(hook.requests), 1)


class AlertListTests(CueTestCase):
    def test_filters_and_paging(self):
        now = timezone.now()
        a = Alert.objects.create(user=self.alice, alert_type="outcome_timeout", message="a")
        b = Alert.objects.create(user=self.alice, alert_type="verification_failed", message="b")
        Alert.objects.filter(pk=a.pk).update(created_at=now - timedelta(days=2))
        Alert.objects.create(user=self.bob, alert_type="outcome_timeout", message="bobs")
        body = self.get("/v1/alerts").json()
        self.assertEqual([x["id"] for x in body["alerts"]], [str(b.id), str(a.id)])
        self.assertEqual((body["total"], body["limit"], body["offset"]), (2, 20, 0))
        self.assertEqual(set(body["alerts"][0]), {"id", "cue_id", "execution_id", "alert_type", "severity",
                                                  "message", "metadata", "acknowledged", "muted", "created_at"})
        self.assertEqual(self.get("/v1/alerts?alert_type=outcome_timeout").json()["total"], 1)
        since = (now - datetime.timedelta(days=1)).isoformat().replace("+00:00", "Z")
        self.assertEqual(self.get(f"/v1/alerts?since={since}").json()["total"], 1)

    def test_bad_filters(self):
        self.assertError(self.get("/v1/alerts?alert_type=nope"), 400, "invalid_filter",
                         "alert_type must be one of: consecutive_failures, missed, outcome_timeout, recovered, "
                         "verification_failed")
        self.assertError(self.get("/v1/alerts?since=yesterday"), 422, "validation_error")
        self.assertError(self.get("/v1/alerts?limit=0"), 422, "validation_error")

    def test_it_requires_api_key(self):
        self.assertError(self.get("/v1/alerts", anonymous=True), 401, "invalid_api_key")
