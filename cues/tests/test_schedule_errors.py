"""Schedule math on stored data that no longer works fails with ScheduleError only."""

from datetime import datetime, timedelta, timezone

from django.test import SimpleTestCase

from cues.schedule import ScheduleError, next_fire, plan_catch_up, previous_fire

UTC = timezone.utc
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


class ScheduleErrorTests(SimpleTestCase):
    def assertScheduleError(self, expr, tz_name, moment, message):
        calls = {
            "next_fire": lambda: next_fire(expr, tz_name, moment),
            "previous_fire": lambda: previous_fire(expr, tz_name, moment),
            "plan_catch_up": lambda: plan_catch_up(expr=expr, tz_name=tz_name, due=moment - timedelta(hours=1),
                                                   now=moment, policy="latest"),
        }
        for name, call in calls.items():
            with self.subTest(name, expr=expr, tz_name=tz_name), self.assertRaisesMessage(ScheduleError, message):
                call()

    def test_a_zone_the_installed_tzdata_no_longer_has(self):
        self.assertScheduleError("0 9 * * *", "US/Pacific-New", NOW, "Unknown timezone: 'US/Pacific-New'")

    def test_a_cron_that_no_longer_parses(self):
        for expr in ("61 * * * *", "0 0 30 2 *", "* * * * * * *", None):
            message = "Cron expression is required" if expr is None else "Invalid cron expression"
            self.assertScheduleError(expr, "UTC", NOW, message)

    def test_dates_out_of_range(self):
        end_of_time = datetime(9999, 12, 31, 23, tzinfo=UTC)
        for zone in ("UTC", "America/New_York", "Asia/Tokyo"):
            with self.subTest(zone), self.assertRaisesMessage(ScheduleError, "schedule math failed"):
                next_fire("0 0 1 1 *", zone, end_of_time)
        with self.assertRaisesMessage(ScheduleError, "schedule math failed"):
            plan_catch_up(expr="0 0 1 1 *", tz_name="UTC", due=datetime(9999, 1, 1, tzinfo=UTC),
                          now=end_of_time, policy="all")
        with self.assertRaisesMessage(ScheduleError, "schedule math failed"):
            previous_fire("30 0 * * *", "UTC", datetime(1, 1, 1, tzinfo=UTC))
