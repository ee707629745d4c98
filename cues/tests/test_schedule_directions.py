"""next_fire and previous_fire agree on the same firings around every clock change."""

from datetime import datetime, timedelta, timezone

from django.test import SimpleTestCase
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cues.schedule import next_fire, previous_fire

UTC = timezone.utc
TICK = timedelta(microseconds=1)
# Clock changes of 2026 (UTC), including a 30-minute one (Lord Howe) and a 2-hour one (Troll).
CHANGES = {
    "America/New_York": [datetime(2026, 3, 8, 7), datetime(2026, 11, 1, 6)],
    "Europe/London": [datetime(2026, 3, 29, 1), datetime(2026, 10, 25, 1)],
    "Australia/Lord_Howe": [datetime(2026, 4, 4, 15), datetime(2026, 10, 3, 15, 30)],
    "Antarctica/Troll": [datetime(2026, 3, 29, 1), datetime(2026, 10, 25, 1)],
}
EXPRS = ["*/15 * * * *", "0 * * * *", "30 1 * * *", "30 2 * * *", "45 1,2 * * *", "*/20 * * * * 10,40"]


class DirectionsAgreeTests(SimpleTestCase):
    @settings(max_examples=300, deadline=None)
    @given(
        expr=st.sampled_from(EXPRS),
        change=st.sampled_from([(zone, when) for zone, whens in CHANGES.items() for when in whens]),
        offset=st.integers(min_value=-4 * 3600, max_value=4 * 3600),
    )
    # A fixed-time job fires in the first pass of a repeated hour only, so the last firing
    # before 03:53 EST on November 1 is 01:30 EDT, not 01:30 EST.
    @example(expr="30 1 * * *", change=("America/New_York", datetime(2026, 11, 1, 6)), offset=2 * 3600 + 53 * 60)
    def test_nothing_fires_between_previous_and_next(self, expr, change, offset):
        zone, when = change
        moment = when.replace(tzinfo=UTC) + timedelta(seconds=offset)
        previous, following = previous_fire(expr, zone, moment), next_fire(expr, zone, moment)
        self.assertLessEqual(previous, moment)
        self.assertLess(moment, following)
        self.assertEqual(next_fire(expr, zone, previous), following)
        self.assertEqual(next_fire(expr, zone, previous - TICK), previous)
        self.assertEqual(previous_fire(expr, zone, following - TICK), previous)
