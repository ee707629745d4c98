import datetime

from django.utils import timezone

from accounts.models import User
from cueapi.testing import CueTestCase
from executions.models import Execution, Worker


class ExecutionAdminTests(CueTestCase):
    def setUp(self):
        super().setUp()
        cue = self.create_cue()
        when = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        self.execution = Execution.objects.create(cue_id=cue["id"], scheduled_for=when, status="failed")
        Worker.objects.create(user=self.alice, worker_id="w1", last_heartbeat=when)
        self.client.force_login(User.objects.create_superuser("ops@example.org", "correct horse battery"))

    def test_pages_render(self):
        for url in ("/admin/executions/execution/", "/admin/executions/execution/?status__exact=failed",
                    f"/admin/executions/execution/{self.execution.pk}/change/",
                    "/admin/executions/worker/"):
            with self.subTest(url):
                self.assertEqual(self.client.get(url).status_code, 200)

    def test_fixed_value_filters(self):
        replay = Execution.objects.create(cue=self.execution.cue, scheduled_for=self.execution.scheduled_for
                                          + datetime.timedelta(hours=1), triggered_by="replay",
                                          outcome_state="verified_success")

        def listed(query):
            return {str(e.pk) for e in self.client.get("/admin/executions/execution/" + query).context["cl"].result_list}

        self.assertEqual(listed("?triggered_by=scheduled"), {str(self.execution.pk)})
        self.assertEqual(listed("?triggered_by=replay"), {str(replay.pk)})
        self.assertEqual(listed("?outcome_state=verified_success"), {str(replay.pk)})
        self.assertEqual(listed("?outcome_state=reported_failure"), set())

    def test_executions_cannot_be_added_or_edited_by_hand(self):
        self.assertEqual(self.client.get("/admin/executions/execution/add/").status_code, 403)
        page = self.client.get(f"/admin/executions/execution/{self.execution.pk}/change/")
        self.assertNotContains(page, 'name="status"')


class ExecutionAdminActionTests(CueTestCase):
    def setUp(self):
        super().setUp()
        cue = self.create_cue()
        when = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        self.failed = Execution.objects.create(cue_id=cue["id"], scheduled_for=when, status="failed")
        self.reported = Execution.objects.create(
            cue_id=cue["id"], scheduled_for=when + datetime.timedelta(minutes=1), status="success",
            outcome_recorded_at=when, outcome_success=True, outcome_state="reported_success")
        self.client.force_login(User.objects.create_superuser("ops@example.org", "correct horse battery"))

    def act(self, action, *executions):
        return self.client.post("/admin/executions/execution/",
                                {"action": action, "_selected_action": [str(e.pk) for e in executions]}, follow=True)

    def test_replay(self):
        self.act("replay", self.failed)
        replay = Execution.objects.get(triggered_by="replay")
        self.assertEqual((replay.cue_id, replay.status), (self.failed.cue_id, "pending"))

    def test_verify_and_reject(self):
        self.act("verify", self.reported)
        self.reported.refresh_from_db()
        self.assertEqual(self.reported.outcome_state, "verified_success")
        r = self.act("reject", self.failed)  # no outcome: refused, said so
        self.assertContains(r, "Cannot verify from state")
        other = Execution.objects.create(cue=self.failed.cue, scheduled_for=self.failed.scheduled_for
                                         + datetime.timedelta(hours=1), outcome_recorded_at=self.failed.scheduled_for,
                                         outcome_state="verification_pending")
        self.act("reject", other)
        other.refresh_from_db()
        self.assertEqual((other.outcome_state, other.evidence_summary),
                         ("verification_failed", "rejected by an operator"))

    def test_the_page_tells_the_story(self):
        page = self.client.get(f"/admin/executions/execution/{self.reported.pk}/change/")
        for heading in ("Delivery", "Worker", "Outcome", "Evidence"):
            self.assertContains(page, heading)

    def test_workers_show_their_status(self):
        Worker.objects.create(user=self.alice, worker_id="w1", last_heartbeat=timezone.now())
        self.assertContains(self.client.get("/admin/executions/worker/"), "active")
