"""send_webhook never raises and never hangs: a truncated answer, a header that can't be
sent, an answer trickled byte by byte, or anything unexpected is a failed attempt with a
clear message that never quotes a header value. Real receivers on 127.0.0.1."""

import time
from unittest import mock

from django.test import SimpleTestCase, override_settings
from django.utils import timezone

from cueapi.testing import CueTestCase
from cues.models import Cue
from executions.delivery import PROTECTED_HEADERS, send_webhook, signed_headers
from executions.models import Execution
from executions.tests.test_delivery import deliver_all
from tests.receiver import RawReceiver, Receiver

SECRET = "Bearer sk_live_do_not_log"
TRUNCATED = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n0123456789"
TRUNCATED_ERROR = "Webhook endpoint answered 200 but closed the connection before the whole answer was sent"
# (headers, message): none of these can go on the wire; nothing is sent.
UNSENDABLE = [
    ({"Authorization": SECRET + "\r\nX-Evil: 1"},
     "Invalid callback header 'Authorization': Header value must not contain line breaks (CR or LF)"),
    ({"Authorization": " " + SECRET}, "Invalid callback header 'Authorization': Header value must not start or end with whitespace"),
    ({"Authorization": SECRET + "\x00"}, "Invalid callback header 'Authorization': Header value must not contain control characters"),
    ({"Authorization": SECRET + "☃"},
     "Invalid callback header 'Authorization': Header value must be Latin-1 text; percent-encode other characters"),
    ({"X Team": "ops"}, "Invalid callback header 'X Team': Header name must be an HTTP token"),
    ({"X-Team\r\nX-Evil": "1"}, "Invalid callback header 'X-Team\\r\\nX-Evil': Header name must be an HTTP token"),
    ({"X-Team:": "1"}, "Invalid callback header 'X-Team:': Header name must be an HTTP token"),
]


@override_settings(CUEAPI_ALLOW_PRIVATE_URLS=True)
class SendWebhookNeverRaisesTests(SimpleTestCase):
    def send(self, url, headers=None, timeout=None):
        return send_webhook(url=url, method="POST", headers=headers or {}, body=b"{}", timeout=timeout)

    def test_a_truncated_answer_is_a_failed_attempt(self):
        with RawReceiver(TRUNCATED) as receiver:
            result = self.send(receiver.url)
        self.assertEqual((result.delivered, result.http_status, result.error), (False, 200, TRUNCATED_ERROR))
        self.assertEqual(len(receiver.requests), 1)

    def test_an_unsendable_header_is_a_failed_attempt_naming_the_header(self):
        with Receiver() as receiver:
            for headers, message in UNSENDABLE:
                with self.subTest(message), self.assertNoLogs("cueapi", "DEBUG"):
                    result = self.send(receiver.url, headers)
                    self.assertFalse(result.delivered)
                    self.assertTrue(result.error.startswith(message), result.error)
                    self.assertNotIn("sk_live", result.error)
        self.assertEqual(receiver.requests, [])

    def test_a_trickled_answer_fails_at_the_total_deadline(self):
        # Each byte comes well within the per-read timeout; only a total deadline stops it.
        answer = TRUNCATED.replace(b"0123456789", b"x" * 1000)
        for form, trickle_from in (("trickled status line and headers", 0),
                                   ("trickled body", answer.index(b"\r\n\r\n") + 4)):
            with self.subTest(form), RawReceiver(answer, trickle=0.1, trickle_from=trickle_from) as receiver:
                started = time.monotonic()
                result = self.send(receiver.url, timeout=2)
                elapsed = time.monotonic() - started
                self.assertEqual((result.delivered, result.error), (False, "Webhook endpoint timed out"))
                self.assertLess(elapsed, 3)
                self.assertGreaterEqual(elapsed, 1.9)
                self.assertFalse(receiver.finished, "the receiver was still trickling")

    def test_the_connection_is_usable_after_a_deadline(self):
        answer = TRUNCATED.replace(b"0123456789", b"x" * 1000)
        with RawReceiver(answer, trickle=0.1) as receiver:
            self.assertFalse(self.send(receiver.url, timeout=0.5).delivered)
        with Receiver() as receiver:
            self.assertTrue(self.send(receiver.url, timeout=2).delivered)
            self.assertTrue(self.send(receiver.url, timeout=2).delivered)

    def test_anything_unexpected_is_a_failed_attempt_and_logs_no_message(self):
        with mock.patch("executions.delivery.resolve_safe_address", side_effect=RuntimeError(SECRET)):
            with self.assertLogs("cueapi", "ERROR") as logs:
                result = self.send("http://127.0.0.1:9/hook")
        self.assertEqual((result.delivered, result.error), (False, "Webhook delivery failed (RuntimeError)"))
        self.assertNotIn("sk_live", "\n".join(logs.output))
        self.assertIn("webhook_send_crashed", logs.output[0])

    def test_framing_headers_are_ours(self):
        self.assertLessEqual({"transfer-encoding", "connection", "content-length", "host"}, PROTECTED_HEADERS)
        custom = {"Transfer-Encoding": "chunked", "Connection": "close", "X-Team": "ops"}
        with Receiver() as receiver:
            headers = signed_headers(secret="whsec_c2VjcmV0", body=b"{}", execution_id="e", cue_id="c",
                                     scheduled_for=timezone.now(), attempt=1, custom_headers=custom)
            result = self.send(receiver.url, headers)
        self.assertTrue(result.delivered, result.error)
        sent = receiver.requests[0]["headers"]
        self.assertNotIn("Transfer-Encoding", sent)
        self.assertNotEqual(sent.get("Connection"), "close")
        self.assertEqual((sent["X-Team"], sent["Content-Length"]), ("ops", "2"))

    def test_an_ipv6_literal_gets_a_bracketed_host_header(self):
        with Receiver(host="::1") as receiver:
            result = self.send(receiver.url)
        self.assertTrue(result.delivered, result.error)
        self.assertEqual(receiver.requests[0]["headers"]["Host"], receiver.url.split("/")[2])


class StuckDeliveryTests(CueTestCase):
    """Through the dispatcher: the execution leaves `delivering` and is retried."""

    def fire(self, url, headers=None):
        cue = self.create_cue(callback={"url": url})
        if headers:  # a cue saved before headers were validated
            Cue.objects.filter(pk=cue["id"]).update(callback_headers=headers)
        execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
        with self.assertLogs("cueapi", "INFO") as logs:
            deliver_all()
        self.assertNotIn("sk_live", "\n".join(logs.output))
        return Execution.objects.get(pk=execution_id)

    def test_a_truncated_answer_is_retried(self):
        with RawReceiver(TRUNCATED) as receiver:
            execution = self.fire(receiver.url)
        self.assertEqual((execution.status, execution.error_message), ("retrying", TRUNCATED_ERROR))

    def test_an_old_cue_with_an_unsendable_header_is_retried_without_logging_it(self):
        with Receiver() as receiver:
            execution = self.fire(receiver.url, headers={"Authorization": SECRET + "\r\n"})
        self.assertEqual(execution.status, "retrying")
        self.assertEqual(execution.error_message,
                         "Invalid callback header 'Authorization': Header value must not contain line breaks "
                         "(CR or LF). Fix it in the cue's callback.headers")
        self.assertEqual(receiver.requests, [])
