"""Scheduling controls, frozen in time: a recurring cue's window (start_at/end_at), jitter, and
the overlap policy (allow / skip / buffer_one) across transports and outcome timing."""

import datetime
from datetime import timedelta

import time_machine

from accounts.models import User
from cueapi.testing import CueTestCase
from cues.models import Cue
from cues.schedule import jitter_offset
from executions import lifecycle, poller
from executions.delivery import DeliveryResult
from executions.models import Execution

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
HOURLY = {"type": "recurring", "cron": "0 * * * *", "timezone": "UTC"}
S = Execution.Status


def z(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@time_machine.travel(NOW, tick=False)
class WindowTests(CueTestCase):
    def test_no_slot_before_start_at_and_start_at_itself_fires(self):
        cue = self.create_cue(schedule={**HOURLY, "start_at": z(NOW + timedelta(hours=5))})
        self.assertEqual(cue["next_run"], z(NOW + timedelta(hours=5)))
        self.assertEqual(cue["schedule"]["start_at"], z(NOW + timedelta(hours=5)))
        self.assertEqual(poller.fire_due_cues(now=NOW + timedelta(hours=4, minutes=59)), 0)
        poller.fire_due_cues(now=NOW + timedelta(hours=5))
        self.assertEqual(Execution.objects.get().scheduled_for, NOW + timedelta(hours=5))

    def test_a_start_between_slots_waits_for_the_next_slot(self):
        cue = self.create_cue(schedule={**HOURLY, "start_at": z(NOW + timedelta(hours=2, minutes=30))})
        self.assertEqual(cue["next_run"], z(NOW + timedelta(hours=3)))

    def test_the_end_at_slot_fires_then_the_cue_completes(self):
        cue = self.create_cue(schedule={**HOURLY, "end_at": z(NOW + timedelta(hours=2))})
        poller.fire_due_cues(now=NOW + timedelta(hours=1))
        stored = Cue.objects.get(pk=cue["id"])
        self.assertEqual((stored.status, stored.next_run), ("active", NOW + timedelta(hours=2)))
        poller.fire_due_cues(now=NOW + timedelta(hours=2))
        stored.refresh_from_db()
        self.assertEqual((stored.status, stored.next_run), ("completed", None))
        self.assertEqual(sorted(Execution.objects.values_list("scheduled_for", flat=True)),
                         [NOW + timedelta(hours=1), NOW + timedelta(hours=2)])
        body = self.get(f"/v1/cues/{cue['id']}").json()
        self.assertEqual((body["status"], body["next_run"]), ("completed", None))

    def test_catch_up_never_fires_past_end_at(self):
        cue = self.create_cue(schedule={**HOURLY, "end_at": z(NOW + timedelta(hours=2, minutes=30))},
                              catch_up="all")
        poller.fire_due_cues(now=NOW + timedelta(hours=6))
        self.assertEqual(sorted(Execution.objects.values_list("scheduled_for", flat=True)),
                         [NOW + timedelta(hours=1), NOW + timedelta(hours=2)])
        self.assertEqual(Cue.objects.get(pk=cue["id"]).status, "completed")

    def test_patch_moves_the_window_and_only_what_is_sent_changes(self):
        cue = self.create_cue(schedule={**HOURLY, "start_at": z(NOW + timedelta(hours=3)), "jitter_seconds": 0})
        r = self.patch(f"/v1/cues/{cue['id']}", {"schedule": {"end_at": z(NOW + timedelta(hours=10))}})
        self.assertEqual(r.status_code, 200, r.content)
        schedule = r.json()["schedule"]
        self.assertEqual((schedule["cron"], schedule["start_at"], schedule["end_at"]),
                         ("0 * * * *", z(NOW + timedelta(hours=3)), z(NOW + timedelta(hours=10))))
        r = self.patch(f"/v1/cues/{cue['id']}", {"schedule": {"start_at": None}})
        self.assertEqual((r.json()["schedule"]["start_at"], r.json()["next_run"]), (None, z(NOW + timedelta(hours=1))))

    def test_an_end_before_the_next_slot_completes_the_cue(self):
        cue = self.create_cue(schedule=HOURLY)
        r = self.patch(f"/v1/cues/{cue['id']}", {"schedule": {"end_at": z(NOW + timedelta(minutes=30))}})
        self.assertEqual((r.json()["status"], r.json()["next_run"]), ("completed", None))

    def test_bad_windows_are_422_and_change_nothing(self):
        cue = self.create_cue(schedule=HOURLY)
        cases = [
            ({**HOURLY, "start_at": z(NOW + timedelta(hours=5)), "end_at": z(NOW + timedelta(hours=5))},
             "body.schedule.end_at"),
            ({**HOURLY, "start_at": z(NOW + timedelta(hours=6)), "end_at": z(NOW + timedelta(hours=5))},
             "body.schedule.end_at"),
            ({**HOURLY, "end_at": z(NOW - timedelta(hours=1))}, "body.schedule.end_at"),
            ({"type": "once", "at": z(NOW + timedelta(hours=1)), "start_at": z(NOW)}, "body.schedule.start_at"),
            ({"type": "once", "at": z(NOW + timedelta(hours=1)), "jitter_seconds": 5}, "body.schedule.jitter_seconds"),
            ({**HOURLY, "jitter_seconds": 3601}, "body.schedule.jitter_seconds"),
            ({**HOURLY, "jitter_seconds": -1}, "body.schedule.jitter_seconds"),
            ({**HOURLY, "start_at": "soon"}, "body.schedule.start_at"),
            # No slot fits between start_at and the end of year 9999 (was 400 "schedule math failed").
            ({**HOURLY, "start_at": "9999-12-31T23:30:00Z"}, "body.schedule.start_at"),
            ({**HOURLY, "timezone": "Pacific/Kiritimati", "start_at": "9999-12-31T10:30:00Z"},
             "body.schedule.start_at"),
        ]
        for schedule, field in cases:
            with self.subTest(schedule=schedule):
                r = self.patch(f"/v1/cues/{cue['id']}", {"schedule": schedule})
                error = self.assertError(r, 422, "validation_error")
                self.assertEqual(error["details"][0]["field"], field)
                r = self.post("/v1/cues", {"name": "new", "schedule": schedule, "callback": {"url": "http://127.0.0.1:9/h"}})
                self.assertEqual(r.status_code, 422, r.content)
        stored = Cue.objects.get(pk=cue["id"])
        self.assertEqual((stored.schedule_start_at, stored.schedule_end_at, stored.jitter_seconds), (None, None, 0))
        self.assertFalse(Cue.objects.filter(name="new").exists())

    def test_a_dst_day_with_a_window(self):
        # 02:30 New York doesn't exist on 2027-03-14: the fixed-time job runs at 03:00 EDT (07:00Z).
        cue = self.create_cue(schedule={"type": "recurring", "cron": "30 2 * * *", "timezone": "America/New_York",
                                        "start_at": "2027-03-13T12:00:00Z", "end_at": "2027-03-14T12:00:00Z"})
        self.assertEqual(cue["next_run"], "2027-03-14T07:00:00Z")
        poller.fire_due_cues(now=datetime.datetime(2027, 3, 14, 7, 0, tzinfo=datetime.timezone.utc))
        self.assertEqual(Cue.objects.get(pk=cue["id"]).status, "completed")


@time_machine.travel(NOW, tick=False)
class JitterTests(CueTestCase):
    def test_offset_is_deterministic_and_in_range(self):
        slots = [NOW + timedelta(hours=h) for h in range(500)]
        offsets = [jitter_offset("cue_abc", slot, 600) for slot in slots]
        self.assertEqual(offsets, [jitter_offset("cue_abc", slot, 600) for slot in slots])
        self.assertTrue(all(timedelta(0) <= o <= timedelta(seconds=600) for o in offsets))
        self.assertGreater(len(set(offsets)), 100)  # spread, not one value
        self.assertNotEqual(offsets, [jitter_offset("cue_xyz", slot, 600) for slot in slots])
        self.assertEqual(jitter_offset("cue_abc", NOW, 0), timedelta(0))

    def test_next_run_is_jittered_and_the_execution_keeps_the_slot(self):
        cue = self.create_cue(schedule={**HOURLY, "jitter_seconds": 1800})
        slot = NOW + timedelta(hours=1)
        run = slot + jitter_offset(cue["id"], slot, 1800)
        self.assertEqual(cue["next_run"], z(run))
        self.assertEqual(cue["schedule"]["jitter_seconds"], 1800)
        if run > slot:  # not before its jittered instant
            self.assertEqual(poller.fire_due_cues(now=run - timedelta(microseconds=1)), 0)
        self.assertEqual(poller.fire_due_cues(now=run), 1)
        self.assertEqual(Execution.objects.get().scheduled_for, slot)
        following = slot + timedelta(hours=1)
        stored = Cue.objects.get(pk=cue["id"])
        self.assertEqual((stored.next_slot, stored.next_run),
                         (following, following + jitter_offset(cue["id"], following, 1800)))

    def test_a_jittered_slot_is_on_time_for_catch_up_none(self):
        # Up to an hour late by design is not "missed" under catch_up none.
        cue = self.create_cue(schedule={**HOURLY, "jitter_seconds": 3600}, catch_up="none")
        run = Cue.objects.get(pk=cue["id"]).next_run
        poller.fire_due_cues(now=run + timedelta(seconds=1))
        self.assertEqual(list(Execution.objects.values_list("status", flat=True)), ["pending"])

    def test_every_poller_computes_the_same_instant(self):
        a = self.create_cue(name="a", schedule={**HOURLY, "jitter_seconds": 900})
        again = self.get(f"/v1/cues/{a['id']}").json()
        self.assertEqual(again["next_run"], a["next_run"])
        r = self.patch(f"/v1/cues/{a['id']}", {"description": "unrelated"})
        self.assertEqual(r.json()["next_run"], a["next_run"])

    def test_a_dst_day_with_jitter(self):
        # 01:30 New York occurs twice on 2026-11-01: the fixed-time job runs at the first (05:30Z);
        # jitter delays that slot's delivery, and the next slot is the next day's, not the repeat.
        with time_machine.travel(datetime.datetime(2026, 10, 31, 12, 0, tzinfo=datetime.timezone.utc), tick=False):
            cue = self.create_cue(schedule={"type": "recurring", "cron": "30 1 * * *", "timezone": "America/New_York",
                                            "jitter_seconds": 3600})
        slot = datetime.datetime(2026, 11, 1, 5, 30, tzinfo=datetime.timezone.utc)
        run = slot + jitter_offset(cue["id"], slot, 3600)
        self.assertEqual(cue["next_run"], z(run))
        poller.fire_due_cues(now=run)
        self.assertEqual(Execution.objects.get().scheduled_for, slot)
        following = datetime.datetime(2026, 11, 2, 6, 30, tzinfo=datetime.timezone.utc)
        self.assertEqual(Cue.objects.get(pk=cue["id"]).next_slot, following)

    def test_pause_and_resume_keep_the_rule(self):
        cue = self.create_cue(schedule={**HOURLY, "jitter_seconds": 120})
        self.patch(f"/v1/cues/{cue['id']}", {"status": "paused"})
        r = self.patch(f"/v1/cues/{cue['id']}", {"status": "active"})
        slot = NOW + timedelta(hours=1)
        self.assertEqual(r.json()["next_run"], z(slot + jitter_offset(cue["id"], slot, 120)))


@time_machine.travel(NOW, tick=False)
class OverlapTests(CueTestCase):
    def worker_cue(self, overlap, **extra):
        return self.create_cue(name=f"w-{overlap}", schedule=HOURLY, transport="worker", callback=None,
                               payload={"task": "t"}, overlap=overlap, **extra)

    def tick(self, hours):
        poller.fire_due_cues(now=NOW + timedelta(hours=hours))

    def executions(self, cue):
        return list(Execution.objects.filter(cue_id=cue["id"]).order_by("scheduled_for")
                    .values_list("scheduled_for", "status", "error_message"))

    def report(self, execution_id, success=True):
        r = self.post(f"/v1/executions/{execution_id}/outcome", {"success": success})
        self.assertEqual(r.status_code, 200, r.content)

    def test_allow_is_the_default_and_piles_up(self):
        cue = self.create_cue(schedule=HOURLY, transport="worker", callback=None, payload={"task": "t"})
        self.assertEqual(cue["overlap"], "allow")
        self.tick(1), self.tick(2)
        self.assertEqual([s for _, s, _ in self.executions(cue)], ["pending", "pending"])

    def test_skip_records_a_missed_slot_while_one_runs(self):
        cue = self.worker_cue("skip")
        self.tick(1), self.tick(2)
        (_, first, _), (_, second, message) = self.executions(cue)
        self.assertEqual((first, second), ("pending", "missed"))
        self.assertIn("overlap policy (skip)", message)
        first_id = Execution.objects.get(cue_id=cue["id"], status="pending").pk
        self.report(first_id)
        self.tick(3)
        self.assertEqual([s for _, s, _ in self.executions(cue)], ["success", "missed", "pending"])

    def test_a_failure_for_good_ends_the_run(self):
        cue = self.worker_cue("skip")
        self.tick(1)
        self.report(Execution.objects.get(cue_id=cue["id"]).pk, success=False)
        self.tick(2)
        self.assertEqual([s for _, s, _ in self.executions(cue)], ["failed", "pending"])

    def test_buffer_one_keeps_one_slot_and_fires_it_when_the_run_ends(self):
        cue = self.worker_cue("buffer_one")
        self.tick(1), self.tick(2), self.tick(3)
        self.assertEqual([s for _, s, _ in self.executions(cue)], ["pending", "missed"])  # 2:00 waits, 3:00 skipped
        self.assertEqual(Cue.objects.get(pk=cue["id"]).overlap_buffered_slot, NOW + timedelta(hours=2))
        self.report(Execution.objects.get(cue_id=cue["id"], status="pending").pk)
        rows = self.executions(cue)
        self.assertEqual([(t, s) for t, s, _ in rows],
                         [(NOW + timedelta(hours=1), "success"), (NOW + timedelta(hours=2), "pending"),
                          (NOW + timedelta(hours=3), "missed")])
        self.assertIsNone(Cue.objects.get(pk=cue["id"]).overlap_buffered_slot)

    def test_a_waiting_slot_over_the_monthly_limit_is_recorded_not_sent(self):
        cue = self.worker_cue("buffer_one")
        self.tick(1), self.tick(2)  # 1:00 runs, 2:00 waits
        User.objects.filter(pk=self.alice.pk).update(monthly_execution_limit=1)  # 1:00 used it up
        self.report(Execution.objects.get(cue_id=cue["id"], status="pending").pk)
        (_, status, message) = self.executions(cue)[1]
        self.assertEqual(status, "failed")
        self.assertIn("limit", message)
        self.assertIsNone(Cue.objects.get(pk=cue["id"]).overlap_buffered_slot)

    def test_a_pause_drops_the_waiting_slot(self):
        cue = self.worker_cue("buffer_one")
        self.tick(1), self.tick(2)
        self.assertIsNotNone(Cue.objects.get(pk=cue["id"]).overlap_buffered_slot)
        self.patch(f"/v1/cues/{cue['id']}", {"status": "paused"})
        self.assertIsNone(Cue.objects.get(pk=cue["id"]).overlap_buffered_slot)

    def test_the_servers_pauses_drop_the_waiting_slot_too(self):
        # on_failure.pause, a parked schedule and a 410: each pauses the cue, and a slot left
        # waiting would fire stale when it is resumed.
        from cues.services import cue_park, cue_pause_with_note, cue_record_run

        for name, pause in (("on_failure", lambda c: cue_record_run(cue=c, now=NOW, finished=True, pause=True)),
                            ("parked", lambda c: cue_park(cue_id=c.pk, due=c.next_run, reason="x", now=NOW)),
                            ("gone", lambda c: cue_pause_with_note(cue_id=c.pk, note="gone", now=NOW))):
            with self.subTest(name):
                cue = self.create_cue(name=f"b-{name}", schedule=HOURLY, transport="worker", callback=None,
                                      payload={"task": "t"}, overlap="buffer_one")
                Cue.objects.filter(pk=cue["id"]).update(overlap_buffered_slot=NOW - timedelta(hours=1))
                pause(Cue.objects.get(pk=cue["id"]))
                stored = Cue.objects.get(pk=cue["id"])
                self.assertEqual((stored.status, stored.overlap_buffered_slot, stored.next_run), ("paused", None, None))

    def test_the_sweep_releases_a_slot_when_nothing_runs(self):
        cue = self.worker_cue("buffer_one")
        Cue.objects.filter(pk=cue["id"]).update(overlap_buffered_slot=NOW - timedelta(hours=1))
        self.assertEqual(poller.release_buffered_slots(now=NOW), 1)
        self.assertEqual(poller.release_buffered_slots(now=NOW), 0)
        self.assertEqual([(t, s) for t, s, _ in self.executions(cue)], [(NOW - timedelta(hours=1), "pending")])

    def test_a_plain_webhook_runs_until_delivered(self):
        cue = self.create_cue(schedule=HOURLY, overlap="skip")
        self.tick(1)
        execution = Execution.objects.get(cue_id=cue["id"])
        self.tick(2)  # still pending (not delivered): skipped
        Execution.objects.filter(pk=execution.pk).update(status=S.DELIVERING)
        execution.refresh_from_db()
        lifecycle.webhook_delivered(execution=execution, cue=execution.cue, attempt=1, now=NOW + timedelta(hours=2),
                                    result=DeliveryResult(delivered=True, http_status=200))
        self.tick(3)
        self.assertEqual([s for _, s, _ in self.executions(cue)], ["success", "missed", "pending"])

    def test_a_webhook_waiting_for_its_outcome_runs_until_the_deadline(self):
        cue = self.create_cue(schedule=HOURLY, overlap="skip", delivery={"outcome_deadline_seconds": 5400})
        self.tick(1)
        execution = Execution.objects.get(cue_id=cue["id"])
        Execution.objects.filter(pk=execution.pk).update(status=S.DELIVERING)
        execution.refresh_from_db()
        lifecycle.webhook_delivered(execution=execution, cue=execution.cue, attempt=1, now=NOW + timedelta(hours=1),
                                    result=DeliveryResult(delivered=True, http_status=200))
        self.tick(2)  # delivered, outcome due at 2:30: still running
        poller.time_out_missing_outcomes(now=NOW + timedelta(hours=2, minutes=31))
        self.tick(3)
        self.assertEqual([s for _, s, _ in self.executions(cue)], ["outcome_timeout", "missed", "pending"])

    def test_manual_fires_are_not_subject_to_it(self):
        cue = self.worker_cue("skip")
        self.tick(1)
        r = self.post(f"/v1/cues/{cue['id']}/fire")
        self.assertEqual(r.status_code, 200)
        self.assertEqual(Execution.objects.filter(cue_id=cue["id"], status="pending").count(), 2)

    def test_patch_and_bad_values(self):
        cue = self.worker_cue("buffer_one")
        Cue.objects.filter(pk=cue["id"]).update(overlap_buffered_slot=NOW)
        r = self.patch(f"/v1/cues/{cue['id']}", {"overlap": "skip"})
        self.assertEqual(r.json()["overlap"], "skip")
        self.assertIsNone(Cue.objects.get(pk=cue["id"]).overlap_buffered_slot)  # nothing waits under skip
        r = self.patch(f"/v1/cues/{cue['id']}", {"overlap": "queue"})
        error = self.assertError(r, 422, "validation_error")
        self.assertEqual(error["details"][0]["field"], "body.overlap")
        self.assertEqual(Cue.objects.get(pk=cue["id"]).overlap, "skip")
