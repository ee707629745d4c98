"""Timed pause, frozen in time: PATCH {"status": "paused", "paused_until", "pause_note"}, its
errors (nothing persisted), and the poller's automatic resume at paused_until."""

import datetime
from datetime import timedelta
from unittest import mock

import time_machine
from django.core.management import call_command

from cueapi.testing import CueTestCase, cue_body
from cues.models import Cue
from cues.schedule import jitter_offset
from cues.services import cue_resume_due
from executions import poller
from executions.models import Execution

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
HOURLY = {"type": "recurring", "cron": "0 * * * *", "timezone": "UTC"}


def z(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@time_machine.travel(NOW, tick=False)
class TimedPauseApiTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue(schedule=HOURLY)
        self.url = f"/v1/cues/{self.cue['id']}"

    def stored(self):
        return Cue.objects.get(pk=self.cue["id"])

    def test_it_works(self):
        until = NOW + timedelta(hours=2, minutes=30)
        r = self.patch(self.url, {"status": "paused", "paused_until": z(until), "pause_note": "deploy freeze"})
        self.assertEqual(r.status_code, 200, r.content)
        body = r.json()
        self.assertEqual((body["status"], body["paused_until"], body["pause_note"], body["next_run"]),
                         ("paused", z(until), "deploy freeze", None))
        got = self.get(self.url).json()
        self.assertEqual((got["paused_until"], got["pause_note"]), (z(until), "deploy freeze"))
        listed = self.get("/v1/cues").json()["cues"][0]
        self.assertEqual((listed["paused_until"], listed["pause_note"]), (z(until), "deploy freeze"))

    def test_an_active_cue_has_neither(self):
        self.assertEqual((self.cue["paused_until"], self.cue["pause_note"]), (None, None))

    def test_a_note_alone_goes_with_a_plain_pause(self):
        r = self.patch(self.url, {"status": "paused", "pause_note": "waiting on the vendor"})
        self.assertEqual((r.json()["paused_until"], r.json()["pause_note"]), (None, "waiting on the vendor"))

    def test_a_plain_pause_and_a_resume_clear_both(self):
        self.patch(self.url, {"status": "paused", "paused_until": z(NOW + timedelta(days=1)), "pause_note": "n"})
        r = self.patch(self.url, {"status": "active"})
        self.assertEqual((r.json()["status"], r.json()["paused_until"], r.json()["pause_note"]), ("active", None, None))
        self.assertEqual(r.json()["next_run"], z(NOW + timedelta(hours=1)))
        r = self.patch(self.url, {"status": "paused"})
        self.assertEqual((r.json()["paused_until"], r.json()["pause_note"]), (None, None))

    def test_on_a_paused_cue_only_what_is_sent_changes(self):
        self.patch(self.url, {"status": "paused", "paused_until": z(NOW + timedelta(days=1)), "pause_note": "n"})
        r = self.patch(self.url, {"paused_until": z(NOW + timedelta(days=2))})
        self.assertEqual((r.json()["paused_until"], r.json()["pause_note"]), (z(NOW + timedelta(days=2)), "n"))
        r = self.patch(self.url, {"pause_note": "longer"})
        self.assertEqual((r.json()["paused_until"], r.json()["pause_note"]), (z(NOW + timedelta(days=2)), "longer"))
        r = self.patch(self.url, {"description": "d"})
        self.assertEqual((r.json()["paused_until"], r.json()["pause_note"]), (z(NOW + timedelta(days=2)), "longer"))
        # null clears one of them.
        r = self.patch(self.url, {"pause_note": None})
        self.assertEqual((r.json()["paused_until"], r.json()["pause_note"]), (z(NOW + timedelta(days=2)), None))

    def test_pausing_a_paused_cue_again_is_a_new_pause(self):
        # "both null on a plain pause" (issue 17): also when the cue was already paused.
        self.patch(self.url, {"status": "paused", "paused_until": z(NOW + timedelta(days=1)), "pause_note": "n"})
        r = self.patch(self.url, {"status": "paused"})
        self.assertEqual((r.json()["status"], r.json()["paused_until"], r.json()["pause_note"]), ("paused", None, None))
        self.patch(self.url, {"status": "paused", "paused_until": z(NOW + timedelta(days=1)), "pause_note": "n"})
        r = self.patch(self.url, {"status": "paused", "pause_note": "other"})
        self.assertEqual((r.json()["paused_until"], r.json()["pause_note"]), (None, "other"))
        r = self.patch(self.url, {"status": "paused", "paused_until": z(NOW + timedelta(days=3))})
        self.assertEqual((r.json()["paused_until"], r.json()["pause_note"]), (z(NOW + timedelta(days=3)), None))
        stored = Cue.objects.get(pk=self.cue["id"])
        self.assertEqual((stored.status, stored.next_run), ("paused", None))

    def test_a_resume_clears_the_servers_note(self):
        Cue.objects.filter(pk=self.cue["id"]).update(status="paused", next_run=None, pause_note="server says")
        r = self.patch(self.url, {"status": "active"})
        self.assertEqual((r.json()["status"], r.json()["pause_note"]), ("active", None))

    def test_errors_are_422_and_change_nothing(self):
        before = self.get(self.url).json()
        cases = [
            ({"status": "paused", "paused_until": z(NOW - timedelta(seconds=1))}, "body.paused_until",
             "body.paused_until: paused_until is in the past; give a later time, or leave it out to pause "
             "until the cue is resumed"),
            ({"status": "paused", "paused_until": z(NOW)}, "body.paused_until", None),
            ({"status": "paused", "paused_until": "tomorrow"}, "body.paused_until", None),
            ({"status": "paused", "pause_note": "x" * 501}, "body.pause_note",
             "body.pause_note: String should have at most 500 characters"),
            ({"status": "paused", "pause_note": 5}, "body.pause_note", None),
            ({"status": "active", "paused_until": z(NOW + timedelta(hours=1))}, "body.paused_until",
             'body.paused_until: paused_until belongs to a pause: send it with "status": "paused", not "active"'),
            ({"status": "active", "pause_note": "n"}, "body.pause_note", None),
            ({"paused_until": z(NOW + timedelta(hours=1))}, "body.paused_until",
             'body.paused_until: paused_until belongs to a pause: this cue is active; send "status": "paused" '
             "with it"),
            ({"pause_note": "n", "description": "changed"}, "body.pause_note", None),
        ]
        for body, field, message in cases:
            with self.subTest(body=body):
                error = self.assertError(self.patch(self.url, body), 422, "validation_error", message)
                self.assertEqual(error["details"][0]["field"], field)
        self.assertEqual(self.get(self.url).json(), before)

    def test_on_a_paused_cue_a_past_time_is_422_too(self):
        self.patch(self.url, {"status": "paused", "paused_until": z(NOW + timedelta(days=1)), "pause_note": "n"})
        before = self.get(self.url).json()
        r = self.patch(self.url, {"paused_until": z(NOW - timedelta(days=1)), "pause_note": "other"})
        self.assertError(r, 422, "validation_error")
        self.assertEqual(self.get(self.url).json(), before)

    def test_a_resume_may_send_them_as_null(self):
        self.patch(self.url, {"status": "paused", "paused_until": z(NOW + timedelta(days=1))})
        r = self.patch(self.url, {"status": "active", "paused_until": None, "pause_note": None})
        self.assertEqual((r.status_code, r.json()["status"], r.json()["paused_until"]), (200, "active", None))

    def test_it_hides_bobs_cue(self):
        r = self.patch(self.url, {"status": "paused", "paused_until": z(NOW + timedelta(days=1))}, key=self.bob_key)
        self.assertError(r, 404, "cue_not_found")
        self.assertEqual(self.stored().status, "active")


@time_machine.travel(NOW, tick=False)
class TimedPauseCreateTests(CueTestCase):
    def test_a_cue_created_with_paused_until_starts_paused(self):
        cue = self.create_cue(paused_until=z(NOW + timedelta(days=1)), pause_note="launch day")
        self.assertEqual((cue["status"], cue["next_run"], cue["paused_until"], cue["pause_note"]),
                         ("paused", None, z(NOW + timedelta(days=1)), "launch day"))

    def test_create_errors_are_422_and_create_nothing(self):
        for overrides, field in (
            ({"paused_until": z(NOW - timedelta(minutes=1))}, "body.paused_until"),
            ({"pause_note": "no until"}, "body.pause_note"),
            ({"paused_until": z(NOW + timedelta(days=1)), "pause_note": "x" * 501}, "body.pause_note"),
        ):
            with self.subTest(overrides=overrides):
                error = self.assertError(self.post("/v1/cues", cue_body(**overrides)), 422, "validation_error")
                self.assertEqual(error["details"][0]["field"], field)
        self.assertFalse(Cue.objects.exists())

    def test_an_upsert_follows_patchs_rules(self):
        cue = self.create_cue()
        body = cue_body(upsert=True, paused_until=z(NOW + timedelta(days=1)))
        error = self.assertError(self.post("/v1/cues", body), 422, "validation_error")
        self.assertEqual(error["details"][0]["field"], "body.paused_until")
        self.assertEqual(Cue.objects.get(pk=cue["id"]).status, "active")
        self.patch(f"/v1/cues/{cue['id']}", {"status": "paused"})
        r = self.post("/v1/cues", body)
        self.assertEqual((r.status_code, r.json()["paused_until"]), (200, z(NOW + timedelta(days=1))))


class AutoResumeTests(CueTestCase):
    """The poller's sweep, with the clock frozen at each step."""

    def pause(self, cue, until, **extra):
        r = self.patch(f"/v1/cues/{cue['id']}", {"status": "paused", "paused_until": z(until), **extra})
        assert r.status_code == 200, r.content
        return r.json()

    def setUp(self):
        super().setUp()
        with time_machine.travel(NOW, tick=False):
            self.cue = self.create_cue(schedule=HOURLY)

    def test_it_resumes_at_paused_until_and_not_before(self):
        until = NOW + timedelta(hours=2, minutes=30)
        with time_machine.travel(NOW, tick=False):
            self.pause(self.cue, until, pause_note="freeze")
        self.assertEqual(poller.resume_timed_pauses(now=until - timedelta(seconds=1)), 0)
        self.assertEqual(Cue.objects.get(pk=self.cue["id"]).status, "paused")
        self.assertEqual(poller.resume_timed_pauses(now=until), 1)
        with time_machine.travel(until, tick=False):
            body = self.get(f"/v1/cues/{self.cue['id']}").json()
        self.assertEqual((body["status"], body["next_run"], body["paused_until"], body["pause_note"]),
                         ("active", z(NOW + timedelta(hours=3)), None, None))
        self.assertEqual(Execution.objects.count(), 0)  # the slots while paused don't fire

    def test_it_resumes_as_a_manual_resume_does(self):
        """With jitter and a window: next_run and next_slot are what PATCH {"status": "active"}
        at paused_until gives."""
        until = NOW + timedelta(hours=2, minutes=30)
        schedule = {**HOURLY, "jitter_seconds": 600, "end_at": z(NOW + timedelta(days=1))}
        with time_machine.travel(NOW, tick=False):
            manual = self.create_cue(name="manual", schedule=schedule)
            timed = self.create_cue(name="timed", schedule=schedule)
            self.patch(f"/v1/cues/{manual['id']}", {"status": "paused"})
            self.pause(timed, until)
        with time_machine.travel(until, tick=False):
            self.patch(f"/v1/cues/{manual['id']}", {"status": "active"})
        poller.resume_timed_pauses(now=until)
        manual, timed = Cue.objects.get(pk=manual["id"]), Cue.objects.get(pk=timed["id"])
        self.assertEqual((timed.status, timed.next_slot), ("active", NOW + timedelta(hours=3)))
        self.assertEqual(timed.next_slot, manual.next_slot)
        # The same rule for both: the slot plus the cue's own delay (it depends on the cue's id).
        for cue in (manual, timed):
            self.assertEqual(cue.next_run, cue.next_slot + jitter_offset(cue.pk, cue.next_slot, 600))

    def test_a_slot_exactly_at_paused_until_fires_in_that_cycle(self):
        until = NOW + timedelta(hours=3)
        with time_machine.travel(NOW, tick=False):
            self.pause(self.cue, until)
        with time_machine.travel(until, tick=False):
            call_command("run_poller", once=True)
        self.assertEqual(list(Execution.objects.values_list("scheduled_for", flat=True)), [until])
        self.assertEqual(Cue.objects.get(pk=self.cue["id"]).next_run, NOW + timedelta(hours=4))

    def test_a_late_poller_catches_up_by_the_cues_policy(self):
        until = NOW + timedelta(hours=2, minutes=30)
        with time_machine.travel(NOW, tick=False):
            self.pause(self.cue, until)
        late = NOW + timedelta(hours=5, minutes=10)
        with time_machine.travel(late, tick=False):
            call_command("run_poller", once=True)
        # catch_up latest: the last slot since paused_until fires, the earlier ones are missed.
        rows = sorted(Execution.objects.values_list("scheduled_for", "status"))
        self.assertEqual(rows, [(NOW + timedelta(hours=3), "missed"), (NOW + timedelta(hours=4), "missed"),
                                (NOW + timedelta(hours=5), "pending")])

    def test_a_one_time_cue_whose_time_passed_fires(self):
        with time_machine.travel(NOW, tick=False):
            once = self.create_cue(name="once", schedule={"type": "once", "at": z(NOW + timedelta(hours=1))})
            self.pause(once, NOW + timedelta(hours=2))
        with time_machine.travel(NOW + timedelta(hours=2), tick=False):
            call_command("run_poller", once=True)
        self.assertEqual(list(Execution.objects.filter(cue_id=once["id"]).values_list("scheduled_for", flat=True)),
                         [NOW + timedelta(hours=1)])

    def test_a_window_that_ended_while_paused_completes_it(self):
        with time_machine.travel(NOW, tick=False):
            cue = self.create_cue(name="windowed", schedule={**HOURLY, "end_at": z(NOW + timedelta(hours=3))})
            self.pause(cue, NOW + timedelta(hours=4))
        poller.resume_timed_pauses(now=NOW + timedelta(hours=4))
        stored = Cue.objects.get(pk=cue["id"])
        self.assertEqual((stored.status, stored.next_run, stored.paused_until), ("completed", None, None))

    def test_it_resumes_once_whoever_gets_there(self):
        """Two pollers read the same paused cue; the guarded UPDATE lets one resume it."""
        until = NOW + timedelta(hours=2)
        with time_machine.travel(NOW, tick=False):
            self.pause(self.cue, until)
        first, second = Cue.objects.get(pk=self.cue["id"]), Cue.objects.get(pk=self.cue["id"])
        self.assertTrue(cue_resume_due(cue=first, now=until))
        self.assertFalse(cue_resume_due(cue=second, now=until))
        self.assertEqual(poller.resume_timed_pauses(now=until), 0)

    def test_a_pause_changed_meanwhile_is_left_alone(self):
        with time_machine.travel(NOW, tick=False):
            self.pause(self.cue, NOW + timedelta(hours=2))
        read = Cue.objects.get(pk=self.cue["id"])
        with time_machine.travel(NOW + timedelta(hours=1), tick=False):
            self.pause(self.cue, NOW + timedelta(hours=5))  # extended after the poller read it
        self.assertFalse(cue_resume_due(cue=read, now=NOW + timedelta(hours=2)))
        stored = Cue.objects.get(pk=self.cue["id"])
        self.assertEqual((stored.status, stored.paused_until), ("paused", NOW + timedelta(hours=5)))

    def test_a_manual_resume_first_leaves_nothing_to_do(self):
        with time_machine.travel(NOW, tick=False):
            self.pause(self.cue, NOW + timedelta(hours=2))
            self.patch(f"/v1/cues/{self.cue['id']}", {"status": "active"})
        self.assertEqual(poller.resume_timed_pauses(now=NOW + timedelta(hours=3)), 0)

    def test_a_schedule_that_broke_while_paused_stays_paused_with_a_note(self):
        with time_machine.travel(NOW, tick=False):
            self.pause(self.cue, NOW + timedelta(hours=2))
        Cue.objects.filter(pk=self.cue["id"]).update(schedule_timezone="Mars/Olympus_Mons")
        self.assertEqual(poller.resume_timed_pauses(now=NOW + timedelta(hours=2)), 1)
        stored = Cue.objects.get(pk=self.cue["id"])
        self.assertEqual((stored.status, stored.paused_until), ("paused", None))
        self.assertIn("Mars/Olympus_Mons", stored.pause_note)
        self.assertEqual(poller.resume_timed_pauses(now=NOW + timedelta(hours=3)), 0)  # not again

    def test_an_unexpected_error_parks_that_cue_and_resumes_the_others(self):
        with time_machine.travel(NOW, tick=False):
            other = self.create_cue(name="other", schedule={"type": "once", "at": z(NOW + timedelta(hours=5))})
            self.pause(self.cue, NOW + timedelta(hours=2))
            self.pause(other, NOW + timedelta(hours=2))
        with mock.patch.object(Cue, "upcoming", side_effect=RuntimeError("boom")):  # recurring cues only
            self.assertEqual(poller.resume_timed_pauses(now=NOW + timedelta(hours=2)), 2)
        broken, fine = Cue.objects.get(pk=self.cue["id"]), Cue.objects.get(pk=other["id"])
        self.assertEqual((broken.status, broken.paused_until), ("paused", None))
        self.assertIn("internal error: RuntimeError", broken.pause_note)
        self.assertEqual((fine.status, fine.next_run), ("active", NOW + timedelta(hours=5)))

    def test_the_poller_wakes_at_the_earliest_paused_until(self):
        with time_machine.travel(NOW, tick=False):
            self.pause(self.cue, NOW + timedelta(minutes=20))
            self.create_cue(name="other", schedule=HOURLY)  # due at 13:00
        self.assertEqual(poller.next_due(now=NOW), NOW + timedelta(minutes=20))
