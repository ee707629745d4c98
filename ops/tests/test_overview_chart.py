"""The overview's chart: executions per hour (24 h) and per day (7 days) by outcome, drawn as
inline SVG with each bar's counts, and no script on the page."""

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import time_machine

from accounts.models import User
from cueapi.testing import BaseTestCase
from cues.models import Cue
from executions.models import Execution

NOW = datetime(2026, 11, 24, 12, 30, tzinfo=timezone.utc)
# (status, outcome_state) -> the chart's outcome
EXAMPLES = [
    (("success", None), "success"),  # delivered, no outcome asked
    (("success", "reported_success"), "success"),
    (("success", "verified_success"), "success"),
    (("failed", None), "failure"),
    (("failed", "reported_failure"), "failure"),  # a worker's failure
    (("success", "reported_failure"), "failure"),  # a webhook handler answered success: false
    (("success", "verification_failed"), "failure"),
    (("outcome_timeout", None), "failure"),
    (("pending", None), "other"),
    (("missed", None), "other"),
    (("success", "verification_pending"), "other"),
]


class OverviewChartTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.client.force_login(User.objects.create_superuser("ops@example.org", "correct horse battery"))
        self.cue = Cue.objects.create(user=self.alice, name="nightly", schedule_type="recurring",
                                      schedule_cron="0 * * * *", callback_url="https://example.com/hook")

    def execution(self, created_at, status, outcome_state=None):
        slot = created_at - timedelta(seconds=Execution.objects.count())  # one execution per slot
        execution = Execution.objects.create(cue=self.cue, scheduled_for=slot, status=status,
                                             outcome_state=outcome_state)
        Execution.objects.filter(pk=execution.pk).update(created_at=created_at)  # auto_now_add

    def charts(self):
        with time_machine.travel(NOW, tick=False):
            page = self.client.get("/admin/")
        self.assertEqual(page.status_code, 200)
        html = page.content.decode()
        self.assertNotIn("<script>", html)  # the chart needs none: the CSP forbids inline ones
        self.assertIn("script-src 'self'", page["Content-Security-Policy"])
        svgs = [ET.fromstring(svg) for svg in re.findall(r"<svg class=\"outcomes\".*?</svg>", html, re.S)]
        self.assertEqual(len(svgs), 2)
        return [{bar.find("title").text: {rect.get("class"): int(rect.get("data-count"))
                                          for rect in bar.findall("rect[@data-count]")}
                 for bar in svg.iter("g")} for svg in svgs], html

    def test_each_outcome_is_counted_in_its_hour_and_day(self):
        two_hours_ago = NOW - timedelta(hours=2, minutes=10)  # 10:20, in the 10:00 bar
        for (status, outcome_state), _ in EXAMPLES:
            self.execution(two_hours_ago, status, outcome_state)
        three_days_ago = NOW - timedelta(days=3)
        self.execution(three_days_ago, "success", "reported_success")
        self.execution(three_days_ago, "failed")
        self.execution(three_days_ago, "success", "reported_failure")
        self.execution(NOW - timedelta(days=8), "failed")  # before either chart
        (hourly, daily), html = self.charts()

        self.assertEqual(len(hourly), 24)
        self.assertEqual(hourly["2026-11-24 10:00 UTC: 3 success, 5 failure, 3 other"],
                         {"success": 3, "failure": 5, "other": 3})
        self.assertEqual(hourly["2026-11-24 12:00 UTC: 0 success, 0 failure, 0 other"], {})
        self.assertEqual(sum(sum(bar.values()) for bar in hourly.values()), len(EXAMPLES))

        self.assertEqual(len(daily), 7)
        self.assertEqual(daily["2026-11-24: 3 success, 5 failure, 3 other"], {"success": 3, "failure": 5, "other": 3})
        self.assertEqual(daily["2026-11-21: 1 success, 2 failure, 0 other"], {"success": 1, "failure": 2})
        self.assertEqual(sum(sum(bar.values()) for bar in daily.values()), len(EXAMPLES) + 3)
        self.assertIn("success 4 · failure 7 · other 3", re.sub(r"<[^>]+>", "", html).replace("\n", ""))

    def test_bars_are_scaled_to_the_busiest_and_link_to_their_executions(self):
        for _ in range(4):
            self.execution(NOW - timedelta(hours=1), "success")
        self.execution(NOW - timedelta(hours=5), "failed")
        with time_machine.travel(NOW, tick=False):
            page = self.client.get("/admin/")
        svg = ET.fromstring(re.search(r"<svg class=\"outcomes\".*?</svg>", page.content.decode(), re.S).group())
        heights = {rect.get("data-count"): float(rect.get("height")) for rect in svg.iter("rect")
                   if rect.get("data-count")}
        self.assertAlmostEqual(heights["1"] * 4, heights["4"], places=1)
        links = [a.get("href") for a in svg.iter("a")]
        self.assertIn("/admin/executions/execution/?created_at__gte=2026-11-24T11%3A00%3A00%2B00%3A00"
                      "&created_at__lt=2026-11-24T12%3A00%3A00%2B00%3A00", links)
        listed = self.client.get(links[-2])  # the 11:00 bar
        self.assertEqual(listed.status_code, 200)
        self.assertEqual(listed.context["cl"].result_count, 4)

    def test_an_empty_history_draws_empty_bars(self):
        (hourly, daily), _ = self.charts()
        self.assertEqual(len(hourly), 24)
        self.assertTrue(all(counts == {} for counts in [*hourly.values(), *daily.values()]))
