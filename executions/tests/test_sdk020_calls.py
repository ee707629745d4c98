"""The calls cueapi-sdk 0.2.0 makes (CLIENTS.md §3), sent as that SDK sends them, and the
shapes it reads back."""

from cueapi.testing import CueTestCase
from executions.models import Execution

SDK_HEADERS = {"User-Agent": "cueapi-python/0.2.0"}


class Sdk020Tests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue(name="work", transport="worker", callback=None, payload={"task": "report"})

    def fire(self, **body):
        r = self.post(f"/v1/cues/{self.cue['id']}/fire", body, headers=SDK_HEADERS)
        self.assertEqual(r.status_code, 200, r.content)
        return r.json()

    def test_fire_with_every_option(self):
        body = self.fire(payload_override={"task": "report", "day": "mon"}, merge_strategy="merge",
                         exit_criteria=["max"], idempotency_key="k-1")
        self.assertEqual({k: body[k] for k in ("cue_id", "status", "triggered_by")},
                         {"cue_id": self.cue["id"], "status": "pending", "triggered_by": "manual_fire"})
        self.assertEqual(Execution.objects.get(pk=body["id"]).payload, {"task": "report", "day": "mon"})

    def test_list_claimable_claim_heartbeat_outcome(self):
        fired = self.fire()
        listed = self.get("/v1/executions/claimable?task=report&agent=anyone").json()
        self.assertEqual(listed, {"executions": []})  # the cue's payload names no agent
        listed = self.get("/v1/executions/claimable?task=report").json()["executions"]
        self.assertEqual([e["execution_id"] for e in listed], [fired["id"]])
        claim = self.post(f"/v1/executions/{fired['id']}/claim", {"worker_id": "w1"}).json()
        self.assertEqual(set(claim), {"claimed", "execution_id", "lease_seconds"})
        # The CLI's heartbeat: X-Worker-Id and no body at all.
        r = self.client.post(f"/v1/executions/{fired['id']}/heartbeat", HTTP_AUTHORIZATION=f"Bearer {self.alice_key}",
                             HTTP_X_WORKER_ID="w1", content_type="")
        self.assertEqual(set(r.json()), {"execution_id", "lease_extended_until", "acknowledged"})
        r = self.post(f"/v1/executions/{fired['id']}/outcome", {"success": True, "result_ref": "r-1"})
        self.assertEqual(r.json()["outcome_state"], "reported_success")
        verified = self.post(f"/v1/executions/{fired['id']}/verify", {"valid": False, "reason": "wrong"}).json()
        self.assertEqual((verified["outcome_state"], verified["valid"], verified["reason"]),
                         ("verification_failed", False, "wrong"))

    def test_claim_next_without_and_with_task(self):
        first, second = self.fire(), self.fire(send_at="2000-01-01T00:00:00Z")
        self.assertEqual(self.post("/v1/executions/claim", {"worker_id": "w1"}).json()["execution_id"], first["id"])
        # With a task the SDK lists claimable executions for it and claims the first by id.
        listed = self.get("/v1/executions/claimable?task=report").json()["executions"]
        self.assertEqual(listed[0]["execution_id"], second["id"])
        self.assertEqual(self.post(f"/v1/executions/{second['id']}/claim", {"worker_id": "w1"}).status_code, 200)

    def test_replay_shape(self):
        fired = self.fire()
        Execution.objects.filter(pk=fired["id"]).update(status="success")
        body = self.post(f"/v1/executions/{fired['id']}/replay", {}).json()
        self.assertEqual(set(body), {"id", "cue_id", "scheduled_for", "status", "triggered_by", "replayed_from"})
        self.assertEqual((body["triggered_by"], body["replayed_from"]), ("replay", fired["id"]))
