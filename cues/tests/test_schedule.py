"""Schedule math: tables of (cron, zone, after) -> expected, DST days spelled out."""

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from django.test import SimpleTestCase
from hypothesis import given, settings
from hypothesis import strategies as st

from cues.schedule import (
    CATCH_UP_MAX_FIRED,
    MISSED_MAX_RECORDED,
    ScheduleError,
    fires_between,
    next_fire,
    normalize_cron,
    plan_catch_up,
    previous_fire,
)

UTC = timezone.utc


def u(*args):
    return datetime(*args, tzinfo=UTC)


def local(zone, *args, fold=0):
    return datetime(*args, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


class NextFireTests(SimpleTestCase):
    def test_table(self):
        ny, london, lord_howe, kathmandu = ("America/New_York", "Europe/London",
                                            "Australia/Lord_Howe", "Asia/Kathmandu")
        cases = [
            # Plain days.
            ("0 9 * * MON-FRI", "UTC", u(2026, 11, 20, 9), u(2026, 11, 23, 9)),  # Fri -> Mon
            ("@monthly", "UTC", u(2026, 11, 24), u(2026, 12, 1)),
            ("0 0 29 2 *", "UTC", u(2026, 3, 1), u(2028, 2, 29)),
            ("30 2 * * *", kathmandu, u(2026, 6, 1), local(kathmandu, 2026, 6, 2, 2, 30)),
            ("*/15 * * * *", kathmandu, u(2026, 6, 1, 0, 1), u(2026, 6, 1, 0, 15)),  # +05:45
            ("0 * * * *", kathmandu, u(2026, 6, 1, 0, 1), u(2026, 6, 1, 0, 15)),
            # New York, spring forward (2026-03-08 02:00 EST -> 03:00 EDT).
            ("30 2 * * *", ny, u(2026, 3, 7, 12), local(ny, 2026, 3, 8, 3, 0)),  # gap -> 03:00
            ("30 2 * * *", ny, local(ny, 2026, 3, 8, 3, 0), local(ny, 2026, 3, 9, 2, 30)),
            ("0 * * * *", ny, local(ny, 2026, 3, 8, 1, 0), local(ny, 2026, 3, 8, 3, 0)),
            ("*/15 * * * *", ny, local(ny, 2026, 3, 8, 1, 45), local(ny, 2026, 3, 8, 3, 0)),
            # New York, fall back (2026-11-01 02:00 EDT -> 01:00 EST).
            ("30 1 * * *", ny, u(2026, 11, 1, 0), local(ny, 2026, 11, 1, 1, 30)),  # first 01:30
            ("30 1 * * *", ny, local(ny, 2026, 11, 1, 1, 30), local(ny, 2026, 11, 2, 1, 30)),  # once
            ("0 * * * *", ny, local(ny, 2026, 11, 1, 1, 0), local(ny, 2026, 11, 1, 1, 0, fold=1)),
            ("*/15 * * * *", ny, local(ny, 2026, 11, 1, 1, 45), local(ny, 2026, 11, 1, 1, 0, fold=1)),
            # London (2026-03-29 01:00 GMT -> 02:00 BST; 2026-10-25 02:00 BST -> 01:00 GMT).
            ("30 1 * * *", london, u(2026, 3, 28, 12), u(2026, 3, 29, 1, 0)),  # gap -> 02:00 BST
            ("30 1 * * *", london, u(2026, 10, 24, 12), u(2026, 10, 25, 0, 30)),  # first 01:30 (BST)
            ("@monthly", london, u(2026, 4, 15), local(london, 2026, 5, 1)),
            # Lord Howe shifts by 30 minutes (2026-10-04 02:00 -> 02:30; 2026-04-05 02:00 -> 01:30).
            ("15 2 * * *", lord_howe, u(2026, 10, 3, 0), local(lord_howe, 2026, 10, 4, 2, 30)),
            ("45 1 * * *", lord_howe, u(2026, 4, 4, 0), local(lord_howe, 2026, 4, 5, 1, 45)),
            ("*/15 * * * *", lord_howe, local(lord_howe, 2026, 4, 5, 1, 45),
             local(lord_howe, 2026, 4, 5, 1, 30, fold=1)),
        ]
        for expr, zone, after, expected in cases:
            with self.subTest(expr=expr, zone=zone, after=after):
                self.assertEqual(next_fire(expr, zone, after), expected)

    def test_fixed_time_runs_once_on_both_transition_days(self):
        for zone, spring, autumn in (("America/New_York", 8, 1), ("Europe/London", 29, 25)):
            month_spring, month_autumn = 3, (11 if zone == "America/New_York" else 10)
            for month, day in ((month_spring, spring), (month_autumn, autumn)):
                start = local(zone, 2026, month, day, 0, 0)
                fired, _ = fires_between("30 1 * * *", zone, start - timedelta(seconds=1),
                                         start + timedelta(hours=23), 10)
                self.assertEqual(len(fired), 1, (zone, month, fired))
                fired, _ = fires_between("30 2 * * *", zone, start - timedelta(seconds=1),
                                         start + timedelta(hours=23), 10)
                self.assertEqual(len(fired), 1, (zone, month, fired))

    def test_interval_jobs_follow_real_time(self):
        ny = "America/New_York"
        for day_start in (local(ny, 2026, 3, 8), local(ny, 2026, 11, 1)):
            fired, _ = fires_between("*/15 * * * *", ny, day_start, day_start + timedelta(hours=6), 100)
            gaps = {b - a for a, b in zip(fired, fired[1:])}
            self.assertEqual(gaps, {timedelta(minutes=15)})

    def test_previous_fire(self):
        self.assertEqual(previous_fire("0 9 * * MON-FRI", "UTC", u(2026, 11, 24, 8)), u(2026, 11, 23, 9))
        self.assertEqual(previous_fire("0 9 * * *", "UTC", u(2026, 11, 24, 9)), u(2026, 11, 24, 9))


class CronDialectTests(SimpleTestCase):
    def test_accepted(self):
        for expr in ("* * * * *", "0 9 * * 1-5", "0 0 L * *", "0 0 * * MON#2", "0 0 1 JAN *",
                     "*/5 * * * * 30", "@hourly", "@daily", "@midnight", "@weekly", "@yearly",
                     "@annually"):
            with self.subTest(expr):
                normalize_cron(expr)

    def test_rejected(self):
        for expr in ("", "   "):
            with self.subTest(expr), self.assertRaisesMessage(
                ScheduleError, "Cron expression is required for recurring schedules"
            ):
                normalize_cron(expr)
        for expr in ("* * * *", "61 * * * *", "not a cron", "* * * * * * *", "0 0 30 2 *",
                     "0 " * 60 + "*"):
            with self.subTest(expr), self.assertRaisesMessage(ScheduleError, "Invalid cron expression"):
                normalize_cron(expr)

    def test_unknown_zone(self):
        with self.assertRaisesMessage(ScheduleError, "Unknown timezone: 'Mars/Olympus'"):
            next_fire("* * * * *", "Mars/Olympus", u(2026, 1, 1))


class CatchUpTests(SimpleTestCase):
    """Three days of downtime for an hourly cue: due 2026-11-21 12:00, back 2026-11-24 12:00:30."""

    due, now = u(2026, 11, 21, 12), u(2026, 11, 24, 12, 0, 30)

    def plan(self, policy, expr="0 * * * *", now=None):
        return plan_catch_up(expr=expr, tz_name="UTC", due=self.due, now=now or self.now, policy=policy)

    def test_latest_fires_the_latest_and_records_the_rest(self):
        plan = self.plan("latest")
        self.assertEqual(plan.fire, [u(2026, 11, 24, 12)])
        self.assertEqual(len(plan.missed), 72)
        self.assertEqual((plan.missed[0], plan.missed[-1]), (self.due, u(2026, 11, 24, 11)))
        self.assertEqual(plan.next_run, u(2026, 11, 24, 13))

    def test_all_fires_every_slot_oldest_first(self):
        plan = self.plan("all")
        self.assertEqual(len(plan.fire), 73)
        self.assertEqual((plan.fire[0], plan.fire[-1]), (self.due, u(2026, 11, 24, 12)))
        self.assertEqual(plan.missed, [])

    def test_all_is_capped(self):
        plan = self.plan("all", expr="*/15 * * * *")  # 289 slots
        self.assertEqual(len(plan.fire), CATCH_UP_MAX_FIRED)
        self.assertEqual(plan.fire[-1], u(2026, 11, 24, 12))
        # 189 slots before the fired ones; the oldest MISSED_MAX_RECORDED are recorded.
        self.assertEqual(len(plan.missed), MISSED_MAX_RECORDED)
        self.assertTrue(plan.missed_not_recorded)
        self.assertEqual(plan.missed[0], self.due)
        self.assertLess(plan.missed[-1], plan.fire[0])

    def test_none_records_everything_late(self):
        plan = self.plan("none", now=u(2026, 11, 24, 12, 5))
        self.assertEqual(plan.fire, [])
        self.assertEqual(len(plan.missed), 73)
        self.assertEqual(plan.next_run, u(2026, 11, 24, 13))

    def test_on_time_slot_fires_under_every_policy(self):
        for policy in ("all", "latest", "none"):
            plan = plan_catch_up(expr="0 * * * *", tz_name="UTC", due=self.due,
                                 now=self.due + timedelta(seconds=1), policy=policy)
            self.assertEqual((plan.fire, plan.missed), ([self.due], []), policy)
            self.assertEqual(plan.next_run, self.due + timedelta(hours=1))


ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu"]
EXPRS = {"30 2 * * *": timedelta(days=1, hours=3), "0 * * * *": timedelta(hours=2),
         "*/15 * * * *": timedelta(minutes=75), "0 9 * * MON-FRI": timedelta(days=3, hours=3)}


class NextFirePropertyTests(SimpleTestCase):
    @settings(max_examples=300, deadline=None)
    @given(
        expr=st.sampled_from(sorted(EXPRS)),
        zone=st.sampled_from(ZONES),
        after=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1),
                           timezones=st.just(UTC)),
    )
    def test_next_is_after_matches_and_is_near(self, expr, zone, after):
        fire = next_fire(expr, zone, after)
        self.assertGreater(fire, after)
        self.assertLessEqual(fire - after, EXPRS[expr])  # never more than one period away
        wall = fire.astimezone(ZoneInfo(zone)).replace(tzinfo=None)
        from croniter import croniter
        # It matches the cron on the local wall clock, or is the end of a DST gap.
        gap_end = fire.astimezone(ZoneInfo(zone)).utcoffset() != (fire - timedelta(seconds=1)).astimezone(ZoneInfo(zone)).utcoffset()
        self.assertTrue(croniter.match(expr, wall) or gap_end, (expr, zone, after, fire))


# Both 2026 transitions of each zone (local dates); Kathmandu has none (+05:45 all year).
TRANSITION_DAYS = {
    "America/New_York": [(2026, 3, 8), (2026, 11, 1)],
    "Europe/London": [(2026, 3, 29), (2026, 10, 25)],
    "Australia/Lord_Howe": [(2026, 4, 5), (2026, 10, 4)],  # 30-minute shifts
    "Asia/Kathmandu": [(2026, 3, 8), (2026, 11, 1)],
}


class TransitionDayMatrixTests(SimpleTestCase):
    """Every required expression, in every required zone, on both transition days."""

    def fires_around(self, expr, zone, day):
        start = local(zone, *day) - timedelta(days=1)
        fired, more = fires_between(expr, zone, start - timedelta(microseconds=1), start + timedelta(days=3), 1000)
        self.assertFalse(more)
        return fired

    def local_dates(self, fired, zone):
        return [f.astimezone(ZoneInfo(zone)).date() for f in fired]

    def test_matrix(self):
        for zone, days in TRANSITION_DAYS.items():
            tz = ZoneInfo(zone)
            for day in days:
                with self.subTest(zone=zone, day=day, expr="30 2 * * *"):
                    fired = self.fires_around("30 2 * * *", zone, day)
                    dates = self.local_dates(fired, zone)
                    self.assertEqual(len(dates), 3)
                    self.assertEqual(len(set(dates)), 3)  # once per local day, the transition day too
                with self.subTest(zone=zone, day=day, expr="*/15 * * * *"):
                    fired = self.fires_around("*/15 * * * *", zone, day)
                    self.assertEqual({b - a for a, b in zip(fired, fired[1:])}, {timedelta(minutes=15)})
                with self.subTest(zone=zone, day=day, expr="0 * * * *"):
                    fired = self.fires_around("0 * * * *", zone, day)
                    self.assertTrue(all(f.astimezone(tz).minute == 0 for f in fired))
                    gaps = {b - a for a, b in zip(fired, fired[1:])}
                    # Whole-hour zones: exactly hourly in real time. Lord Howe's wall clock moves
                    # by 30 minutes, so one gap is 30 or 90 minutes there; never a duplicate.
                    allowed = {timedelta(hours=1)}
                    if zone == "Australia/Lord_Howe":
                        allowed |= {timedelta(minutes=30), timedelta(minutes=90)}
                    self.assertLessEqual(gaps, allowed)
                with self.subTest(zone=zone, day=day, expr="0 9 * * MON-FRI"):
                    fired = self.fires_around("0 9 * * MON-FRI", zone, day)
                    for f in fired:
                        wall = f.astimezone(tz)
                        self.assertEqual((wall.hour, wall.minute), (9, 0))
                        self.assertLess(wall.weekday(), 5)
                with self.subTest(zone=zone, day=day, expr="@monthly"):
                    after = local(zone, *day)
                    first = next_fire("@monthly", zone, after)
                    self.assertEqual(first.astimezone(tz).replace(tzinfo=None),
                                     datetime(day[0] + (day[1] == 12), day[1] % 12 + 1, 1))
                with self.subTest(zone=zone, day=day, expr="0 0 29 2 *"):
                    self.assertEqual(next_fire("0 0 29 2 *", zone, local(zone, *day)), local(zone, 2028, 2, 29))
