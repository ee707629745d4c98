import datetime

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

    def test_executions_cannot_be_added_or_edited_by_hand(self):
        self.assertEqual(self.client.get("/admin/executions/execution/add/").status_code, 403)
        page = self.client.get(f"/admin/executions/execution/{self.execution.pk}/change/")
        self.assertNotContains(page, 'name="status"')
