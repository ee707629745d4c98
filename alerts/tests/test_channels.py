"""Alert channels: the API (create, list, change, delete, test), each kind's exact message on a
real local receiver, SSRF checks at creation and at sending, retries, and isolation."""

import hashlib
import hmac
import json
from datetime import timedelta

from django.core import mail
from django.test import override_settings
from django.utils import timezone

from accounts.models import User
from alerts.delivery import MAX_ATTEMPTS, claim_notifications
from alerts.models import Alert, AlertChannel, Notification
from cueapi.testing import BaseTestCase, CueTestCase
from tests.receiver import Receiver

BASE_URL = "https://cueapi.example.org"


def send_notifications(now=None):
    for send in claim_notifications(now=now or timezone.now(), limit=100):
        send()


class ChannelApiTests(CueTestCase):
    def test_it_works(self):
        r = self.post("/v1/alert-channels", {"name": "ops slack", "kind": "slack", "url": "http://127.0.0.1:9/s"})
        self.assertEqual(r.status_code, 201, r.content)
        body = r.json()
        self.assertRegex(body["id"], r"^ach_[a-z0-9]{12}$")
        self.assertEqual({k: body[k] for k in ("name", "kind", "url", "email")},
                         {"name": "ops slack", "kind": "slack", "url": "http://127.0.0.1:9/s", "email": None})
        email = self.post("/v1/alert-channels", {"name": "on call", "kind": "email", "email": "oncall@example.org"})
        self.assertEqual(email.status_code, 201)
        listed = self.get("/v1/alert-channels").json()
        self.assertEqual([c["id"] for c in listed["alert_channels"]], [body["id"], email.json()["id"]])
        self.assertEqual(listed["total"], 2)
        self.assertEqual(self.get(f"/v1/alert-channels/{body['id']}").json()["name"], "ops slack")
        patched = self.patch(f"/v1/alert-channels/{body['id']}", {"name": "renamed"}).json()
        self.assertEqual((patched["name"], patched["url"]), ("renamed", "http://127.0.0.1:9/s"))
        self.assertEqual(self.delete(f"/v1/alert-channels/{body['id']}").status_code, 204)
        self.assertEqual(list(AlertChannel.objects.values_list("name", flat=True)), ["on call"])

    def test_bad_input(self):
        cases = [
            ({"kind": "slack", "url": "http://127.0.0.1:9/s"}, "body.name"),
            ({"name": "x", "kind": "pager", "url": "http://127.0.0.1:9/s"}, "body.kind"),
            ({"name": "x", "kind": "slack"}, "body.url"),
            ({"name": "x", "kind": "discord", "url": "not a url"}, "body.url"),
            ({"name": "x", "kind": "email"}, "body.email"),
            ({"name": "x", "kind": "email", "email": "nope"}, "body.email"),
            ({"name": "x", "kind": "email", "email": "a@example.org", "url": "http://127.0.0.1:9/s"}, "body.url"),
            ({"name": "x", "kind": "webhook", "url": "http://127.0.0.1:9/s", "secret": "x"}, "body.secret"),
        ]
        for body, field in cases:
            with self.subTest(body):
                error = self.assertError(self.post("/v1/alert-channels", body), 422, "validation_error")
                self.assertEqual(error["details"][0]["field"], field)
        # An address's problems in the API's wording, one message each.
        for email, message in [("", "Input should be a valid email address"),
                               ("a\x00@example.org", "String should not contain NUL characters"),
                               ("a" * 250 + "@example.org", "String should have at most 254 characters")]:
            with self.subTest(email=email[:20]):
                error = self.assertError(self.post("/v1/alert-channels", {"name": "x", "kind": "email", "email": email}),
                                         422, "validation_error")
                self.assertEqual(error["details"], [{"field": "body.email", "message": message}])
        channel = AlertChannel.objects.create(user=self.alice, name="x", kind="slack", url="http://127.0.0.1:9/s")
        error = self.assertError(self.patch(f"/v1/alert-channels/{channel.id}", {"kind": "discord"}), 422,
                                 "validation_error")
        self.assertEqual(error["details"][0]["field"], "body.kind")
        self.assertError(self.patch(f"/v1/alert-channels/{channel.id}", {"url": None}), 422, "validation_error")
        self.assertEqual(AlertChannel.objects.get().url, "http://127.0.0.1:9/s")
        self.assertEqual(AlertChannel.objects.count(), 1)

    def test_it_hides_bobs_channel(self):
        bobs = AlertChannel.objects.create(user=self.bob, name="bob", kind="email", email="bob@example.org")
        for method, path in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/test")):
            with self.subTest(method):
                self.assertError(self.call(method, f"/v1/alert-channels/{bobs.id}{path}", {"name": "mine"}
                                           if method == "PATCH" else None), 404, "alert_channel_not_found")
        for bad in ("ach_nope", "nope", "ach_000000000000"):
            self.assertError(self.get(f"/v1/alert-channels/{bad}"), 404, "alert_channel_not_found")
        self.assertEqual(self.get("/v1/alert-channels").json()["alert_channels"], [])
        self.assertEqual(AlertChannel.objects.get().name, "bob")

    def test_it_requires_api_key(self):
        self.assertError(self.get("/v1/alert-channels", anonymous=True), 401, "invalid_api_key")

    def test_a_read_only_key_sees_no_webhook_url(self):
        # Whoever has a Slack or Discord webhook URL can post to that channel: a credential.
        from accounts.audit import Actor
        from accounts.services import api_key_create

        url = "http://127.0.0.1:9/services/T000/B000/secret-token"
        channel = AlertChannel.objects.create(user=self.alice, name="team", kind="slack", url=url)
        reader = api_key_create(user=self.alice, name="dash", scope="read_only",
                                actor=Actor("session", str(self.alice.pk)))[1]
        self.assertEqual(self.get(f"/v1/alert-channels/{channel.id}").json()["url"], url)
        self.assertEqual(self.get(f"/v1/alert-channels/{channel.id}", key=reader).json()["url"], "http://127.0.0.1/…")
        listed = self.get("/v1/alert-channels", key=reader).json()["alert_channels"]
        self.assertEqual([c["url"] for c in listed], ["http://127.0.0.1/…"])
        self.assertNotIn("secret-token", self.get("/v1/alert-channels", key=reader).content.decode())


class ChannelUrlSafetyTests(BaseTestCase):  # private URLs refused, as in production
    def test_refused_at_creation(self):
        from cueapi.testing import cue_body

        for url in ("http://127.0.0.1:8080/hook", "http://169.254.169.254/latest", "http://10.0.0.1/x",
                    "http://localhost/x", "http://[::1]/x"):
            with self.subTest(url):
                error = self.assertError(self.post("/v1/alert-channels", {"name": "x", "kind": "webhook", "url": url}),
                                         400, "invalid_callback_url")
                # Refused exactly as a cue's callback URL is.
                callback = self.assertError(self.post("/v1/cues", cue_body(callback={"url": url})), 400,
                                            "invalid_callback_url")
                self.assertEqual(error, callback)
        self.assertFalse(AlertChannel.objects.exists())

    def test_refused_on_patch(self):
        channel = AlertChannel.objects.create(user=self.alice, name="x", kind="slack", url="https://example.org/s")
        self.assertError(self.patch(f"/v1/alert-channels/{channel.id}", {"url": "http://127.0.0.1/x"}), 400,
                         "invalid_callback_url")
        channel.refresh_from_db()
        self.assertEqual(channel.url, "https://example.org/s")

    def test_refused_at_sending(self):
        with Receiver() as receiver:
            channel = AlertChannel.objects.create(user=self.alice, name="x", kind="discord", url=receiver.url)
            result = self.post(f"/v1/alert-channels/{channel.id}/test").json()
        self.assertEqual(result, {"channel_id": channel.id, "kind": "discord", "delivered": False,
                                  "error": "Callback URL resolved to blocked IP"})
        self.assertEqual(receiver.requests, [])


@override_settings(BASE_URL=BASE_URL, EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
class ChannelMessageTests(CueTestCase):
    """Each kind's exact message for a real alert, sent by the dispatcher's unit."""

    def raise_alert(self, channel, **alerts):
        cue = self.create_cue(transport="worker", callback=None, payload={"task": "t"}, on_failure={"email": False},
                              alerts={"failure_threshold": 1, "channels": [channel.id], **alerts})
        execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
        self.post(f"/v1/executions/{execution_id}/outcome", {"success": False, "error": "disk <full> & gone"})
        return cue, execution_id, Alert.objects.get()

    def channel(self, kind, url):
        return AlertChannel.objects.create(user=self.alice, name=kind, kind=kind, url=url)

    def test_slack(self):
        with Receiver() as receiver:
            cue, execution_id, _ = self.raise_alert(self.channel("slack", receiver.url))
            send_notifications()
        (request,) = receiver.requests
        self.assertEqual(request["headers"]["Content-Type"], "application/json")
        self.assertNotIn("X-CueAPI-Signature", request["headers"])
        link = f"<{BASE_URL}/admin/executions/execution/{execution_id}/change/|Open in the admin>"
        self.assertEqual(json.loads(request["body"]), {
            # Escaped for Slack's markup, and with the link: the notification shows `text` alone.
            "text": (f"CueAPI: cue 'nightly' failing: Cue 'nightly' ({cue['id']}) has 1 consecutive failed "
                     f"executions. Last error: disk &lt;full&gt; &amp; gone\n{link}"),
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": (
                "*CueAPI: cue 'nightly' failing*\n"
                f"Cue 'nightly' ({cue['id']}) has 1 consecutive failed executions. Last error: "
                "disk &lt;full&gt; &amp; gone\n"
                f"<{BASE_URL}/admin/executions/execution/{execution_id}/change/|Open in the admin>")}}],
        })

    def test_discord(self):
        with Receiver([(204, b"")]) as receiver:
            cue, execution_id, _ = self.raise_alert(self.channel("discord", receiver.url))
            send_notifications()
        (request,) = receiver.requests
        secrets = (self.alice_key, self.alice.webhook_secret, User.objects.get(pk=self.alice.pk).alert_webhook_secret)
        for secret in filter(None, secrets):
            self.assertNotIn(secret.encode(), request["body"])
        self.assertEqual(json.loads(request["body"]), {
            "content": "CueAPI: cue 'nightly' failing",
            "embeds": [{
                "title": "CueAPI: cue 'nightly' failing",
                "description": f"Cue 'nightly' ({cue['id']}) has 1 consecutive failed executions. "
                               "Last error: disk <full> & gone",
                "color": 0xD9534F,
                "url": f"{BASE_URL}/admin/executions/execution/{execution_id}/change/",
            }],
        })
        self.assertIsNotNone(Notification.objects.get().sent_at)

    def test_webhook_is_signed_like_the_alert_webhook(self):
        with Receiver() as receiver:
            cue, execution_id, alert = self.raise_alert(self.channel("webhook", receiver.url))
            send_notifications()
        (request,) = receiver.requests
        secret = User.objects.get(pk=self.alice.pk).alert_webhook_secret
        headers = request["headers"]
        expected = hmac.new(secret.encode(), f"{headers['X-CueAPI-Timestamp']}.".encode() + request["body"],
                            hashlib.sha256).hexdigest()
        self.assertEqual(headers["X-CueAPI-Signature"], "v1=" + expected)
        self.assertEqual((headers["X-CueAPI-Alert-Id"], headers["X-CueAPI-Alert-Type"]),
                         (str(alert.id), "consecutive_failures"))
        self.assertEqual(json.loads(request["body"]), {
            "alert_id": str(alert.id), "alert_type": "consecutive_failures", "cue_id": cue["id"],
            "created_at": alert.created_at.isoformat(), "execution_id": execution_id,
            "message": alert.message, "metadata": {"consecutive_failures": 1}, "severity": "warning",
        })

    def test_email(self):
        channel = AlertChannel.objects.create(user=self.alice, name="on call", kind="email",
                                              email="oncall@example.org")
        cue, execution_id, alert = self.raise_alert(channel)
        send_notifications()
        (message,) = mail.outbox
        self.assertEqual((message.subject, message.to), ("CueAPI: cue 'nightly' failing", ["oncall@example.org"]))
        self.assertEqual(message.body, (
            f"{alert.message}\n\nAlert: consecutive_failures\nCue: {cue['id']}\nExecution: {execution_id}\n"
            f"Time: {alert.created_at.isoformat()}\n\n{BASE_URL}/admin/executions/execution/{execution_id}/change/\n"))
        for secret in (self.alice.webhook_secret, self.alice_key):
            self.assertNotIn(secret, message.body)

    def test_a_cues_channels_replace_the_defaults(self):
        with Receiver() as receiver, Receiver() as account_hook:
            User.objects.filter(pk=self.alice.pk).update(alert_webhook_url=account_hook.url)
            self.channel("discord", receiver.url)  # not the cue's
            chosen = self.channel("slack", receiver.url)
            self.raise_alert(chosen)
            send_notifications()
        self.assertEqual(list(Notification.objects.values_list("kind", "channel_id")), [("slack", chosen.id)])
        self.assertEqual((len(receiver.requests), account_hook.requests, mail.outbox), (1, [], []))

    def test_all_channels_by_default(self):
        with Receiver() as receiver:
            slack, discord = self.channel("slack", receiver.url), self.channel("discord", receiver.url)
            self.raise_alert(slack, channels=None)
            send_notifications()
        self.assertEqual(sorted(Notification.objects.values_list("kind", flat=True)), ["discord", "email", "slack"])
        self.assertEqual(len(receiver.requests), 2)
        (message,) = mail.outbox  # the account's email, as before channels
        alert = Alert.objects.get()
        # What an email channel would say: the cue, the alert, the last error, the admin link.
        self.assertEqual((message.subject, message.to), ("CueAPI: cue 'nightly' failing", ["alice@example.org"]))
        self.assertEqual(message.body, (
            f"{alert.message}\n\nAlert: consecutive_failures\nCue: {alert.cue_id}\nExecution: {alert.execution_id}\n"
            f"Time: {alert.created_at.isoformat()}\n\n"
            f"{BASE_URL}/admin/executions/execution/{alert.execution_id}/change/\n"))
        self.assertIsNotNone(discord.pk)

    def test_bobs_channels_get_nothing(self):
        with Receiver() as receiver:
            AlertChannel.objects.create(user=self.bob, name="bob", kind="slack", url=receiver.url)
            mine = self.channel("discord", receiver.url)
            self.raise_alert(mine, channels=None)
            send_notifications()
        self.assertFalse(Notification.objects.filter(user=self.bob).exists())
        self.assertEqual(len(receiver.requests), 1)


@override_settings(CUEAPI_RETRY_UNIT_SECONDS=1)
class ChannelRetryTests(CueTestCase):
    def test_a_failing_channel_is_retried_with_backoff_then_given_up(self):
        with Receiver([(500, b"down")]) as receiver:
            channel = AlertChannel.objects.create(user=self.alice, name="s", kind="slack", url=receiver.url)
            cue = self.create_cue(transport="worker", callback=None, payload={"task": "t"},
                                  on_failure={"email": False}, alerts={"failure_threshold": 1, "channels": [channel.id]})
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
            self.post(f"/v1/executions/{execution_id}/outcome", {"success": False})
            now = timezone.now()
            send_notifications(now)
            notification = Notification.objects.get()
            self.assertEqual((notification.attempts, notification.sent_at, notification.failed_at), (1, None, None))
            self.assertEqual(notification.last_error, "Webhook endpoint returned server error (500)")
            self.assertEqual(claim_notifications(now=now, limit=10), [])  # not due yet: backoff
            for step in range(1, MAX_ATTEMPTS):
                send_notifications(now + timedelta(hours=step))
            notification.refresh_from_db()
            self.assertEqual(notification.attempts, MAX_ATTEMPTS)
            self.assertEqual(list(notification.attempt_log.order_by("attempt").values_list("attempt", "delivered")),
                             [(n, False) for n in range(1, MAX_ATTEMPTS + 1)])
            self.assertIsNotNone(notification.failed_at)
            self.assertEqual(len(receiver.requests), MAX_ATTEMPTS)

    def test_a_retry_succeeds(self):
        with Receiver([(503, b"busy"), (200, b"ok")]) as receiver:
            channel = AlertChannel.objects.create(user=self.alice, name="d", kind="discord", url=receiver.url)
            cue = self.create_cue(transport="worker", callback=None, payload={"task": "t"},
                                  on_failure={"email": False}, alerts={"failure_threshold": 1, "channels": [channel.id]})
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
            self.post(f"/v1/executions/{execution_id}/outcome", {"success": False})
            send_notifications()
            send_notifications(timezone.now() + timedelta(seconds=2))
        notification = Notification.objects.get()
        self.assertEqual((notification.attempts, notification.last_error), (2, None))
        self.assertIsNotNone(notification.sent_at)
        self.assertEqual(receiver.requests[0]["body"], receiver.requests[1]["body"])
        # Every attempt is kept, and the admin shows them on the notification's page.
        attempts = list(notification.attempt_log.order_by("attempt").values_list(
            "attempt", "delivered", "http_status", "error"))
        self.assertEqual(attempts, [(1, False, 503, "Webhook endpoint server error (503)"),
                                    (2, True, 200, None)])
        self.client.force_login(User.objects.create_superuser("ops@example.org", "correct horse battery"))
        page = self.client.get(f"/admin/alerts/notification/{notification.pk}/change/")
        self.assertContains(page, "Webhook endpoint server error (503)")


@override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
class ChannelTestSendTests(CueTestCase):
    def test_a_test_alert_is_sent_at_once(self):
        with Receiver() as receiver:
            channel = AlertChannel.objects.create(user=self.alice, name="s", kind="slack", url=receiver.url)
            result = self.post(f"/v1/alert-channels/{channel.id}/test").json()
        self.assertEqual(result, {"channel_id": channel.id, "kind": "slack", "delivered": True, "error": None})
        (request,) = receiver.requests
        self.assertIn("test alert", json.loads(request["body"])["text"])
        notification = Notification.objects.get()
        self.assertEqual((notification.attempts, notification.channel_id), (1, channel.id))
        self.assertIsNotNone(notification.sent_at)
        self.assertFalse(Alert.objects.exists())  # a test is not an alert

    def test_a_failed_test_says_why_and_is_not_retried(self):
        with Receiver() as closed:
            url = closed.url
        channel = AlertChannel.objects.create(user=self.alice, name="w", kind="webhook", url=url)
        result = self.post(f"/v1/alert-channels/{channel.id}/test").json()
        self.assertEqual((result["delivered"], result["error"]), (False, "Could not connect to webhook endpoint"))
        self.assertIsNotNone(Notification.objects.get().failed_at)
        self.assertEqual(claim_notifications(now=timezone.now() + timedelta(days=1), limit=10), [])

    def test_email(self):
        channel = AlertChannel.objects.create(user=self.alice, name="e", kind="email", email="oncall@example.org")
        self.assertTrue(self.post(f"/v1/alert-channels/{channel.id}/test").json()["delivered"])
        (message,) = mail.outbox
        self.assertEqual((message.subject, message.to), ("CueAPI: test alert", ["oncall@example.org"]))
