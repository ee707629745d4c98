from accounts.models import User
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions.models import Execution


class CueAdminTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue()
        self.bobs = self.create_cue(name="bobs", key=self.bob_key)
        self.operator = User.objects.create_superuser("ops@example.org", "correct horse battery")
        self.client.force_login(self.operator)

    def act(self, action, *ids):
        return self.client.post("/admin/cues/cue/", {"action": action, "_selected_action": list(ids)},
                                follow=True)

    def test_changelist_and_filters(self):
        for query in ("", "?status__exact=active", "?callback_transport__exact=webhook", "?q=bobs"):
            with self.subTest(query):
                r = self.client.get("/admin/cues/cue/" + query)
                self.assertEqual(r.status_code, 200)
        self.assertContains(self.client.get("/admin/cues/cue/?q=bobs"), self.bobs["id"])
        self.assertNotContains(self.client.get("/admin/cues/cue/?q=bobs"), self.cue["id"])

    def test_change_page(self):
        self.assertEqual(self.client.get(f"/admin/cues/cue/{self.cue['id']}/change/").status_code, 200)

    def test_pause_and_resume(self):
        self.act("pause", self.cue["id"], self.bobs["id"])
        self.assertEqual(set(Cue.objects.values_list("status", flat=True)), {"paused"})
        self.assertIsNone(Cue.objects.get(pk=self.cue["id"]).next_run)
        self.act("resume", self.cue["id"])
        cue = Cue.objects.get(pk=self.cue["id"])
        self.assertEqual(cue.status, "active")
        self.assertIsNotNone(cue.next_run)

    def test_fire_now(self):
        r = self.act("fire_now", self.cue["id"])
        self.assertContains(r, "execution")
        execution = Execution.objects.get()
        self.assertEqual((execution.cue_id, execution.triggered_by), (self.cue["id"], "manual_fire"))

    def test_staff_only(self):
        self.client.logout()
        self.act("pause", self.cue["id"])
        self.assertEqual(Cue.objects.get(pk=self.cue["id"]).status, "active")
