import datetime
from datetime import timedelta

import time_machine
from django.test import override_settings

from cueapi.testing import CueTestCase
from cues.models import Cue
from executions import poller
from executions.models import Execution, Worker

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


@time_machine.travel(NOW, tick=False)
class WorkerTestCase(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue(name="work", transport="worker", callback=None,
                                   payload={"task": "report", "agent": "a1"})

    def pending(self, minutes=0, cue=None, **fields):
        return Execution.objects.create(cue_id=(cue or self.cue)["id"],
                                        scheduled_for=NOW - timedelta(minutes=minutes), **fields)

    def claim(self, execution, worker="w1", **kwargs):
        return self.post(f"/v1/executions/{execution.id}/claim", {"worker_id": worker}, **kwargs)


class ClaimableTests(WorkerTestCase):
    def test_it_lists_pending_and_retry_ready_oldest_first(self):
        older = self.pending(minutes=2)
        retry = self.pending(minutes=1, status="retry_ready", attempts=1)
        self.pending(minutes=3, status="delivering")
        Execution.objects.create(cue_id=self.cue["id"], scheduled_for=NOW + timedelta(hours=1))  # not yet
        webhook = self.create_cue(name="hook")
        self.pending(cue=webhook)
        body = self.get("/v1/executions/claimable").json()
        self.assertEqual([e["execution_id"] for e in body["executions"]], [str(older.id), str(retry.id)])
        self.assertEqual(body["executions"][1], {
            "execution_id": str(retry.id), "cue_id": self.cue["id"], "cue_name": "work", "task": "report",
            "scheduled_for": "2026-11-24T11:59:00Z", "payload": {"task": "report", "agent": "a1"}, "attempt": 1})

    def test_filters_apply_before_the_limit(self):
        other = self.create_cue(name="other", transport="worker", callback=None, payload={"task": "other"})
        for i in range(60):
            self.pending(minutes=100 + i, cue=other)
        mine = self.pending(minutes=1)
        self.assertEqual(len(self.get("/v1/executions/claimable").json()["executions"]), 50)
        for query in ("task=report", "agent=a1", "task=report&agent=a1"):
            with self.subTest(query):
                body = self.get(f"/v1/executions/claimable?{query}").json()
                self.assertEqual([e["execution_id"] for e in body["executions"]], [str(mine.id)])
        self.assertEqual(self.get("/v1/executions/claimable?agent=zz").json(), {"executions": []})

    def test_a_fires_payload_override_is_what_workers_see(self):
        self.post(f"/v1/cues/{self.cue['id']}/fire", {"payload_override": {"task": "special"}})
        item = self.get("/v1/executions/claimable?task=special").json()["executions"][0]
        self.assertEqual(item["payload"], {"task": "special", "agent": "a1"})

    def test_other_users_see_nothing(self):
        self.pending()
        self.assertEqual(self.get("/v1/executions/claimable", key=self.bob_key).json(), {"executions": []})


class ClaimTests(WorkerTestCase):
    def test_claim_by_id(self):
        e = self.pending()
        r = self.claim(e)
        self.assertEqual(r.json(), {"claimed": True, "execution_id": str(e.id), "lease_seconds": 900})
        e.refresh_from_db()
        self.assertEqual((e.status, e.claimed_by_worker, e.attempts, e.claimed_at), ("delivering", "w1", 1, NOW))
        self.assertEqual(e.lease_expires_at, NOW + timedelta(seconds=900))

    def test_claim_by_id_refusals_are_409(self):
        claimed = self.pending(minutes=1, status="delivering")
        bobs = self.pending(cue=self.create_cue(name="b", key=self.bob_key, transport="worker", callback=None))
        hook = self.pending(cue=self.create_cue(name="hook"))
        for execution_id in (claimed.id, bobs.id, hook.id, "not-a-uuid"):
            with self.subTest(execution_id):
                r = self.post(f"/v1/executions/{execution_id}/claim", {"worker_id": "w1"})
                self.assertError(r, 409, "claim_failed", "Execution not available for claiming")
        self.assertEqual(Execution.objects.get(pk=bobs.id).status, "pending")

    def test_retry_ready_is_claimable(self):
        e = self.pending(status="retry_ready", attempts=1)
        self.assertEqual(self.claim(e).status_code, 200)
        e.refresh_from_db()
        self.assertEqual((e.status, e.attempts), ("delivering", 2))

    def test_claim_next_takes_the_oldest(self):
        newer, older = self.pending(minutes=1), self.pending(minutes=2)
        first = self.post("/v1/executions/claim", {"worker_id": "w1"}).json()
        second = self.post("/v1/executions/claim", {"worker_id": "w2"}).json()
        self.assertEqual((first["execution_id"], second["execution_id"]), (str(older.id), str(newer.id)))
        self.assertError(self.post("/v1/executions/claim", {"worker_id": "w3"}), 409, "claim_failed",
                         "No executions available for claiming")

    def test_worker_id_is_required(self):
        e = self.pending()
        self.assertError(self.post(f"/v1/executions/{e.id}/claim", {}), 422, "validation_error",
                         "body.worker_id: Field required")
        self.assertError(self.post("/v1/executions/claim", {"worker_id": ""}), 422, "validation_error",
                         "body.worker_id: String should have at least 1 character")
        self.assertEqual(Execution.objects.get(pk=e.id).status, "pending")


class ExecutionHeartbeatTests(WorkerTestCase):
    def test_it_extends_the_lease(self):
        e = self.pending()
        self.claim(e)
        with time_machine.travel(NOW + timedelta(minutes=10), tick=False):
            r = self.post(f"/v1/executions/{e.id}/heartbeat", headers={"X-Worker-Id": "w1"})
        self.assertEqual(r.json(), {"execution_id": str(e.id), "lease_extended_until": "2026-11-24T12:25:00+00:00",
                                    "acknowledged": True})
        e.refresh_from_db()
        self.assertEqual(e.lease_expires_at, NOW + timedelta(minutes=25))

    def test_errors(self):
        e = self.pending()
        self.assertError(self.post(f"/v1/executions/{e.id}/heartbeat"), 409, "execution_not_claiming",
                         "Execution is not currently being claimed")
        self.claim(e)
        self.assertError(self.post(f"/v1/executions/{e.id}/heartbeat", headers={"X-Worker-Id": "w2"}), 403,
                         "not_execution_owner", "Only the claiming worker can heartbeat")
        self.assertError(self.post(f"/v1/executions/{e.id}/heartbeat", key=self.bob_key), 404, "execution_not_found")
        self.assertEqual(self.post(f"/v1/executions/{e.id}/heartbeat", {}).status_code, 200)  # no header: fine


class LeaseTests(WorkerTestCase):
    @override_settings(CUEAPI_WORKER_LEASE_SECONDS=60, CUEAPI_RETRY_UNIT_SECONDS=10)
    def test_an_expired_lease_is_a_failed_attempt_then_claimable_again(self):
        e = self.pending()
        self.claim(e)
        self.assertEqual(poller.expire_worker_leases(now=NOW + timedelta(seconds=59)), 0)
        self.assertEqual(poller.expire_worker_leases(now=NOW + timedelta(seconds=61)), 1)
        e.refresh_from_db()
        self.assertEqual((e.status, e.claimed_by_worker), ("retrying", "w1"))
        self.assertIn("Worker lease expired", e.error_message)
        self.assertEqual(e.next_retry, NOW + timedelta(seconds=61 + 10))  # backoff[0] = 1 unit
        poller.release_due_retries(now=e.next_retry)
        e.refresh_from_db()
        self.assertEqual(e.status, "retry_ready")
        self.assertFalse(e.outbox_rows.exists())  # workers pull: never the webhook path
        self.assertEqual(self.claim(e, worker="w2").status_code, 200)

    @override_settings(CUEAPI_WORKER_LEASE_SECONDS=60)
    def test_a_late_outcome_is_accepted(self):
        e = self.pending()
        self.claim(e)
        poller.expire_worker_leases(now=NOW + timedelta(minutes=2))
        r = self.post(f"/v1/executions/{e.id}/outcome", {"success": True, "result": "late but done"})
        self.assertEqual(r.status_code, 200)
        e.refresh_from_db()
        self.assertEqual((e.status, e.next_retry, e.outcome_result), ("success", None, "late but done"))
        # The history the admin timeline shows: the lapsed lease, then the late completion.
        self.assertEqual([(a.attempt, a.transport, a.result, a.worker_id) for a in e.delivery_attempts.all()],
                         [(1, "worker", "lease_expired", "w1"), (1, "worker", "delivered", "w1")])

    @override_settings(CUEAPI_WORKER_LEASE_SECONDS=60)
    def test_attempts_used_up_fail(self):
        cue = self.create_cue(name="once", transport="worker", callback=None, retry={"max_attempts": 1},
                              schedule={"type": "once", "at": (NOW + timedelta(hours=1)).isoformat()})
        e = self.pending(cue=cue)
        self.claim(e)
        poller.expire_worker_leases(now=NOW + timedelta(minutes=2))
        e.refresh_from_db()
        self.assertEqual(e.status, "failed")
        self.assertEqual(Cue.objects.get(pk=cue["id"]).status, "failed")

    def test_unclaimed_becomes_missed(self):
        old, fresh = self.pending(minutes=16), self.pending(minutes=5)
        self.assertEqual(poller.miss_unclaimed_worker_executions(now=NOW), 1)
        old.refresh_from_db()
        fresh.refresh_from_db()
        self.assertEqual((old.status, old.error_message),
                         ("missed", "No worker claimed this execution within timeout window"))
        self.assertEqual(fresh.status, "pending")


class WorkersApiTests(WorkerTestCase):
    def test_heartbeat_list_delete(self):
        r = self.post("/v1/worker/heartbeat", {"worker_id": "w1", "handlers": ["report"]})
        self.assertEqual(r.json(), {"acknowledged": True, "server_time": "2026-11-24T12:00:00Z"})
        self.post("/v1/worker/heartbeat", {"worker_id": "w1"})  # handlers omitted -> null
        Worker.objects.create(user=self.alice, worker_id="old", handlers=None,
                              last_heartbeat=NOW - timedelta(seconds=200))
        Worker.objects.create(user=self.alice, worker_id="gone", last_heartbeat=NOW - timedelta(hours=1))
        Worker.objects.create(user=self.bob, worker_id="bobs", last_heartbeat=NOW)
        workers = self.get("/v1/workers").json()["workers"]
        self.assertEqual([(w["worker_id"], w["heartbeat_status"]) for w in workers],
                         [("w1", "active"), ("old", "stale"), ("gone", "dead")])
        self.assertEqual(workers[0], {"worker_id": "w1", "last_heartbeat": "2026-11-24T12:00:00Z",
                                      "seconds_since_heartbeat": 0, "heartbeat_status": "active",
                                      "handlers": None, "registered_since": "2026-11-24T12:00:00Z"})
        self.assertEqual(self.delete("/v1/workers/old").status_code, 204)
        self.assertError(self.delete("/v1/workers/old"), 404, "worker_not_found", "Worker not found")
        self.assertError(self.delete("/v1/workers/bobs"), 404, "worker_not_found")

    def test_a_live_worker_silences_the_cue_warning(self):
        self.post("/v1/worker/heartbeat", {"worker_id": "w1"})
        self.assertIsNone(self.create_cue(name="w2", transport="worker", callback=None,
                                          payload={"task": "report"})["warning"])
