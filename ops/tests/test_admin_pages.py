"""The admin at an operator's screen: read-only pages without Save buttons (and refusing a
POST), short ids and the failure reason in the execution list, one time format, and filters
with one "All" each."""

import re
from datetime import datetime, timezone

from django.contrib.admin.utils import quote

from accounts.models import User
from alerts.models import Alert, Notification
from cueapi.testing import BaseTestCase
from cues.models import Cue
from executions.models import Execution, Worker

WHEN = datetime(2026, 11, 24, 21, 5, 9, tzinfo=timezone.utc)


class AdminPagesTestCase(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.client.force_login(User.objects.create_superuser("ops@example.org", "correct horse battery"))
        self.cue = Cue.objects.create(user=self.alice, name="nightly-report", schedule_type="recurring",
                                      schedule_cron="0 3 * * *", callback_url="https://example.com/hook")
        self.execution = Execution.objects.create(cue=self.cue, scheduled_for=WHEN, status="failed", attempts=1,
                                                  http_status=500, error_message="Webhook endpoint returned "
                                                  "server error (500)")
        self.worker = Worker.objects.create(user=self.alice, worker_id="box-1", last_heartbeat=WHEN)
        self.alert = Alert.objects.create(user=self.alice, alert_type="consecutive_failures", cue_id=self.cue.id,
                                          execution_id=self.execution.id, message="3 failures in a row")
        self.notification = Notification.objects.create(user=self.alice, alert=self.alert, kind="alert_webhook",
                                                        url="https://example.com/alerts", body="{}",
                                                        available_at=WHEN)


class ReadOnlyPageTests(AdminPagesTestCase):
    def pages(self):
        return {
            "execution": (f"/admin/executions/execution/{self.execution.pk}/change/", self.execution),
            "cue": (f"/admin/cues/cue/{quote(self.cue.pk)}/change/", self.cue),
            "worker": (f"/admin/executions/worker/{self.worker.pk}/change/", self.worker),
            "notification": (f"/admin/alerts/notification/{self.notification.pk}/change/", self.notification),
        }

    def test_the_engines_records_have_no_save_button(self):
        for name, (url, _) in self.pages().items():
            with self.subTest(name):
                page = self.client.get(url)
                self.assertEqual(page.status_code, 200)
                self.assertNotContains(page, 'name="_save"')
                self.assertNotContains(page, 'name="_continue"')
                self.assertContains(page, "Close")  # Django's way back from a page to read

    def test_a_post_to_them_is_refused_and_changes_nothing(self):
        for name, (url, obj) in self.pages().items():
            with self.subTest(name):
                before = type(obj).objects.filter(pk=obj.pk).values().get()
                self.assertEqual(self.client.post(url, {"_save": "Save"}).status_code, 403)
                self.assertEqual(type(obj).objects.filter(pk=obj.pk).values().get(), before)

    def test_their_list_actions_still_work(self):
        response = self.client.post("/admin/cues/cue/", {"action": "pause", "_selected_action": [self.cue.pk]})
        self.assertEqual(response.status_code, 302)
        self.cue.refresh_from_db()
        self.assertEqual(self.cue.status, "paused")

    def test_pages_with_something_to_edit_keep_it(self):
        for url in (f"/admin/alerts/alert/{self.alert.pk}/change/", f"/admin/accounts/user/{self.alice.pk}/change/"):
            with self.subTest(url):
                self.assertContains(self.client.get(url), 'name="_save"')


class ListTests(AdminPagesTestCase):
    def test_the_execution_list_shows_short_ids_the_cue_and_why(self):
        page = self.client.get("/admin/executions/execution/")
        full = str(self.execution.pk)
        self.assertContains(page, f'<span title="{full}">{full[:8]}</span>', html=True)
        self.assertNotContains(page, f">{full}<")
        self.assertContains(page, '<td class="field-cue_name">nightly-report</td>', html=True)
        self.assertNotContains(page, f"({self.cue.pk})")  # the cue's id is on its own page
        self.assertContains(page, "Webhook endpoint returned server error (500)")
        self.assertNotContains(page, 'id="nav-sidebar"')  # its width goes to the columns

    def test_the_alert_list_shortens_the_execution_id(self):
        page = self.client.get("/admin/alerts/alert/")
        full = str(self.execution.pk)
        self.assertContains(page, f'<span title="{full}">{full[:8]}</span>', html=True)

    def test_one_time_format(self):
        page = self.client.get("/admin/executions/worker/")
        self.assertContains(page, "2026-11-24 21:05:09")
        self.assertNotContains(page, "Nov. 24, 2026")
        detail = self.client.get(f"/admin/executions/execution/{self.execution.pk}/change/")
        self.assertContains(detail, "2026-11-24 21:05:09")  # scheduled_for, as on the timeline

    def test_each_filter_has_one_all(self):
        for url in ("/admin/cues/cue/", "/admin/executions/execution/", "/admin/alerts/alert/",
                    "/admin/alerts/notification/", "/admin/accounts/user/"):
            with self.subTest(url):
                html = self.client.get(url).content.decode()
                filters = html.count('<details data-filter-title=')
                self.assertGreater(filters, 0)
                self.assertEqual(len(re.findall(r">\s*All\s*</a>", html)), filters)
