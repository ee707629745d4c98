"""Webhook delivery to a real HTTP server on 127.0.0.1: the request, its signatures, and
what each answer does to the execution."""

import json

from django.test import override_settings
from django.utils import timezone
from standardwebhooks import Webhook

from cueapi.testing import CueTestCase, sdk_verify_webhook
from tests.receiver import Receiver
from cues.models import Cue
from executions import dispatcher
from executions.models import DispatchOutbox, Execution


def deliver_all():
    """One dispatcher pass in this thread: claim everything due and deliver it."""
    ids, token = dispatcher.claim_outbox_rows(now=timezone.now(), limit=100)
    return [dispatcher.deliver_outbox_row(row_id, token) for row_id in ids]


class WebhookRequestTests(CueTestCase):
    def fire(self, receiver, **cue_fields):
        cue = self.create_cue(callback={"url": receiver.url, **cue_fields.pop("callback", {})},
                              payload={"task": "report", "text": "héllo"}, **cue_fields)
        execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
        deliver_all()
        return cue, execution_id

    def test_body_and_headers(self):
        with Receiver() as receiver:
            cue, execution_id = self.fire(receiver)
        (request,) = receiver.requests
        execution = Execution.objects.get(pk=execution_id)
        scheduled_for = execution.scheduled_for.isoformat()
        expected_body = json.dumps({
            "attempt": 1, "cue_id": cue["id"], "execution_id": execution_id, "name": "nightly",
            "payload": {"task": "report", "text": "héllo"}, "scheduled_for": scheduled_for,
        }, sort_keys=True).encode()
        self.assertEqual(request["method"], "POST")
        self.assertEqual(request["body"], expected_body)  # sorted keys, ", " separators, \\u escapes
        headers = request["headers"]
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertEqual(headers["User-Agent"], "CueAPI/1.0")
        self.assertEqual(headers["X-CueAPI-Cue-Id"], cue["id"])
        self.assertEqual(headers["X-CueAPI-Execution-Id"], execution_id)
        self.assertEqual(headers["X-CueAPI-Scheduled-For"], scheduled_for)
        self.assertEqual(headers["X-CueAPI-Attempt"], "1")
        self.assertEqual(headers["Host"], receiver.url.split("/")[2])
        self.assertRegex(headers["X-CueAPI-Signature"], r"^v1=[0-9a-f]{64}$")
        self.assertEqual(headers["webhook-id"], execution_id)

    def test_signatures_verify_with_the_sdk_and_standard_webhooks(self):
        with Receiver() as receiver:
            self.fire(receiver)
        (request,) = receiver.requests
        headers, body = request["headers"], request["body"]
        verify = sdk_verify_webhook()
        secret = self.alice.webhook_secret
        self.assertTrue(verify(body, headers["X-CueAPI-Signature"], secret, headers["X-CueAPI-Timestamp"]))
        self.assertTrue(verify(json.loads(body), headers["X-CueAPI-Signature"], secret, headers["X-CueAPI-Timestamp"]))
        self.assertFalse(verify(body, headers["X-CueAPI-Signature"], self.bob.webhook_secret, headers["X-CueAPI-Timestamp"]))
        payload = Webhook(secret).verify(body, {k: v for k, v in headers.items() if k.startswith("webhook-")})
        self.assertEqual(payload["execution_id"], headers["webhook-id"])

    def test_custom_headers_cannot_override_signatures(self):
        with Receiver() as receiver:
            self.fire(receiver, callback={"headers": {"X-CueAPI-Signature": "v1=forged", "X-Team": "ops",
                                                      "webhook-signature": "v1,forged"}})
        headers = receiver.requests[0]["headers"]
        self.assertNotEqual(headers["X-CueAPI-Signature"], "v1=forged")
        self.assertNotEqual(headers["webhook-signature"], "v1,forged")
        self.assertEqual(headers["X-Team"], "ops")

    def test_get_sends_no_body_but_signs(self):
        with Receiver() as receiver:
            self.fire(receiver, callback={"method": "GET"})
        request = receiver.requests[0]
        self.assertEqual((request["method"], request["body"]), ("GET", b""))
        self.assertIn("X-CueAPI-Signature", request["headers"])

    def test_payload_override_is_delivered(self):
        with Receiver() as receiver:
            cue = self.create_cue(callback={"url": receiver.url}, payload={"a": 1})
            self.post(f"/v1/cues/{cue['id']}/fire", {"payload_override": {"b": 2}})
            deliver_all()
        self.assertEqual(json.loads(receiver.requests[0]["body"])["payload"], {"a": 1, "b": 2})


class DeliveryOutcomeTests(CueTestCase):
    def run_once(self, responses, **cue_fields):
        with Receiver(responses) as receiver:
            cue = self.create_cue(callback={"url": receiver.url}, **cue_fields)
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
            deliver_all()
        return Cue.objects.get(pk=cue["id"]), Execution.objects.get(pk=execution_id)

    def test_success(self):
        cue, execution = self.run_once([(200, b"thanks")])
        self.assertEqual((execution.status, execution.http_status, execution.attempts), ("success", 200, 1))
        self.assertEqual(execution.response_body, "thanks")
        self.assertIsNotNone(execution.delivered_at)
        self.assertIsNone(execution.outcome_recorded_at)  # no {"success": ...} in the reply
        self.assertEqual(cue.run_count, 1)
        self.assertIsNotNone(cue.last_run)
        self.assertIsNotNone(DispatchOutbox.objects.get().dispatched_at)

    def test_reply_with_success_records_the_outcome(self):
        _, execution = self.run_once([(200, {"success": True, "result": "42 rows", "external_id": "job-1"})],
                                     verification={"mode": "require_external_id"})
        self.assertEqual((execution.outcome_success, execution.outcome_result), (True, "42 rows"))
        self.assertEqual((execution.outcome_state, execution.evidence_external_id), ("verified_success", "job-1"))

    def test_reported_failure_is_final(self):
        cue, execution = self.run_once([(200, {"success": False, "error": "disk full"})])
        self.assertEqual((execution.status, execution.outcome_state), ("success", "reported_failure"))
        self.assertEqual(execution.outcome_error, "disk full")
        self.assertIsNone(execution.next_retry)
        self.assertEqual(DispatchOutbox.objects.count(), 1)  # no retry row

    def test_server_error_schedules_a_retry(self):
        before = timezone.now()
        with override_settings(CUEAPI_RETRY_UNIT_SECONDS=2):
            _, execution = self.run_once([(500, b"boom")], retry={"max_attempts": 3, "backoff_minutes": [5, 7]})
        self.assertEqual((execution.status, execution.http_status, execution.attempts), ("retrying", 500, 1))
        self.assertEqual(execution.error_message, "Webhook endpoint returned server error (500)")
        # backoff[0] = 5 units of 2 s.
        self.assertAlmostEqual((execution.next_retry - before).total_seconds(), 10, delta=2)
        attempt = execution.delivery_attempts.get()
        self.assertEqual((attempt.attempt, attempt.transport, attempt.result, attempt.http_status, attempt.error),
                         (1, "webhook", "failed", 500, "Webhook endpoint returned server error (500)"))
        self.assertEqual(attempt.finished_at, execution.last_attempt_at)
        self.assertLessEqual(attempt.started_at, attempt.finished_at)

    def test_failure_messages(self):
        for status, message in ((404, "Webhook endpoint not found (404)"),
                                (401, "Webhook endpoint rejected request (401)"),
                                (503, "Webhook endpoint server error (503)"),
                                (302, "Webhook delivery failed (302)")):
            with self.subTest(status):
                Cue.objects.all().delete()
                _, execution = self.run_once([(status, b"")])
                self.assertEqual((execution.error_message, execution.http_status), (message, status))

    def test_last_attempt_fails_the_execution_and_a_one_time_cue(self):
        _, execution = self.run_once([(500, b"")], retry={"max_attempts": 1})
        self.assertEqual(execution.status, "failed")
        at = (timezone.now() + timezone.timedelta(days=1)).isoformat()
        with Receiver([(500, b"")]) as receiver:
            cue = self.create_cue(name="once", callback={"url": receiver.url}, retry={"max_attempts": 1},
                                  schedule={"type": "once", "at": at})
            self.post(f"/v1/cues/{cue['id']}/fire")
            deliver_all()
        self.assertEqual(Cue.objects.get(pk=cue["id"]).status, "failed")

    def test_final_failure_pauses_when_asked(self):
        cue, _ = self.run_once([(500, b"")], retry={"max_attempts": 1}, on_failure={"pause": True})
        self.assertEqual((cue.status, cue.next_run), ("paused", None))

    def test_connection_refused(self):
        with Receiver() as receiver:
            url = receiver.url  # closed after this block
        cue = self.create_cue(callback={"url": url})
        execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
        deliver_all()
        execution = Execution.objects.get(pk=execution_id)
        self.assertEqual((execution.status, execution.http_status), ("retrying", None))
        self.assertEqual(execution.error_message, "Could not connect to webhook endpoint")

    @override_settings(CUEAPI_WEBHOOK_TIMEOUT_SECONDS=0.5)
    def test_timeout(self):
        _, execution = self.run_once([(200, b"late", 1.5)])
        self.assertEqual((execution.status, execution.error_message), ("retrying", "Webhook endpoint timed out"))

    def test_blocked_url_at_delivery(self):
        cue = self.create_cue(callback={"url": "http://127.0.0.1:9/x"})
        execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
        with override_settings(CUEAPI_ALLOW_PRIVATE_URLS=False):
            deliver_all()
        execution = Execution.objects.get(pk=execution_id)
        self.assertEqual((execution.status, execution.error_message), ("retrying", "Callback URL resolved to blocked IP"))

    def test_a_row_is_delivered_once_per_claim(self):
        with Receiver() as receiver:
            cue = self.create_cue(callback={"url": receiver.url})
            self.post(f"/v1/cues/{cue['id']}/fire")
            ids, token = dispatcher.claim_outbox_rows(now=timezone.now(), limit=10)
            self.assertEqual(dispatcher.claim_outbox_rows(now=timezone.now(), limit=10)[0], [])
            dispatcher.deliver_outbox_row(ids[0], token)
            dispatcher.deliver_outbox_row(ids[0], token)  # a duplicate call does nothing
        self.assertEqual(len(receiver.requests), 1)


class SafeConnectTests(CueTestCase):
    def test_it_connects_to_the_address_that_was_checked(self):
        # "rebind.invalid" resolves nowhere; the send can only succeed through the pinned
        # address, and the Host header still names the host.
        from unittest import mock

        from executions.delivery import send_webhook

        with Receiver() as receiver:
            port = receiver.server.server_address[1]
            with mock.patch("cueapi.urlsafety.resolve", return_value=["127.0.0.1"]):
                result = send_webhook(url=f"http://rebind.invalid:{port}/hook", method="POST",
                                      headers={}, body=b"{}")
        self.assertTrue(result.delivered, result.error)
        self.assertEqual(receiver.requests[0]["headers"]["Host"], f"rebind.invalid:{port}")

    def test_a_redirect_is_a_failed_delivery_and_bodies_are_capped(self):
        from executions.delivery import send_webhook

        with Receiver([(302, b"x" * 100_000)]) as receiver:
            result = send_webhook(url=receiver.url, method="POST", headers={}, body=b"{}")
        self.assertEqual((result.delivered, result.http_status), (False, 302))
        self.assertEqual(len(result.response_text), 2000)
        self.assertEqual(len(receiver.requests), 1)
