"""X-CueAPI-Verify-Echo: a successful JSON write echoes the raw request body and its SHA-256
(cueapi.middleware.VerifyEchoMiddleware)."""

import datetime
import hashlib
import json

from django.http import HttpResponse, JsonResponse
from django.test import RequestFactory, SimpleTestCase

from cueapi.middleware import VerifyEchoMiddleware
from cueapi.testing import CueTestCase, cue_body
from cues.models import Cue
from executions.models import Execution, Worker

ECHO = {"X-CueAPI-Verify-Echo": "true"}
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def spaced(body):
    """Valid JSON as no serializer writes it: odd spacing, unicode left raw, a newline. If the
    server echoed a re-serialisation instead of the bytes, these would not match."""
    return json.dumps(body, ensure_ascii=False, indent=1, separators=(" ,", " :  ")).encode() + b"\n"


class VerifyEchoTests(CueTestCase):
    def assertEchoes(self, response, raw, status=200):
        self.assertEqual(response.status_code, status, response.content)
        body = response.json()
        self.assertEqual(body["body_received"], raw.decode())
        self.assertEqual(body["body_received_sha256"], hashlib.sha256(raw).hexdigest())
        self.assertEqual(int(response["Content-Length"]), len(response.content))
        return body

    def test_create_cue(self):
        raw = spaced(cue_body(name="Grüße ☃ 日本", payload={"emoji": "🎉", "n": 1.50}))
        body = self.assertEchoes(self.post("/v1/cues", raw, headers=ECHO), raw, status=201)
        self.assertEqual(Cue.objects.get(pk=body["id"]).name, "Grüße ☃ 日本")
        self.assertEqual(body["name"], "Grüße ☃ 日本")  # the rest of the answer is intact

    def test_patch_cue(self):
        cue = self.create_cue()
        raw = spaced({"description": "naïve \u2028 café"})
        body = self.assertEchoes(self.patch(f"/v1/cues/{cue['id']}", raw, headers=ECHO), raw)
        self.assertEqual(body["description"], "naïve \u2028 café")

    def test_fire_with_and_without_a_body(self):
        cue = self.create_cue()
        raw = spaced({"send_at": "2099-01-01T00:00:00+02:00", "payload_override": {"ü": True}})
        body = self.assertEchoes(self.post(f"/v1/cues/{cue['id']}/fire", raw, headers=ECHO), raw)
        self.assertEqual(body["scheduled_for"], "2099-01-01T00:00:00+02:00")
        # No body (what the SDK sends for a plain fire): "" and the SHA-256 of no bytes.
        body = self.post(f"/v1/cues/{cue['id']}/fire", headers={"X-CueAPI-Verify-Echo": " True "}).json()
        self.assertEqual((body["body_received"], body["body_received_sha256"]), ("", EMPTY_SHA256))
        self.assertEqual(Execution.objects.count(), 2)

    def test_the_sdks_compact_body_matches(self):
        # cueapi-sdk compares with json.dumps(body, separators=(",", ":")) and its SHA-256.
        cue = self.create_cue()
        sent = {"payload_override": {"k": "v"}, "merge_strategy": "merge"}
        raw = json.dumps(sent, separators=(",", ":")).encode()
        body = self.assertEchoes(self.post(f"/v1/cues/{cue['id']}/fire", raw, headers=ECHO), raw)
        self.assertEqual(body["body_received"], json.dumps(sent, separators=(",", ":")))

    def test_outcome(self):
        cue = self.create_cue()
        execution = Execution.objects.create(cue_id=cue["id"], status="success",
                                             scheduled_for=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
        raw = spaced({"success": True, "result": "fertig ✓"})
        body = self.assertEchoes(self.post(f"/v1/executions/{execution.id}/outcome", raw, headers=ECHO), raw)
        self.assertEqual(body["outcome_state"], "reported_success")

    def test_worker_heartbeat(self):
        raw = spaced({"worker_id": "büro-1", "handlers": ["report"]})
        body = self.assertEchoes(self.post("/v1/worker/heartbeat", raw, headers=ECHO), raw)
        self.assertTrue(body["acknowledged"])
        self.assertTrue(Worker.objects.filter(worker_id="büro-1").exists())

    def test_invalid_utf8_is_replaced(self):
        # The echo sink stores any bytes with a 2xx, so it shows the decoding of bad bytes.
        raw = b'{"a": "\xff\xfe"}'
        r = self.post("/v1/echo/" + "t" * 16, raw, headers=ECHO, anonymous=True)
        body = r.json()
        self.assertEqual(body["body_received"], '{"a": "\ufffd\ufffd"}')
        self.assertEqual(body["body_received_sha256"], hashlib.sha256(raw).hexdigest())

    def test_without_the_header_nothing_changes(self):
        cue = self.create_cue()
        for headers in ({}, {"X-CueAPI-Verify-Echo": "false"}, {"X-CueAPI-Verify-Echo": "1"}):
            with self.subTest(headers=headers):
                r = self.post(f"/v1/cues/{cue['id']}/fire", {"send_at": "2099-01-01T00:00:00Z"}, headers=headers)
                self.assertEqual(r.status_code, 200)
                self.assertEqual(set(r.json()), {"id", "cue_id", "scheduled_for", "status", "triggered_by"})
                Execution.objects.all().delete()

    def test_errors_are_not_echoed(self):
        cue = self.create_cue()
        bad = self.post("/v1/cues", spaced({"name": "x"}), headers=ECHO)
        self.assertError(bad, 422, "validation_error")
        self.assertNotIn("body_received", bad.json())
        missing = self.post("/v1/cues/cue_nope/fire", headers=ECHO)
        self.assertEqual(missing.json(), {"error": {"code": "cue_not_found", "message": "Cue not found",
                                                    "status": 404}})
        self.assertNotIn("body_received", self.post("/v1/cues", "{oops", headers=ECHO).json())
        self.assertNotIn("body_received", self.patch(f"/v1/cues/{cue['id']}", {"x": 1}, headers=ECHO).json())

    def test_reads_and_deletes_are_not_echoed(self):
        cue = self.create_cue()
        self.assertNotIn("body_received", self.get(f"/v1/cues/{cue['id']}", headers=ECHO).json())
        r = self.delete(f"/v1/cues/{cue['id']}", headers=ECHO)
        self.assertEqual((r.status_code, r.content), (204, b""))


class VerifyEchoMiddlewareTests(SimpleTestCase):
    """The answers no endpoint gives today: arrays, non-JSON, an own `body_received`."""

    def run_middleware(self, response, *, header="true", method="POST"):
        extra = {"HTTP_X_CUEAPI_VERIFY_ECHO": header} if header else {}
        request = RequestFactory().generic(method, "/x", b'{"a":1}', content_type="application/json", **extra)
        return VerifyEchoMiddleware(lambda request: response)(request)

    def test_an_object_gains_the_echo(self):
        for method in ("POST", "PATCH", "PUT"):
            with self.subTest(method=method):
                response = self.run_middleware(JsonResponse({"ok": True}, status=201), method=method)
                self.assertEqual(response.content,
                                 b'{"ok":true,"body_received":"{\\"a\\":1}","body_received_sha256":"'
                                 + hashlib.sha256(b'{"a":1}').hexdigest().encode() + b'"}')
                self.assertEqual(response["Content-Length"], str(len(response.content)))

    def test_other_answers_are_unchanged(self):
        cases = [
            JsonResponse([1, 2], safe=False),
            JsonResponse({"body_received": "mine"}),
            HttpResponse(b"plain", content_type="text/plain"),
            HttpResponse(b"{not json", content_type="application/json"),
            JsonResponse({"error": {}}, status=400),
            JsonResponse({"ok": True}, status=302),
        ]
        for response in cases:
            with self.subTest(response=response):
                before = response.content
                self.assertIs(self.run_middleware(response), response)
                self.assertEqual(response.content, before)
        for header, method in ((None, "POST"), ("no", "PUT"), ("true", "GET"), ("true", "DELETE")):
            with self.subTest(header=header, method=method):
                response = JsonResponse({"ok": True})
                self.assertEqual(self.run_middleware(response, header=header, method=method).content, b'{"ok": true}')
