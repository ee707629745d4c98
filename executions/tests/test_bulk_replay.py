"""POST /v1/executions/replay: many finished executions replayed at once, each exactly as
POST /v1/executions/{id}/replay would."""

import datetime
from datetime import timedelta

from accounts.models import User
from cueapi.testing import CueTestCase
from executions.models import Execution

T0 = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
CONFIRM = {"X-Confirm-Destructive": "true"}


class BulkReplayTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue()
        self.other = self.create_cue(name="other")

    def execution(self, status="failed", minutes=0, cue=None, **fields):
        return Execution.objects.create(cue_id=(cue or self.cue)["id"], status=status,
                                        scheduled_for=T0 + timedelta(minutes=minutes), payload={"n": minutes},
                                        required_assertions=["rows"], **fields)

    def replay(self, body=None, key=None, headers=CONFIRM):
        return self.post("/v1/executions/replay", body, key=key, headers=headers)

    def used(self, user):
        return self.get("/v1/usage", key=self.alice_key if user == "alice" else self.bob_key).json()["executions"]["used"]

    def test_it_replays_failed_ones_oldest_first_like_the_single_replay(self):
        late = self.execution(minutes=5)
        early = self.execution(minutes=1, cue=self.other)
        self.execution("success", minutes=2)
        self.execution("missed", minutes=3)
        r = self.replay()
        self.assertEqual(r.status_code, 200, r.content)
        body = r.json()
        # Exactly the answer: `limit_reached` appears only when the monthly limit stopped it.
        self.assertEqual(set(body), {"replayed", "count"})
        self.assertEqual(body["count"], 2)
        self.assertEqual([set(item) for item in body["replayed"]], [{"from", "execution_id"}] * 2)
        self.assertEqual([item["from"] for item in body["replayed"]], [str(early.id), str(late.id)])
        for item, original in zip(body["replayed"], (early, late)):
            replay = Execution.objects.get(pk=item["execution_id"])
            self.assertEqual((replay.cue_id, replay.status, replay.triggered_by, replay.replayed_from,
                              replay.payload, replay.required_assertions),
                             (original.cue_id, "pending", "replay", original.id, original.payload, ["rows"]))
            self.assertEqual(replay.outbox_rows.count(), 1)
            detail = self.get(f"/v1/executions/{replay.id}").json()
            self.assertEqual(detail["replayed_from"], str(original.id))
        # The originals are untouched.
        self.assertEqual(Execution.objects.get(pk=late.pk).status, "failed")
        self.assertEqual(self.used("alice"), 2)

    def test_filters(self):
        a = self.execution(minutes=1)
        b = self.execution(minutes=10)
        c = self.execution(minutes=20, cue=self.other)
        m = self.execution("missed", minutes=30)
        t = self.execution("outcome_timeout", minutes=40)
        replayed_from = lambda body: [i["from"] for i in self.replay(body).json()["replayed"]]  # noqa: E731
        self.assertEqual(replayed_from({"cue_id": self.other["id"]}), [str(c.id)])
        self.assertEqual(replayed_from({"status": "missed"}), [str(m.id)])
        self.assertEqual(replayed_from({"status": "outcome_timeout"}), [str(t.id)])
        self.assertEqual(replayed_from({"since": (T0 + timedelta(minutes=10)).isoformat()}), [str(b.id), str(c.id)])
        self.assertEqual(replayed_from({"until": (T0 + timedelta(minutes=10)).isoformat()}), [str(a.id)])
        self.assertEqual(replayed_from({"since": (T0 + timedelta(minutes=5)).isoformat(),
                                        "until": (T0 + timedelta(minutes=15)).isoformat(), "cue_id": self.cue["id"]}),
                         [str(b.id)])

    def test_limit(self):
        ids = [str(self.execution(minutes=i).id) for i in range(5)]
        body = self.replay({"limit": 2}).json()
        self.assertEqual([i["from"] for i in body["replayed"]], ids[:2])
        self.assertEqual(body["count"], 2)

    def test_running_it_again_replays_the_originals_again(self):
        original = self.execution()
        first = self.replay().json()["replayed"]
        second = self.replay().json()["replayed"]
        self.assertEqual([i["from"] for i in first], [str(original.id)])
        self.assertEqual([i["from"] for i in second], [str(original.id)])
        self.assertNotEqual(first[0]["execution_id"], second[0]["execution_id"])

    def test_nothing_to_replay(self):
        self.assertEqual(self.replay().json(), {"replayed": [], "count": 0})

    def test_it_stops_at_the_monthly_limit(self):
        for i in range(4):
            self.execution(minutes=i)
        User.objects.filter(pk=self.alice.pk).update(monthly_execution_limit=self.used("alice") + 3)
        body = self.replay().json()
        self.assertEqual((set(body), body["count"], body["limit_reached"]), ({"replayed", "count", "limit_reached"}, 3, True))
        self.assertEqual(Execution.objects.filter(triggered_by="replay").count(), 3)
        # At the limit with nothing replayed: 403, as the single replay.
        self.assertError(self.replay(), 403, "execution_limit_exceeded")
        self.assertEqual(Execution.objects.filter(triggered_by="replay").count(), 3)

    def test_it_only_sees_the_callers_executions(self):
        bobs_cue = self.create_cue(name="bobs", key=self.bob_key)
        bobs = self.execution(cue=bobs_cue)
        mine = self.execution(minutes=1)
        body = self.replay().json()
        self.assertEqual([i["from"] for i in body["replayed"]], [str(mine.id)])
        self.assertError(self.replay({"cue_id": bobs_cue["id"]}), 404, "cue_not_found")
        self.assertEqual(self.used("bob"), 0)
        body = self.replay(key=self.bob_key).json()
        self.assertEqual([i["from"] for i in body["replayed"]], [str(bobs.id)])
        self.assertEqual(self.used("bob"), 1)

    def test_it_requires_confirmation(self):
        self.execution()
        self.assertError(self.replay(headers={}), 400, "confirmation_required")
        self.assertError(self.replay(headers={"X-Confirm-Destructive": "yes"}), 400, "confirmation_required")
        self.assertEqual(Execution.objects.filter(triggered_by="replay").count(), 0)

    def test_it_validates(self):
        cases = [({"status": "success"}, "body.status"), ({"status": "pending"}, "body.status"),
                 ({"limit": 0}, "body.limit"), ({"limit": 101}, "body.limit"),
                 # A wrong type is 422 too (#19), "5" and 5.0 included: a JSON integer only.
                 ({"limit": "5"}, "body.limit"), ({"limit": 5.0}, "body.limit"), ({"limit": True}, "body.limit"),
                 ({"limit": None}, "body.limit"), ({"limit": 10**30}, "body.limit"), ({"since": "yesterday"}, "body.since"),
                 ({"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, "body.until")]
        for body, loc in cases:
            with self.subTest(body):
                error = self.assertError(self.replay(body), 422, "validation_error")
                self.assertIn(loc, error["message"])

    def test_it_requires_api_key(self):
        self.assertEqual(self.replay(key=None, headers=CONFIRM).status_code, 200)
        self.assertEqual(self.post("/v1/executions/replay", anonymous=True, headers=CONFIRM).status_code, 401)
