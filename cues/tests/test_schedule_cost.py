"""No schedule can make the engine's schedule math expensive: a minimum interval between
firings (422 at create and PATCH), a bounded number of croniter steps per planning whatever the
cron and the downtime, and one error type for schedules that can't be computed any more."""

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from croniter import croniter
from django.test import SimpleTestCase, override_settings

from cueapi.testing import CueTestCase
from cues import schedule
from cues.schedule import ScheduleError, min_interval_seconds, next_fire, plan_catch_up, previous_fire

UTC = timezone.utc
JUNE = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)  # far from any DST change


@contextmanager
def counted_steps():
    """How many croniter steps (get_next/get_prev) the block takes."""
    steps = [0]
    real_next, real_prev = croniter.get_next, croniter.get_prev

    def get_next(self, *args, **kwargs):
        steps[0] += 1
        return real_next(self, *args, **kwargs)

    def get_prev(self, *args, **kwargs):
        steps[0] += 1
        return real_prev(self, *args, **kwargs)

    croniter.get_next, croniter.get_prev = get_next, get_prev
    try:
        yield steps
    finally:
        croniter.get_next, croniter.get_prev = real_next, real_prev


class MinIntervalTests(SimpleTestCase):
    def test_table(self):
        for expr, seconds in [
            ("* * * * *", 60),
            ("*/15 * * * *", 900),
            ("0,10 * * * *", 600),  # 0 -> 10 is 10 minutes; 10 -> 0 of the next hour is 50
            ("0,50 * * * *", 600),  # the wrap is the shortest: 50 -> 0 of the next hour
            ("0,50 9 * * *", 3000),  # no wrap: hour 10 never fires
            ("0 * * * *", 3600),
            ("0 9,17 * * *", 8 * 3600),
            ("0 0,23 * * *", 3600),  # 23:00 -> 00:00 of the next day
            ("0 9 * * 1-5", 86_400),
            ("@daily", 86_400),
            ("* * * * * *", 1),  # six fields: the last is seconds
            ("* * * * * */10", 10),
            ("* * * * * 0,30", 30),
            ("* * * * * 0,59", 1),  # 59 -> 0 of the next minute
            ("0 * * * * 5", 3600),  # minute 0, second 5: hourly
            ("*/2 * * * * 0", 120),
            ("*/7 * * * *", 240),  # :56 -> :00 of the next hour
            ("0 */5 * * *", 4 * 3600),  # 20:00 -> 00:00 of the next day
            ("0,59 0,23 * * *", 60),  # 23:59 -> 00:00 of the next day
            ("0 0 L * *", 86_400),
            ("@yearly", 86_400),  # a day change counts as one day
            ("* * * * * 10,50", 20),  # :50 -> :10 of the next minute
            ("* * * * * 30", 60),
            ("30 * * * * *", 1),  # every second of minute 30
            ("0,59 0,23 * * * 0,59", 1),  # 23:59:59 -> 00:00:00 of the next day
            ("0,59 5 * * * 0,59", 59),  # no wrap from 05:59:59: hour 6 never fires
        ]:
            with self.subTest(expr):
                self.assertEqual(min_interval_seconds(expr), seconds)


class MinIntervalApiTests(CueTestCase):
    def test_create_refuses_a_per_second_cron(self):
        r = self.post("/v1/cues", {"name": "fast", "callback": {"url": "http://127.0.0.1:9/h"},
                                   "schedule": {"type": "recurring", "cron": "* * * * * *"}})
        error = self.assertError(r, 422, "validation_error")
        self.assertEqual(error["details"][0]["field"], "body.schedule.cron")
        self.assertIn("every 1 second", error["message"])
        self.assertIn("minimum interval on this server is 60 seconds", error["message"])
        self.assertEqual(self.get("/v1/cues").json()["cues"], [])

    def test_patch_refuses_it_and_changes_nothing(self):
        cue = self.create_cue()
        r = self.patch(f"/v1/cues/{cue['id']}", {"schedule": {"type": "recurring", "cron": "* * * * * */5"}})
        self.assertError(r, 422, "validation_error")
        self.assertEqual(self.get(f"/v1/cues/{cue['id']}").json()["schedule"]["cron"], "0 9 * * *")

    def test_every_minute_is_fine_and_the_minimum_is_configurable(self):
        self.create_cue(name="a", schedule={"type": "recurring", "cron": "* * * * *"})
        with override_settings(CUEAPI_MIN_SCHEDULE_INTERVAL_SECONDS=1):
            self.create_cue(name="b", schedule={"type": "recurring", "cron": "* * * * * *"})
        with override_settings(CUEAPI_MIN_SCHEDULE_INTERVAL_SECONDS=300):
            self.assertError(self.post("/v1/cues", {"name": "c", "callback": {"url": "http://127.0.0.1:9/h"},
                                                    "schedule": {"type": "recurring", "cron": "*/2 * * * *"}}),
                             422, "validation_error")


class PlanningCostTests(SimpleTestCase):
    CRONS = ["* * * * *", "*/5 * * * *", "0 9 * * 1-5", "* * * * * *"]

    def test_next_fire_is_one_step_away_from_dst_changes(self):
        for expr in self.CRONS:
            with self.subTest(expr), counted_steps() as steps:
                next_fire(expr, "America/New_York", JUNE)
            self.assertLessEqual(steps[0], 2)

    def test_a_planning_is_bounded_whatever_the_downtime(self):
        for expr in self.CRONS:
            for behind in (timedelta(0), timedelta(hours=1), timedelta(days=30)):
                with self.subTest(expr=expr, behind=behind), counted_steps() as steps:
                    due = next_fire(expr, "America/New_York", JUNE - behind - timedelta(seconds=1))
                    plan_catch_up(expr=expr, tz_name="America/New_York", due=due, now=JUNE, policy="latest")
                # Fired (1) + recorded missed (<= 100) + next_run, a couple of steps each.
                self.assertLessEqual(steps[0], 3 * (schedule.MISSED_MAX_RECORDED + 3))

    def test_the_all_policy_is_bounded_too(self):
        with counted_steps() as steps:
            plan = plan_catch_up(expr="* * * * * *", tz_name="UTC", due=JUNE - timedelta(days=30), now=JUNE,
                                 policy="all")
        self.assertEqual(len(plan.fire), schedule.CATCH_UP_MAX_FIRED)
        self.assertLessEqual(steps[0], 3 * (schedule.CATCH_UP_MAX_FIRED + schedule.MISSED_MAX_RECORDED + 3))


class BoundedStepsTests(SimpleTestCase):
    """A few croniter steps per slot a planning returns, and per next/previous fire, DST or not."""

    CRONS = ["* * * * * *", "* * * * *", "*/5 * * * *", "0 9 * * 1-5"]
    NOW = datetime(2026, 11, 24, 12, 0, 30, tzinfo=UTC)

    def plan(self, expr, behind, policy):
        """A planning for a cue due `behind` before the poller's clock, half a second past."""
        due = previous_fire(expr, "America/New_York", self.NOW - behind)
        now = due + behind + timedelta(milliseconds=500)
        with counted_steps() as steps:
            plan = plan_catch_up(expr=expr, tz_name="America/New_York", due=due, now=now, policy=policy)
        return plan, steps[0]

    def test_an_on_time_planning_takes_a_few_steps(self):
        for expr in self.CRONS:
            for policy in ("all", "latest", "none"):
                with self.subTest(expr=expr, policy=policy):
                    plan, steps = self.plan(expr, timedelta(0), policy)
                    self.assertEqual(len(plan.fire), 1)
                    self.assertLessEqual(steps, 4)

    def test_a_late_planning_takes_one_step_per_slot_it_returns(self):
        for expr in self.CRONS:
            for behind in (timedelta(hours=1), timedelta(days=30), timedelta(days=3650)):
                for policy in ("all", "latest", "none"):
                    with self.subTest(expr=expr, behind=behind, policy=policy):
                        plan, steps = self.plan(expr, behind, policy)
                        self.assertLessEqual(steps, len(plan.fire) + len(plan.missed) + 4)

    def test_the_cost_stops_growing_at_the_record_cap(self):
        for expr in ("* * * * * *", "* * * * *"):
            with self.subTest(expr):
                costs = {self.plan(expr, behind, "latest")[1] for behind in (timedelta(days=1), timedelta(days=3650))}
                self.assertEqual(len(costs), 1, costs)

    def test_three_steps_at_most_around_clock_changes(self):
        # New York 2026: 02:00 EST -> 03:00 EDT on March 8 (07:00 UTC), 02:00 EDT -> 01:00 EST
        # on November 1 (06:00 UTC). Moments before, in and after each change.
        changes = [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)]
        offsets = [timedelta(minutes=m, seconds=s) for m in (-90, -61, -30, -1, 0, 1, 30, 59, 61, 90) for s in (0, 30)]
        for expr in ("* * * * * *", "* 1-2 * * * *", "* * * * *", "30 1 * * *", "30 2 * * *"):
            for change in changes:
                for offset in offsets:
                    for function in (next_fire, previous_fire):
                        with self.subTest(expr=expr, moment=change + offset, function=function.__name__):
                            with counted_steps() as steps:
                                function(expr, "America/New_York", change + offset)
                            self.assertLessEqual(steps[0], 3)


class OneErrorTypeTests(SimpleTestCase):
    def test_a_zone_the_tzdata_no_longer_has(self):
        with self.assertRaisesMessage(ScheduleError, "Unknown timezone: 'Mars/Olympus_Mons'"):
            plan_catch_up(expr="0 * * * *", tz_name="Mars/Olympus_Mons", due=JUNE, now=JUNE, policy="latest")

    def test_a_cron_that_no_longer_parses(self):
        with self.assertRaises(ScheduleError):
            next_fire("61 * * * *", "UTC", JUNE)

    def test_any_other_failure_of_the_library(self):
        real = croniter.get_next

        def broken(self, *args, **kwargs):
            raise OverflowError("date value out of range")

        croniter.get_next = broken
        try:
            with self.assertRaisesMessage(ScheduleError, "schedule math failed: OverflowError"):
                next_fire("0 * * * *", "UTC", JUNE)
        finally:
            croniter.get_next = real
