"""A self-hosted server has no cue or monthly execution quota by default (0 = no limit) and a
per-key rate limit a busy worker fleet never meets; every limit stays settable per user."""

import datetime
from datetime import timedelta

import time_machine
from django.test import override_settings

from accounts.models import User
from accounts.services import usage_increment
from cueapi.testing import CueTestCase
from executions import poller
from executions.models import Execution

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
HOURLY = {"type": "recurring", "cron": "0 * * * *", "timezone": "UTC"}


@time_machine.travel(NOW, tick=False)
class DefaultLimitsTests(CueTestCase):
    def test_a_new_user_has_no_quota_and_6000_requests_a_minute(self):
        key = self.post("/v1/auth/register", {"email": "carol@example.com"}, anonymous=True).json()["api_key"]
        carol = User.objects.get(email="carol@example.com")
        self.assertEqual((carol.active_cue_limit, carol.monthly_execution_limit, carol.rate_limit_per_minute),
                         (0, 0, 6000))
        me = self.get("/v1/auth/me", key=key).json()
        self.assertEqual((me["active_cue_limit"], me["monthly_execution_limit"], me["rate_limit_per_minute"]),
                         (0, 0, 6000))

    def test_more_cues_than_the_old_quota_of_ten(self):
        for i in range(11):
            self.create_cue(name=f"cue-{i}")
        self.assertEqual(self.get("/v1/usage").json()["cues"]["used"], 11)

    def test_usage_says_there_is_no_limit(self):
        usage_increment(user_id=self.alice.pk, count=1000)
        self.create_cue()
        body = self.get("/v1/usage").json()
        self.assertEqual(body["cues"], {"used": 1, "active": 1, "limit": 0, "unlimited": True,
                                        "remaining": None, "percent_used": 0})
        self.assertEqual(body["executions"], {
            "used": 1000, "limit": 0, "unlimited": True, "remaining": None, "percent_used": 0,
            "percentage": 0.0, "projected_month_end": 1250, "will_exceed_limit": False})
        self.assertEqual(body["rate_limit"]["limit"], 6000)

    def test_no_monthly_quota_for_scheduled_or_fired_executions(self):
        usage_increment(user_id=self.alice.pk, count=1000)
        cue = self.create_cue(schedule=HOURLY)
        poller.fire_due_cues(now=NOW + timedelta(hours=1))
        self.assertEqual(Execution.objects.get().status, "pending")
        self.assertEqual(self.post(f"/v1/cues/{cue['id']}/fire").status_code, 200)

    @override_settings(CUEAPI_RATE_LIMIT_ENABLED=True)
    def test_the_rate_limit_is_6000_a_minute(self):
        self.assertEqual(self.get("/v1/auth/me")["X-RateLimit-Limit"], "6000")
        self.assertEqual(self.get("/v1/nope", anonymous=True)["X-RateLimit-Limit"], "6000")


class LimitMessagesTests(CueTestCase):
    def test_the_cue_limit_counts_paused_cues_and_says_so(self):
        User.objects.filter(pk=self.alice.pk).update(active_cue_limit=1)
        paused = self.create_cue(name="a")
        self.patch(f"/v1/cues/{paused['id']}", {"status": "paused"})
        r = self.post("/v1/cues", {"name": "b", "schedule": HOURLY, "transport": "worker"})
        error = self.assertError(r, 403, "cue_limit_exceeded")
        self.assertIn("Active cue limit of 1 reached (paused cues count too)", error["message"])
        self.assertIn("active_cue_limit", error["message"])

    @time_machine.travel(NOW, tick=False)
    def test_the_scheduler_records_which_limit_stopped_an_execution(self):
        User.objects.filter(pk=self.alice.pk).update(monthly_execution_limit=5)
        usage_increment(user_id=self.alice.pk, count=5)
        self.create_cue(schedule=HOURLY)
        poller.fire_due_cues(now=NOW + timedelta(hours=1))
        execution = Execution.objects.get()
        self.assertEqual(execution.status, "failed")
        self.assertIn("Monthly execution limit of 5 reached", execution.error_message)


class AdminLimitTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.client.force_login(User.objects.create_superuser("ops@example.org", "correct horse battery"))
        self.url = f"/admin/accounts/user/{self.alice.pk}/change/"

    def test_the_change_page_explains_zero(self):
        self.assertContains(self.client.get(self.url), "0 = no limit")

    def test_a_rate_limit_of_zero_is_refused(self):
        r = self.client.post(self.url, {
            "email": "alice@example.org", "plan": "free", "active_cue_limit": 0,
            "monthly_execution_limit": 0, "rate_limit_per_minute": 0, "is_active": "on",
        })
        self.assertEqual(r.status_code, 200)  # the form again, with the error
        self.assertContains(r, "greater than or equal to 1")
        self.alice.refresh_from_db()
        self.assertEqual(self.alice.rate_limit_per_minute, 6000)
