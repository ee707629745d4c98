"""POST /v1/cues/{id}/backfill: an execution for each past slot of a recurring cue that has
none yet (README "Upsert and backfill")."""

import datetime
from datetime import timedelta

import time_machine

from accounts.models import User
from accounts.selectors import user_executions_this_month
from accounts.services import usage_increment
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions import poller
from executions.models import DispatchOutbox, Execution

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def at(hour, minute=0, day=24, month=11):
    return datetime.datetime(2026, month, day, hour, minute, tzinfo=UTC)


@time_machine.travel(NOW, tick=False)
class BackfillTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue(schedule={"type": "recurring", "cron": "0 * * * *"}, payload={"task": "t"})
        self.url = f"/v1/cues/{self.cue['id']}/backfill"

    def backfill(self, start, end, url=None, **kwargs):
        return self.post(url or self.url, {"start": start, "end": end}, **kwargs)

    def backfill_ok(self, start, end, url=None):
        r = self.backfill(start, end, url)
        self.assertEqual(r.status_code, 200, r.content)
        return r.json()

    def test_it_works(self):
        body = self.backfill_ok("2026-11-24T08:00:00Z", "2026-11-24T11:00:00Z")
        self.assertEqual(set(body), {"created", "skipped_existing", "executions"})
        self.assertEqual((body["created"], body["skipped_existing"]), (3, 0))
        executions = [Execution.objects.get(pk=i) for i in body["executions"]]
        # [start, end): 08:00, 09:00, 10:00, oldest first; 11:00 is end and not in it.
        self.assertEqual([e.scheduled_for for e in executions], [at(8), at(9), at(10)])
        for e in executions:
            self.assertEqual((e.status, e.triggered_by, e.payload, e.cue_id),
                             ("pending", "backfill", None, self.cue["id"]))
            # Sent at once: the outbox row is available from the slot's time, which has passed.
            self.assertEqual(DispatchOutbox.objects.get(execution=e).available_at, e.scheduled_for)
        self.assertEqual(user_executions_this_month(user=self.alice, moment=NOW), 3)
        cue = Cue.objects.get(pk=self.cue["id"])
        self.assertEqual((cue.fired_count, cue.run_count, cue.next_run), (0, 0, at(13)))

    def test_slots_with_an_execution_are_skipped(self):
        Execution.objects.create(cue_id=self.cue["id"], scheduled_for=at(9), status="success")
        body = self.backfill_ok("2026-11-24T08:00:00Z", "2026-11-24T11:00:00Z")
        self.assertEqual((body["created"], body["skipped_existing"]), (2, 1))
        again = self.backfill_ok("2026-11-24T07:00:00Z", "2026-11-24T12:00:00Z")
        self.assertEqual((again["created"], again["skipped_existing"]), (2, 3))
        self.assertEqual([Execution.objects.get(pk=i).scheduled_for for i in again["executions"]], [at(7), at(11)])
        self.assertEqual(Execution.objects.filter(cue_id=self.cue["id"]).count(), 5)
        self.assertEqual(user_executions_this_month(user=self.alice, moment=NOW), 4)
        self.assertEqual(self.backfill_ok("2026-11-24T07:00:00Z", "2026-11-24T12:00:00Z"),
                         {"created": 0, "skipped_existing": 5, "executions": []})

    def test_a_range_without_slots(self):
        self.assertEqual(self.backfill_ok("2026-11-24T08:01:00Z", "2026-11-24T09:00:00Z"),
                         {"created": 0, "skipped_existing": 0, "executions": []})
        self.assertFalse(Execution.objects.exists())

    def test_timestamps_like_schedule_at(self):
        # No offset: UTC. An offset is honoured; Unix time is accepted; end may be now.
        self.assertEqual(self.backfill_ok("2026-11-24T10:00:00", "2026-11-24T11:30:00+01:00")["created"], 1)
        body = self.backfill_ok(int(at(10, 30).timestamp()), "2026-11-24T12:00:00Z")
        self.assertEqual([Execution.objects.get(pk=i).scheduled_for for i in body["executions"]], [at(11)])

    def test_the_schedulers_slots_across_dst(self):
        # The scheduler's DST rules (cues/schedule.py): a fixed-time job in the spring gap runs
        # at the transition; an interval-style one runs twice in the repeated autumn hour.
        cue = self.create_cue(name="ny-fixed", schedule={"type": "recurring", "cron": "30 2 * * *",
                                                         "timezone": "America/New_York"})
        body = self.backfill_ok("2026-03-07T00:00:00Z", "2026-03-10T00:00:00Z", f"/v1/cues/{cue['id']}/backfill")
        self.assertEqual([Execution.objects.get(pk=i).scheduled_for for i in body["executions"]],
                         [at(7, 30, 7, 3), at(7, 0, 8, 3), at(6, 30, 9, 3)])
        cue = self.create_cue(name="ny-interval", schedule={"type": "recurring", "cron": "30 * * * *",
                                                            "timezone": "America/New_York"})
        body = self.backfill_ok("2026-11-01T04:00:00Z", "2026-11-01T08:00:00Z", f"/v1/cues/{cue['id']}/backfill")
        # 00:30 EDT, 01:30 EDT, 01:30 EST, 02:30 EST.
        self.assertEqual([Execution.objects.get(pk=i).scheduled_for for i in body["executions"]],
                         [at(4, 30, 1), at(5, 30, 1), at(6, 30, 1), at(7, 30, 1)])

    def test_any_status(self):
        for status in ("paused", "completed", "failed"):
            with self.subTest(status=status):
                Execution.objects.all().delete()
                Cue.objects.filter(pk=self.cue["id"]).update(status=status, next_run=None)
                self.assertEqual(self.backfill_ok("2026-11-24T10:00:00Z", "2026-11-24T12:00:00Z")["created"], 2)

    def test_exactly_100_slots(self):
        body = self.backfill_ok("2026-11-20T08:00:00Z", "2026-11-24T12:00:00Z")
        self.assertEqual(body["created"], 100)
        self.assertEqual(Execution.objects.order_by("scheduled_for").first().scheduled_for, at(8, day=20))

    def test_a_worker_cue(self):
        cue = self.create_cue(name="w", transport="worker", callback=None, payload={"task": "t"},
                              schedule={"type": "recurring", "cron": "0 * * * *"})
        body = self.backfill_ok("2026-11-24T09:00:00Z", "2026-11-24T11:00:00Z", f"/v1/cues/{cue['id']}/backfill")
        self.assertEqual(body["created"], 2)
        self.assertFalse(DispatchOutbox.objects.exists())
        claimable = self.get("/v1/executions/claimable").json()["executions"]
        self.assertEqual([e["execution_id"] for e in claimable], body["executions"])
        # Born now, long after their slots: a worker has 15 minutes from now to claim them.
        self.assertEqual(poller.miss_unclaimed_worker_executions(now=NOW + timedelta(minutes=14)), 0)
        self.assertEqual(poller.miss_unclaimed_worker_executions(now=NOW + timedelta(minutes=16)), 2)


@time_machine.travel(NOW, tick=False)
class BackfillErrorTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue(schedule={"type": "recurring", "cron": "*/5 * * * *"})
        self.url = f"/v1/cues/{self.cue['id']}/backfill"

    def assertNothingCreated(self):
        self.assertFalse(Execution.objects.exists())
        self.assertFalse(DispatchOutbox.objects.exists())
        self.assertEqual(user_executions_this_month(user=self.alice, moment=NOW), 0)

    def test_bad_ranges(self):
        cases = [
            ({"start": "2026-11-24T11:00:00Z", "end": "2026-11-24T11:00:00Z"}, "body.end",
             "end must be later than start: the range is [start, end)"),
            ({"start": "2026-11-24T11:00:00Z", "end": "2026-11-24T10:00:00Z"}, "body.end",
             "end must be later than start: the range is [start, end)"),
            ({"start": "2026-11-24T11:00:00Z", "end": "2026-11-24T12:00:00.000001Z"}, "body.end",
             "end is in the future; backfill covers past slots only: use an end at or before now "
             "(2026-11-24T12:00:00+00:00)"),
            ({"start": "2026-11-23T16:00:00Z", "end": "2026-11-24T12:00:00Z"}, "body.end",
             "The range holds 240 slots; at most 100 per request: narrow it (send several requests for a "
             "longer range)"),
            ({"start": "2026-01-01T00:00:00Z", "end": "2026-11-24T12:00:00Z"}, "body.end",
             "The range holds more than 1000 slots; at most 100 per request: narrow it (send several requests "
             "for a longer range)"),
            ({"start": "2026-11-24T11:00:00Z"}, "body.end", "Field required"),
            ({"end": "2026-11-24T11:00:00Z"}, "body.start", "Field required"),
            ({"start": "yesterday", "end": "2026-11-24T11:00:00Z"}, "body.start",
             "Input should be a valid datetime or date, input is too short"),
            ({"start": None, "end": "2026-11-24T11:00:00Z"}, "body.start", "Input should be a valid datetime"),
            ([], "body", "Input should be a valid dictionary or object to extract fields from"),
        ]
        for body, field, message in cases:
            with self.subTest(body=body):
                error = self.assertError(self.post(self.url, body), 422, "validation_error", f"{field}: {message}")
                self.assertEqual(error["details"][0]["field"], field)
                self.assertNothingCreated()

    def test_the_first_instant_there_is(self):
        # 0001-01-01T00:00Z has no instant before it; the schedule math must not overflow there.
        body = {"start": "0001-01-01T00:00:00Z", "end": "0001-01-01T00:00:00.000001Z"}
        self.assertEqual(self.post(self.url, body).json(), {"created": 0, "skipped_existing": 0, "executions": []})
        body = {"start": "0001-01-01T00:00:00Z", "end": "0001-01-01T00:10:00Z"}
        created = self.post(self.url, body).json()["executions"]
        self.assertEqual([Execution.objects.get(pk=i).scheduled_for for i in created],
                         [datetime.datetime(1, 1, 1, 0, 5, tzinfo=UTC)])
        error = self.assertError(self.post(self.url, {"start": "0001-01-01T00:00:00Z", "end": "2026-11-24T12:00:00Z"}),
                                 422, "validation_error")
        self.assertIn("The range holds more than 1000 slots", error["message"])

    def test_an_empty_body(self):
        self.assertError(self.post(self.url), 422, "validation_error", "body: Field required")

    def test_a_one_time_cue(self):
        cue = self.create_cue(name="once", schedule={"type": "once", "at": "2026-12-01T00:00:00Z"})
        error = self.assertError(self.post(f"/v1/cues/{cue['id']}/backfill", {
            "start": "2026-11-24T10:00:00Z", "end": "2026-11-24T11:00:00Z"}), 422, "validation_error")
        self.assertEqual(error["details"][0]["field"], "path.cue_id")
        self.assertIn("is a one-time cue; backfill creates the past slots of a recurring schedule only",
                      error["message"])
        self.assertIn(f"POST /v1/cues/{cue['id']}/fire", error["message"])
        self.assertNothingCreated()

    def test_a_schedule_that_cant_be_computed(self):
        # A stored time zone the installed tzdata no longer has (the poller parks such a cue).
        Cue.objects.filter(pk=self.cue["id"]).update(schedule_timezone="Gone/Away")
        self.assertError(self.post(self.url, {"start": "2026-11-24T10:00:00Z", "end": "2026-11-24T11:00:00Z"}),
                         400, "invalid_schedule", "The cue's schedule can't be computed: Unknown timezone: 'Gone/Away'")
        self.assertNothingCreated()

    def test_it_hides_bobs_cue(self):
        body = {"start": "2026-11-24T10:00:00Z", "end": "2026-11-24T11:00:00Z"}
        self.assertError(self.post(self.url, body, key=self.bob_key), 404, "cue_not_found")
        self.assertError(self.post("/v1/cues/cue_nope/backfill", body), 404, "cue_not_found")
        self.assertNothingCreated()

    def test_it_requires_api_key(self):
        body = {"start": "2026-11-24T10:00:00Z", "end": "2026-11-24T11:00:00Z"}
        self.assertError(self.post(self.url, body, anonymous=True), 401, "invalid_api_key")
        self.assertNothingCreated()

    def test_the_monthly_limit(self):
        User.objects.filter(pk=self.alice.pk).update(monthly_execution_limit=20)
        usage_increment(user_id=self.alice.pk, count=10, moment=NOW)
        eleven = {"start": "2026-11-24T11:00:00Z", "end": "2026-11-24T11:55:00Z"}
        error = self.assertError(self.post(self.url, eleven), 403, "execution_limit_exceeded")
        self.assertIn("This backfill creates 11 executions and 10 remain under the monthly execution limit of 20",
                      error["message"])
        self.assertFalse(Execution.objects.exists())
        self.assertEqual(user_executions_this_month(user=self.alice, moment=NOW), 10)
        # Slots that have an execution cost nothing: 10 new ones fit.
        Execution.objects.create(cue_id=self.cue["id"], scheduled_for=at(11), status="success")
        body = self.post(self.url, eleven).json()
        self.assertEqual((body["created"], body["skipped_existing"]), (10, 1))
        # At the limit: what would create anything is refused with fire's message; what
        # creates nothing is fine.
        error = self.assertError(self.post(self.url, {"start": "2026-11-24T10:55:00Z", "end": "2026-11-24T11:00:00Z"}),
                                 403, "execution_limit_exceeded")
        self.assertTrue(error["message"].startswith("Monthly execution limit of 20 reached"))
        self.assertEqual(self.post(self.url, eleven).json()["created"], 0)
        self.assertEqual(Execution.objects.count(), 11)
