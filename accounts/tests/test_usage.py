import datetime

import time_machine
from django.test import override_settings

from accounts.services import usage_increment
from cues.models import Cue
from executions.models import Execution
from cueapi.testing import HOSTED_LIMITS, BaseTestCase

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


def make_cue(user, name, status="active"):
    return Cue.objects.create(user=user, name=name, status=status, schedule_type="recurring",
                              schedule_cron="0 * * * *", callback_url="https://example.com/")


@time_machine.travel(NOW, tick=False)
@override_settings(**HOSTED_LIMITS)
class UsageTests(BaseTestCase):
    def test_it_works(self):
        r = self.get("/v1/usage")
        self.assertEqual(r.status_code, 200)
        body = r.json()
        self.assertEqual(body["plan"], "free")
        self.assertEqual(
            body["billing_period"], {"start": "2026-11-01", "end": "2026-11-30", "days_remaining": 6}
        )
        self.assertEqual(body["period"], {"start": "2026-11-01", "end": "2026-11-30"})
        self.assertEqual(body["cues"], {"used": 0, "active": 0, "limit": 10, "unlimited": False, "remaining": 10, "percent_used": 0})
        self.assertEqual(
            body["executions"],
            {"used": 0, "limit": 300, "unlimited": False, "remaining": 300, "percent_used": 0, "percentage": 0.0,
             "projected_month_end": 0, "will_exceed_limit": False},
        )
        self.assertEqual(body["outcomes"], {"reported": 0, "succeeded": 0, "failed": 0})
        self.assertEqual(body["rate_limit"]["requests_per_minute"], 60)
        self.assertEqual(body["rate_limit"]["current_usage"], 1)  # this request
        self.assertEqual(body["upgrade_url"], "https://dashboard.cueapi.ai/billing")

    def test_it_counts(self):
        make_cue(self.alice, "a")
        make_cue(self.alice, "b", status="paused")
        done = make_cue(self.alice, "c", status="completed")
        make_cue(self.bob, "bobs")
        usage_increment(user_id=self.alice.pk, count=240)
        ok = dict(outcome_recorded_at=NOW, outcome_success=True)
        Execution.objects.create(cue=done, scheduled_for=NOW, status="success", **ok)
        Execution.objects.create(cue=done, scheduled_for=NOW - datetime.timedelta(minutes=1),
                                 status="success", outcome_recorded_at=NOW, outcome_success=False)
        Execution.objects.create(cue=done, scheduled_for=NOW - datetime.timedelta(minutes=2), status="missed")
        body = self.get("/v1/usage").json()
        self.assertEqual(body["cues"], {"used": 2, "active": 2, "limit": 10, "unlimited": False, "remaining": 8, "percent_used": 20})
        # 240 in 24 days of a 30-day month -> 300 projected, which reaches the limit.
        self.assertEqual(
            body["executions"],
            {"used": 240, "limit": 300, "unlimited": False, "remaining": 60, "percent_used": 80, "percentage": 80.0,
             "projected_month_end": 300, "will_exceed_limit": True},
        )
        self.assertEqual(body["outcomes"], {"reported": 2, "succeeded": 1, "failed": 2})
        me = self.get("/v1/auth/me").json()
        self.assertEqual((me["active_cues"], me["executions_this_month"]), (1, 240))

    def test_last_months_usage_does_not_count(self):
        usage_increment(user_id=self.alice.pk, count=5, moment=NOW - datetime.timedelta(days=30))
        self.assertEqual(self.get("/v1/usage").json()["executions"]["used"], 0)

    def test_it_requires_api_key(self):
        self.assertError(self.get("/v1/usage", anonymous=True), 401, "invalid_api_key")
