import datetime
import uuid

import time_machine

from accounts.models import User
from accounts.selectors import user_executions_this_month
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions.models import Execution

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


@time_machine.travel(NOW, tick=False)
class FireTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue(payload={"task": "report", "n": 1})
        self.url = f"/v1/cues/{self.cue['id']}/fire"

    def test_it_works(self):
        r = self.post(self.url)
        self.assertEqual(r.status_code, 200)
        body = r.json()
        self.assertEqual(set(body), {"id", "cue_id", "scheduled_for", "status", "triggered_by"})
        uuid.UUID(body["id"])
        self.assertEqual(
            {k: v for k, v in body.items() if k != "id"},
            {"cue_id": self.cue["id"], "scheduled_for": "2026-11-24T12:00:00+00:00",
             "status": "pending", "triggered_by": "manual_fire"},
        )
        execution = Execution.objects.get(pk=body["id"])
        self.assertEqual((execution.status, execution.scheduled_for, execution.payload), ("pending", NOW, None))
        cue = Cue.objects.get(pk=self.cue["id"])
        self.assertEqual((cue.fired_count, cue.run_count), (0, 0))  # fire doesn't touch counters
        self.assertEqual(self.get(f"/v1/cues/{self.cue['id']}").json()["next_run"], self.cue["next_run"])
        self.assertEqual(user_executions_this_month(user=self.alice), 1)

    def test_any_status_can_fire(self):
        Cue.objects.filter(pk=self.cue["id"]).update(status="completed")
        self.assertEqual(self.post(self.url).status_code, 200)

    def test_send_at_in_the_future_keeps_the_offset(self):
        body = self.post(self.url, {"send_at": "2099-01-01T00:00:00+02:00"}).json()
        self.assertEqual(body["scheduled_for"], "2099-01-01T00:00:00+02:00")
        self.assertEqual(Execution.objects.get(pk=body["id"]).scheduled_for,
                         datetime.datetime(2098, 12, 31, 22, 0, tzinfo=datetime.timezone.utc))
        body = self.post(self.url, {"send_at": "2099-01-02T00:00:00Z"}).json()
        self.assertEqual(body["scheduled_for"], "2099-01-02T00:00:00+00:00")

    def test_send_at_in_the_past_fires_now(self):
        body = self.post(self.url, {"send_at": "2020-01-01T00:00:00Z"}).json()
        self.assertEqual(body["scheduled_for"], "2026-11-24T12:00:00+00:00")

    def test_naive_send_at_is_422(self):
        self.assertError(self.post(self.url, {"send_at": "2099-01-01T00:00:00"}), 422, "validation_error",
                         "body.send_at: Input should have timezone info")
        self.assertFalse(Execution.objects.exists())

    def test_same_send_at_twice_is_409(self):
        self.post(self.url, {"send_at": "2099-01-01T00:00:00Z"})
        self.assertError(self.post(self.url, {"send_at": "2099-01-01T00:00:00Z"}), 409, "duplicate_execution")
        self.assertEqual(Execution.objects.count(), 1)

    def test_payload_override_merges_or_replaces(self):
        merged = self.post(self.url, {"payload_override": {"n": 2, "extra": True}}).json()
        self.assertEqual(Execution.objects.get(pk=merged["id"]).payload, {"task": "report", "n": 2, "extra": True})
        with time_machine.travel(NOW + datetime.timedelta(seconds=1), tick=False):
            replaced = self.post(self.url, {"payload_override": {"n": 3}, "merge_strategy": "replace"}).json()
        self.assertEqual(Execution.objects.get(pk=replaced["id"]).payload, {"n": 3})

    def test_bad_body(self):
        self.assertError(self.post(self.url, {"merge_strategy": "mix"}), 422, "validation_error",
                         "body.merge_strategy: Input should be 'merge' or 'replace'")
        self.assertError(self.post(self.url, {"payload_override": "x"}), 422, "validation_error",
                         "body.payload_override: Input should be a valid dictionary")
        self.assertError(self.post(self.url, {"payload_override": {"a": "\x00"}}), 400, "invalid_payload")
        self.assertFalse(Execution.objects.exists())

    def test_verify_echo(self):
        # No body: the empty string and the SHA-256 of no bytes (the echo itself is the
        # middleware's, tested in cueapi/tests/test_verify_echo.py).
        body = self.post(self.url, headers={"X-CueAPI-Verify-Echo": " TRUE "}).json()
        self.assertEqual(body["body_received"], "")
        self.assertEqual(body["body_received_sha256"],
                         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        self.assertEqual(Execution.objects.count(), 1)

    def test_monthly_limit(self):
        User.objects.filter(pk=self.alice.pk).update(monthly_execution_limit=1)
        self.assertEqual(self.post(self.url).status_code, 200)
        with time_machine.travel(NOW + datetime.timedelta(seconds=1), tick=False):
            self.assertError(self.post(self.url), 403, "execution_limit_exceeded",
                             "Monthly execution limit of 1 reached for this UTC month. Raise the "
                             "user's monthly_execution_limit in the admin (0 = no limit).")
        self.assertEqual(Execution.objects.count(), 1)

    def test_it_hides_bobs_cue(self):
        self.assertError(self.post(self.url, key=self.bob_key), 404, "cue_not_found")
        self.assertError(self.post("/v1/cues/cue_nope/fire"), 404, "cue_not_found")
        self.assertFalse(Execution.objects.exists())


class FireSameInstantTests(CueTestCase):
    def test_two_fires_in_the_same_microsecond_both_succeed(self):
        cue = self.create_cue()
        with time_machine.travel(NOW, tick=False):
            first = self.post(f"/v1/cues/{cue['id']}/fire").json()
            second = self.post(f"/v1/cues/{cue['id']}/fire").json()
        self.assertNotEqual(first["id"], second["id"])
        self.assertEqual(Execution.objects.count(), 2)
