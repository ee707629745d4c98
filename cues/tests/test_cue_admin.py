import datetime
import re

import time_machine
from django.contrib.admin.utils import quote

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
        self.assertEqual(self.client.get(f"/admin/cues/cue/{quote(self.cue['id'])}/change/").status_code, 200)

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


NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


@time_machine.travel(NOW, tick=False)
class CueAdminTimedPauseTests(CueTestCase):
    """#17 in the admin: the scheduling controls and a timed pause on the cue page, the
    "paused until later" filter, and the "pause with a note" action."""

    def setUp(self):
        super().setUp()
        self.operator = User.objects.create_superuser("ops@example.org", "correct horse battery")
        self.client.force_login(self.operator)
        self.cue = self.create_cue(overlap="buffer_one", schedule={
            "type": "recurring", "cron": "0 * * * *", "start_at": "2026-11-25T00:00:00Z",
            "end_at": "2026-12-31T00:00:00Z", "jitter_seconds": 120})
        self.later = self.create_cue(name="later")
        self.patch(f"/v1/cues/{self.later['id']}", {"status": "paused", "paused_until": "2026-11-30T09:00:00Z",
                                                   "pause_note": "holiday freeze"})
        self.plain = self.create_cue(name="plain")
        self.patch(f"/v1/cues/{self.plain['id']}", {"status": "paused"})

    def shown(self, cue_id):
        """The cue page's read-only values by label."""
        page = self.client.get(f"/admin/cues/cue/{quote(cue_id)}/change/").content.decode()
        return dict(re.findall(r'<label>([^<]+):</label>\s*<div class="readonly">([^<]*)</div>', page))

    def test_the_cue_page_shows_the_controls_and_the_timed_pause(self):
        shown = self.shown(self.cue["id"])
        self.assertEqual([shown[label] for label in ("Overlap", "Schedule start at", "Schedule end at",
                                                     "Jitter seconds", "Paused until", "Pause note")],
                         ["Buffer One", "2026-11-25 00:00:00", "2026-12-31 00:00:00", "120", "-", "-"])
        shown = self.shown(self.later["id"])
        self.assertEqual((shown["Status"], shown["Paused until"], shown["Pause note"]),
                         ("Paused", "2026-11-30 09:00:00", "holiday freeze"))

    def test_the_list_filters_on_paused_until_later(self):
        page = self.client.get("/admin/cues/cue/?paused_until=later")
        self.assertContains(page, self.later["id"])
        self.assertNotContains(page, self.plain["id"])
        self.assertNotContains(page, self.cue["id"])
        with time_machine.travel(datetime.datetime(2026, 11, 30, 9, 0, 1, tzinfo=datetime.timezone.utc), tick=False):
            # Past its paused_until (the poller has not run yet): no longer "later".
            self.assertNotContains(self.client.get("/admin/cues/cue/?paused_until=later"), self.later["id"])

    def act(self, *ids, **form):
        return self.client.post("/admin/cues/cue/", {"action": "pause_with_note", "_selected_action": list(ids),
                                                     **form}, follow=True)

    def test_pause_with_note_asks_first_then_pauses_through_the_service(self):
        page = self.act(self.cue["id"])
        self.assertContains(page, "Pause cues with a note")
        self.assertEqual(Cue.objects.get(pk=self.cue["id"]).status, "active")  # asked, not done
        self.act(self.cue["id"], self.plain["id"], apply="Pause", pause_note="db migration",
                 paused_until="2026-11-25 06:00")
        for cue_id in (self.cue["id"], self.plain["id"]):
            body = self.get(f"/v1/cues/{cue_id}").json()
            self.assertEqual((body["status"], body["next_run"], body["paused_until"], body["pause_note"]),
                             ("paused", None, "2026-11-25T06:00:00Z", "db migration"))
        # Without a time: an indefinite pause with the note.
        self.act(self.later["id"], apply="Pause", pause_note="until further notice")
        body = self.get(f"/v1/cues/{self.later['id']}").json()
        self.assertEqual((body["paused_until"], body["pause_note"]), (None, "until further notice"))

    def test_pause_with_note_refuses_bad_input_and_changes_nothing(self):
        for form in ({"pause_note": ""}, {"pause_note": "x" * 501}, {"pause_note": "n", "paused_until": "yesterday"},
                     {"pause_note": "n", "paused_until": "2026-11-24 11:59"}):
            with self.subTest(form=form):
                page = self.act(self.cue["id"], apply="Pause", **form)
                self.assertContains(page, "errorlist")
                self.assertEqual(Cue.objects.get(pk=self.cue["id"]).status, "active")

    def test_pause_with_note_is_staff_only(self):
        self.client.logout()
        self.act(self.cue["id"], apply="Pause", pause_note="n")
        self.assertEqual(Cue.objects.get(pk=self.cue["id"]).status, "active")
