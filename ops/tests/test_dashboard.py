"""The operators' dashboard: the overview's numbers, every admin page with data in every
state (query counts that do not grow with the data), the execution timeline, permissions,
and no secret on any page."""

from datetime import timedelta

from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEntry, UsageMonthly, User
from alerts.models import Alert, Notification
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions.models import DeliveryAttempt, Execution, Worker

EXECUTION_STATES = ["pending", "delivering", "success", "failed", "retrying", "retry_ready", "missed",
                    "outcome_timeout"]


class DashboardTestCase(CueTestCase):
    def setUp(self):
        super().setUp()
        self.now = timezone.now()
        self.operator = User.objects.create_superuser("ops@example.org", "correct horse battery")
        self.client.force_login(self.operator)
        self.serial = 0

    def populate(self, copies=1):
        """`copies` of everything: cues in each status, executions in each state with attempts
        and alerts, workers active/stale/dead, notifications."""
        for _ in range(copies):
            self.serial += 1
            n = self.serial
            cues = {status: Cue.objects.create(user=self.alice, name=f"{status}-{n}", status=status,
                                               schedule_type="recurring", schedule_cron="0 * * * *",
                                               callback_url="https://example.com/hook",
                                               callback_headers={"Authorization": "Bearer handler-secret"})
                    for status in ("active", "paused", "completed", "failed")}
            for i, state in enumerate(EXECUTION_STATES):
                execution = Execution.objects.create(
                    cue=cues["active"], scheduled_for=self.now - timedelta(minutes=n * 10 + i), status=state,
                    attempts=1, error_message="boom" if state in ("failed", "outcome_timeout") else None,
                    outcome_deadline_at=self.now + timedelta(hours=1) if state == "success" else None)
                DeliveryAttempt.objects.create(execution=execution, attempt=1, transport="webhook",
                                               result="failed" if state == "failed" else "delivered",
                                               started_at=self.now, finished_at=self.now, duration_ms=12,
                                               http_status=500 if state == "failed" else 200)
                if state in ("failed", "outcome_timeout"):
                    alert = Alert.objects.create(user=self.alice, alert_type="consecutive_failures"
                                                 if state == "failed" else "outcome_timeout",
                                                 cue_id=cues["active"].id, execution_id=execution.id, message="m")
                    Notification.objects.create(user=self.alice, alert=alert, kind="alert_webhook",
                                                url="https://example.com/alerts", body="{}", available_at=self.now)
            for name, age in (("active", 10), ("stale", 300), ("dead", 3600)):
                Worker.objects.create(user=self.alice, worker_id=f"{name}-{n}",
                                      last_heartbeat=self.now - timedelta(seconds=age))


class OverviewTests(DashboardTestCase):
    def test_the_numbers(self):
        self.populate()
        page = self.client.get("/admin/")
        self.assertEqual(page.status_code, 200)
        o = page.context["overview"]
        self.assertEqual(o["cues"], {"active": 1, "paused": 1, "completed": 1, "failed": 1})
        self.assertEqual(o["executions_24h"], {state: 1 for state in EXECUTION_STATES})
        # failed + outcome_timeout, of those finished (the success still awaits its outcome)
        self.assertEqual(o["verdicts_24h"], {"failed": 2, "awaiting_outcome": 1, "missed": 1, "in_progress": 4})
        self.assertAlmostEqual(o["failure_rate_24h"], 1.0)
        self.assertEqual(o["in_flight"], {"pending": 1, "delivering": 1, "retrying": 1, "retry_ready": 1})
        self.assertEqual(o["waiting_for_outcome"], 1)
        self.assertEqual(o["workers"], {"active": 1, "stale": 1, "dead": 1})
        self.assertEqual(o["alerts_24h"], {"consecutive_failures": 1, "outcome_timeout": 1})
        self.assertEqual(o["engine"]["poller"]["seconds_ago"], None)
        self.assertContains(page, "Failure rate:")
        self.assertContains(page, "100 %")
        self.assertContains(page, "never seen")
        self.assertContains(page, "Latest failures (24 h)")
        self.assertContains(page, "/admin/executions/execution/?verdict=failed&amp;created_at__gte=")

    def test_an_empty_install_renders(self):
        page = self.client.get("/admin/")
        self.assertEqual(page.context["overview"]["failure_rate_24h"], None)
        self.assertContains(page, "none yet")


PAGES = [
    "/admin/",
    "/admin/cues/cue/",
    "/admin/cues/cue/?status__exact=paused",
    "/admin/executions/execution/",
    "/admin/executions/execution/?status__exact=failed",
    "/admin/executions/execution/?q=boom",
    "/admin/executions/execution/?triggered_by=scheduled&outcome_state=reported_success",
    "/admin/executions/worker/",
    "/admin/alerts/alert/",
    "/admin/alerts/notification/",
    "/admin/alerts/notification/?sent_at__isempty=1",
    "/admin/accounts/user/",
    "/admin/accounts/usagemonthly/",
]


class QueryCountTests(DashboardTestCase):
    def queries(self, url):
        self.client.get(url)  # warm: the content-type cache fills on first use
        with CaptureQueriesContext(connection) as captured:
            response = self.client.get(url)
        self.assertEqual(response.status_code, 200, url)
        return len(captured)

    def test_pages_cost_the_same_with_three_times_the_data(self):
        UsageMonthly.objects.create(user=self.alice, month_start=self.now.date().replace(day=1), execution_count=3)
        self.populate(1)
        small = {url: self.queries(url) for url in PAGES}
        self.populate(2)
        for url in PAGES:
            with self.subTest(url):
                self.assertEqual(self.queries(url), small[url])  # no N+1
                self.assertLessEqual(small[url], 15)

    def test_the_overview_is_a_handful_of_queries(self):
        self.populate(2)
        # session + user; cues, executions 24 h by status and by verdict, in flight, waiting
        # for outcome, outbox, workers, alerts, engine heartbeats (the DB cache), lag sample,
        # latest failures, the charts; and Django's own "recent actions" sidebar.
        with self.assertNumQueries(15):
            self.client.get("/admin/")

    def test_an_execution_page_with_its_timeline(self):
        self.populate(1)
        execution = Execution.objects.get(status="failed")
        url = f"/admin/executions/execution/{execution.pk}/change/"
        few = self.queries(url)
        for attempt in range(2, 6):
            DeliveryAttempt.objects.create(execution=execution, attempt=attempt, transport="webhook", result="failed",
                                           started_at=self.now, finished_at=self.now, http_status=500)
        self.assertEqual(self.queries(url), few)


class TimelineTests(DashboardTestCase):
    def test_the_story_in_order(self):
        cue = Cue.objects.create(user=self.alice, name="nightly", schedule_type="recurring", schedule_cron="0 3 * * *",
                                 callback_url="https://example.com/hook")
        due = self.now - timedelta(minutes=10)
        execution = Execution.objects.create(
            cue=cue, scheduled_for=due, status="success", attempts=2, delivered_at=due + timedelta(minutes=1, seconds=1),
            outcome_recorded_at=due + timedelta(minutes=2), outcome_success=False, outcome_error="disk full",
            outcome_state="reported_failure", evidence_external_id="job-9")
        DeliveryAttempt.objects.create(execution=execution, attempt=1, transport="webhook", result="failed",
                                       started_at=due, finished_at=due + timedelta(seconds=1), duration_ms=1000,
                                       http_status=503, error="Webhook endpoint server error (503)")
        DeliveryAttempt.objects.create(execution=execution, attempt=2, transport="webhook", result="delivered",
                                       started_at=due + timedelta(minutes=1), finished_at=due + timedelta(minutes=1, seconds=1),
                                       duration_ms=35, http_status=200)
        alert = Alert.objects.create(user=self.alice, alert_type="consecutive_failures", cue_id=cue.id,
                                     execution_id=execution.id, message="3 failures in a row")
        page = self.client.get(f"/admin/executions/execution/{execution.pk}/change/").content.decode()
        story = ["<strong>due</strong>", "attempt 1: failed", "HTTP 503", "1000 ms", "server error (503)",
                 "attempt 2: delivered", "35 ms", "outcome reported", "failure · disk full · external_id job-9",
                 f"/admin/alerts/alert/{alert.pk}/change/", "3 failures in a row", "success · reported_failure"]
        positions = [page.find(text) for text in story]
        self.assertNotIn(-1, positions, dict(zip(story, positions)))
        self.assertEqual(positions[:3] + positions[5:7], sorted(positions[:3] + positions[5:7]))
        self.assertLess(positions[story.index("attempt 2: delivered")], positions[story.index("outcome reported")])


class PermissionTests(DashboardTestCase):
    def staff(self, *codenames):
        user = User.objects.create_user("staff@example.org", password="correct horse battery")
        user.is_staff = True
        user.save()
        user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
        self.client.force_login(user)
        return user

    def test_a_staff_member_without_permissions_sees_no_data(self):
        self.populate()
        self.staff()
        self.assertEqual(self.client.get("/admin/executions/execution/").status_code, 403)
        self.assertEqual(self.client.get("/admin/cues/cue/").status_code, 403)

    def test_view_only_staff_can_read_but_not_replay_or_pause(self):
        self.populate()
        self.staff("view_execution", "view_cue")
        page = self.client.get("/admin/executions/execution/")
        self.assertEqual(page.status_code, 200)
        self.assertNotContains(page, 'value="replay"')
        failed = Execution.objects.get(status="failed")
        before = Execution.objects.count()
        self.client.post("/admin/executions/execution/", {"action": "replay", "_selected_action": [str(failed.pk)]})
        self.assertEqual(Execution.objects.count(), before)
        active = Cue.objects.get(status="active")
        self.client.post("/admin/cues/cue/", {"action": "pause", "_selected_action": [active.pk]})
        active.refresh_from_db()
        self.assertEqual(active.status, "active")

    def test_anonymous_is_sent_to_login(self):
        self.client.logout()
        for url in ("/admin/", "/admin/executions/execution/"):
            self.assertEqual(self.client.get(url).status_code, 302)


class NoSecretsTests(DashboardTestCase):
    def test_no_page_shows_a_key_a_secret_or_a_handlers_credentials(self):
        self.populate()
        self.alice.refresh_from_db()
        cue = Cue.objects.get(status="active")
        self.create_cue(name="audited", callback={"url": "http://127.0.0.1:9/hook?token=handler-secret",
                                                  "headers": {"Authorization": "Bearer handler-secret"}})
        audit = AuditEntry.objects.get(action="cue.created")
        urls = PAGES + ["/admin/accounts/apikey/", f"/admin/accounts/apikey/{quote(self.alice.api_keys.get().pk)}/change/",
                        "/admin/accounts/auditentry/", f"/admin/accounts/auditentry/{audit.pk}/change/",
                        f"/admin/cues/cue/{quote(cue.pk)}/change/", f"/admin/accounts/user/{self.alice.pk}/change/",
                        f"/admin/executions/execution/{Execution.objects.first().pk}/change/"]
        secrets = [self.alice_key, self.alice.api_keys.get(primary=True).key_hash, self.alice.webhook_secret, "handler-secret"]
        for url in urls:
            with self.subTest(url):
                page = self.client.get(url).content.decode()
                for secret in secrets:
                    self.assertNotIn(secret, page)
        self.assertContains(self.client.get(f"/admin/cues/cue/{quote(cue.pk)}/change/"), "Authorization")
