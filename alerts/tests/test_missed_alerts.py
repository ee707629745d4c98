"""Missed slots are never silent: one `missed` alert per cue per poller pass, whether the
catch-up policy or the overlap policy skipped them."""

import datetime
from datetime import timedelta

import time_machine

from alerts.models import Alert, Notification
from cueapi.testing import CueTestCase
from executions import poller
from executions.models import Execution

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
HOURLY = {"type": "recurring", "cron": "0 * * * *", "timezone": "UTC"}


class MissedAlertTests(CueTestCase):
    def hourly(self, name, **fields):
        with time_machine.travel(NOW, tick=False):
            return self.create_cue(name=name, schedule=HOURLY, transport="worker", callback=None,
                                   payload={"task": "t"}, **fields)

    def test_the_scheduler_was_down(self):
        latest, none = self.hourly("latest"), self.hourly("none", catch_up="none")
        self.hourly("all", catch_up="all")  # fires every slot: nothing missed
        back = NOW + timedelta(days=1, minutes=5)
        with time_machine.travel(back, tick=False):
            poller.fire_due_cues(now=back)
        alerts = {a.cue_id: a for a in Alert.objects.filter(alert_type="missed")}
        self.assertEqual(set(alerts), {latest["id"], none["id"]})
        alert = alerts[latest["id"]]
        self.assertEqual(alert.metadata, {"missed": 23, "reason": "catch_up",
                                          "first_slot": "2026-11-24T13:00:00+00:00",
                                          "last_slot": "2026-11-25T11:00:00+00:00"})
        self.assertEqual(alert.message, (
            f"Cue 'latest' ({latest['id']}) missed 23 scheduled runs (2026-11-24T13:00:00+00:00 to "
            "2026-11-25T11:00:00+00:00): the scheduler was not running at that time (catch-up policy: latest)."))
        self.assertEqual(alerts[none["id"]].metadata["missed"], 24)
        self.assertTrue(Notification.objects.filter(alert=alert, kind="email").exists())
        with time_machine.travel(back, tick=False):
            poller.fire_due_cues(now=back)  # a repeated pass records nothing new and says nothing
        self.assertEqual(Alert.objects.filter(alert_type="missed").count(), 2)

    def test_overlap_skip(self):
        cue = self.hourly("busy", overlap="skip")
        for hours in (1, 2):
            at = NOW + timedelta(hours=hours)
            with time_machine.travel(at, tick=False):
                poller.fire_due_cues(now=at)
        self.assertEqual(Execution.objects.filter(cue_id=cue["id"], status="missed").count(), 1)
        alert = Alert.objects.get(alert_type="missed")
        self.assertEqual((alert.cue_id, alert.metadata["reason"], alert.metadata["missed"]),
                         (cue["id"], "overlap", 1))
        self.assertIn("an execution of the cue was still running (overlap policy: skip)", alert.message)

    def test_muted_during_maintenance(self):
        cue = self.hourly("quiet", alerts={"muted_until": (NOW + timedelta(days=2)).isoformat()})
        back = NOW + timedelta(days=1, minutes=5)
        with time_machine.travel(back, tick=False):
            poller.fire_due_cues(now=back)
        alert = Alert.objects.get(alert_type="missed", cue_id=cue["id"])
        self.assertTrue(alert.muted)
        self.assertFalse(Notification.objects.exists())


class CueLinkTests(CueTestCase):
    def test_an_id_that_looks_escaped_still_links_to_its_cue(self):
        # The admin reads "_24" in a URL as "$": a link to cue_24… must be quoted as the admin quotes.
        from urllib.parse import urlsplit

        from accounts.models import User
        from alerts.messages import cue_link
        from cues.models import Cue

        cue = Cue.objects.get(pk=self.create_cue(name="hourly")["id"])
        Cue.objects.filter(pk=cue.pk).update(id="cue_24abcdefghij")
        link = cue_link(Alert(cue_id="cue_24abcdefghij"))
        self.client.force_login(User.objects.create_superuser("ops@example.org", "correct horse battery"))
        page = self.client.get(urlsplit(link).path)
        self.assertContains(page, "hourly")
