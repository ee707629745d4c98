"""GET /v1/executions/{id}/attempts: every try at reaching the handler, oldest first."""

from django.test import override_settings
from django.utils import timezone

from cueapi.testing import CueTestCase
from executions import poller
from executions.tests.test_delivery import deliver_all
from tests.receiver import Receiver

KEYS = {"attempt", "transport", "result", "http_status", "error", "duration_ms", "started_at", "finished_at",
        "worker_id", "retry_after"}


@override_settings(CUEAPI_RETRY_UNIT_SECONDS=0)
class AttemptListTests(CueTestCase):
    def test_it_lists_a_retried_delivery_oldest_first(self):
        with Receiver([(500, b"boom"), (200, b"ok")]) as receiver:
            cue = self.create_cue(callback={"url": receiver.url}, retry={"max_attempts": 3, "backoff_minutes": [1]})
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
            deliver_all()
            self.assertEqual(poller.release_due_retries(now=timezone.now()), 1)
            deliver_all()
        self.assertEqual(len(receiver.requests), 2)
        r = self.get(f"/v1/executions/{execution_id}/attempts")
        self.assertEqual(r.status_code, 200, r.content)
        first, second = r.json()["attempts"]
        self.assertEqual(set(first), KEYS)
        self.assertEqual((first["attempt"], first["transport"], first["result"], first["http_status"], first["error"]),
                         (1, "webhook", "failed", 500, "Webhook endpoint returned server error (500)"))
        self.assertEqual((second["attempt"], second["result"], second["http_status"], second["error"]),
                         (2, "delivered", 200, None))
        self.assertLessEqual(first["finished_at"], second["started_at"])
        self.assertIsInstance(first["duration_ms"], int)
        self.assertIsNone(first["retry_after"])
        self.assertIsNone(first["worker_id"])

    def test_it_lists_a_worker_run(self):
        cue = self.create_cue(name="work", transport="worker", callback=None, payload={"task": "t"})
        execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
        self.assertEqual(self.get(f"/v1/executions/{execution_id}/attempts").json(), {"attempts": []})
        self.assertEqual(self.post(f"/v1/executions/{execution_id}/claim", {"worker_id": "w1"}).status_code, 200)
        self.post(f"/v1/executions/{execution_id}/outcome", {"success": False, "error": "disk full"})
        (attempt,) = self.get(f"/v1/executions/{execution_id}/attempts").json()["attempts"]
        self.assertEqual((attempt["attempt"], attempt["transport"], attempt["result"], attempt["worker_id"],
                          attempt["error"], attempt["http_status"]), (1, "worker", "failed", "w1", "disk full", None))

    def test_it_hides_bobs_execution(self):
        cue = self.create_cue(key=self.bob_key)
        execution_id = self.post(f"/v1/cues/{cue['id']}/fire", key=self.bob_key).json()["id"]
        self.assertError(self.get(f"/v1/executions/{execution_id}/attempts"), 404, "execution_not_found")
        self.assertError(self.get("/v1/executions/not-a-uuid/attempts"), 404, "execution_not_found")

    def test_it_requires_api_key(self):
        self.assertEqual(self.get("/v1/executions/x/attempts", anonymous=True).status_code, 401)
