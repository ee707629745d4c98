"""The failure streak's state machine, with frozen time: the threshold (once per streak), a
success in the middle, repeats while it lasts (and not after), recovery, muting."""

import datetime
from datetime import timedelta

import time_machine
from django.core.management import call_command

from alerts import streaks
from alerts.models import Alert, AlertStreak, Notification
from cueapi.testing import CueTestCase

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


class StreakTestCase(CueTestCase):
    def setUp(self):
        super().setUp()
        self.clock = time_machine.travel(NOW, tick=False)
        self.traveller = self.clock.start()
        self.addCleanup(self.clock.stop)

    def make_cue(self, **alerts):
        self.cue = self.create_cue(transport="worker", callback=None, payload={"task": "t"},
                                   on_failure={"email": False}, alerts=alerts)
        return self.cue

    def outcome(self, success, error="disk full"):
        execution_id = self.post(f"/v1/cues/{self.cue['id']}/fire").json()["id"]
        body = {"success": success} if success else {"success": False, "error": error}
        self.assertEqual(self.post(f"/v1/executions/{execution_id}/outcome", body).status_code, 200)
        return execution_id

    def failed(self, times=1):
        for _ in range(times):
            last = self.outcome(False)
        return last

    def later(self, **delta):
        self.traveller.shift(timedelta(**delta))

    def types(self):
        return list(Alert.objects.order_by("created_at", "id").values_list("alert_type", flat=True))


class ThresholdTests(StreakTestCase):
    def test_alert_on_the_nth_failure_once_per_streak(self):
        self.make_cue(failure_threshold=2)
        self.failed()
        self.assertEqual(self.types(), [])
        last = self.failed()
        alert = Alert.objects.get()
        self.assertEqual((alert.alert_type, alert.execution_id, alert.metadata, alert.muted),
                         ("consecutive_failures", __import__("uuid").UUID(last), {"consecutive_failures": 2}, False))
        self.assertEqual(alert.message, f"Cue 'nightly' ({self.cue['id']}) has 2 consecutive failed executions. "
                                        "Last error: disk full")
        self.failed(3)
        self.assertEqual(self.types(), ["consecutive_failures"])
        self.assertEqual(AlertStreak.objects.get().failures, 5)

    def test_threshold_of_one(self):
        self.make_cue(failure_threshold=1)
        self.failed()
        self.assertEqual(self.types(), ["consecutive_failures"])

    def test_a_success_in_the_middle_resets_the_count(self):
        self.make_cue(failure_threshold=3)
        self.failed(2)
        self.outcome(True)
        self.failed(2)
        self.assertEqual(self.types(), [])  # never 3 in a row; and no recovery: nothing was alerted
        self.failed()
        self.assertEqual(self.types(), ["consecutive_failures"])


class VerdictTests(StreakTestCase):
    def test_an_owners_rejection_is_a_failure_and_a_verified_success_a_success(self):
        self.make_cue(failure_threshold=2)
        self.patch(f"/v1/cues/{self.cue['id']}", {"verification": {"mode": "manual"}})
        first = self.outcome(True)  # manual: waits for the owner's verdict
        self.post(f"/v1/executions/{first}/verify", {"valid": False, "reason": "wrong file"})
        self.assertEqual(AlertStreak.objects.get().last_error, "verification rejected: wrong file")
        second = self.outcome(True)
        self.post(f"/v1/executions/{second}/verify", {"valid": False})
        self.assertEqual(self.types(), ["consecutive_failures"])
        self.later(minutes=1)
        third = self.outcome(True)
        self.post(f"/v1/executions/{third}/verify", {"valid": True})
        self.assertEqual(self.types(), ["consecutive_failures", "recovered"])


class RepeatTests(StreakTestCase):
    def test_repeats_while_failing_and_stop_on_recovery(self):
        self.make_cue(failure_threshold=2, repeat_every_minutes=60)
        self.failed(2)
        self.later(minutes=59)
        self.assertEqual(streaks.send_due_repeats(now=NOW + timedelta(minutes=59)), 0)
        self.later(minutes=1)
        self.assertEqual(streaks.send_due_repeats(now=NOW + timedelta(minutes=60)), 1)
        self.assertEqual(streaks.send_due_repeats(now=NOW + timedelta(minutes=60)), 0)  # once per interval
        self.failed()  # the streak grows: 3
        self.later(minutes=60)
        self.assertEqual(streaks.send_due_repeats(now=NOW + timedelta(minutes=120)), 1)
        first, second = Alert.objects.filter(metadata__has_key="repeat").order_by("created_at")
        self.assertEqual(first.metadata, {"consecutive_failures": 2, "repeat": 1,
                                          "failing_since": "2026-11-24T12:00:00+00:00"})
        self.assertEqual(second.metadata, {"consecutive_failures": 3, "repeat": 2,
                                           "failing_since": "2026-11-24T12:00:00+00:00"})
        self.assertIn("(reminder 2)", second.message)
        self.later(minutes=30)
        success = self.outcome(True)
        recovered = Alert.objects.get(alert_type="recovered")
        self.assertEqual((str(recovered.execution_id), recovered.severity), (success, "info"))
        self.assertEqual(recovered.metadata, {"failures": 3, "failing_since": "2026-11-24T12:00:00+00:00",
                                              "failing_seconds": 150 * 60})
        self.assertEqual(recovered.message, f"Cue 'nightly' ({self.cue['id']}) recovered after 3 failed executions "
                                            "(failing for 2h 30m since 2026-11-24T12:00:00+00:00). "
                                            "Last error: disk full")
        self.later(hours=5)
        self.assertEqual(streaks.send_due_repeats(now=NOW + timedelta(hours=8)), 0)  # over: no more
        self.assertEqual(self.types(), ["consecutive_failures"] * 3 + ["recovered"])

    def test_two_pollers_that_read_the_same_row_send_one_repeat(self):
        self.make_cue(failure_threshold=1, repeat_every_minutes=5)
        self.failed()
        first, second = AlertStreak.objects.select_related("cue__user").get(), AlertStreak.objects.get()
        due = NOW + timedelta(minutes=5)
        self.assertTrue(streaks.repeat_if_due(streak=first, now=due))
        self.assertFalse(streaks.repeat_if_due(streak=second, now=due))  # read before the first sent: lost
        self.assertEqual(Alert.objects.filter(metadata__repeat=1).count(), 1)
        self.assertEqual(AlertStreak.objects.get().repeats, 1)

    def test_no_repeats_unless_asked(self):
        self.make_cue(failure_threshold=1)
        self.failed()
        self.assertEqual(streaks.send_due_repeats(now=NOW + timedelta(days=30)), 0)

    def test_the_poller_sends_them(self):
        self.make_cue(failure_threshold=1, repeat_every_minutes=5)
        self.failed()
        self.later(minutes=5)
        call_command("run_poller", "--once")
        self.assertEqual(Alert.objects.filter(metadata__repeat=1).count(), 1)

    def test_a_paused_cue_is_not_repeated(self):
        self.make_cue(failure_threshold=1, repeat_every_minutes=5)
        self.failed()
        self.patch(f"/v1/cues/{self.cue['id']}", {"status": "paused"})
        self.assertEqual(streaks.send_due_repeats(now=NOW + timedelta(hours=1)), 0)


class RecoveryTests(StreakTestCase):
    def test_recovery_threshold_counts_successes_in_a_row(self):
        self.make_cue(failure_threshold=1, recovery_threshold=2)
        self.failed()
        self.later(minutes=1)
        self.outcome(True)
        self.failed()  # a failure while recovering: the streak goes on, the successes start over
        self.outcome(True)
        self.assertEqual(self.types(), ["consecutive_failures"])
        self.assertEqual(AlertStreak.objects.get().failures, 2)
        self.outcome(True)
        self.assertEqual(self.types(), ["consecutive_failures", "recovered"])
        self.assertEqual(Alert.objects.get(alert_type="recovered").metadata["failures"], 2)
        self.later(minutes=1)
        self.failed()  # a new streak: alerted again
        self.assertEqual(self.types(), ["consecutive_failures", "recovered", "consecutive_failures"])

    def test_notify_recovery_off_still_ends_the_streak(self):
        self.make_cue(failure_threshold=1, notify_recovery=False)
        self.failed()
        self.outcome(True)
        self.assertEqual(self.types(), ["consecutive_failures"])
        self.later(minutes=6)  # past the 5-minute dedup window
        self.failed()
        self.assertEqual(self.types(), ["consecutive_failures"] * 2)

    def test_settings_changed_mid_streak_apply(self):
        self.make_cue(failure_threshold=5)
        self.failed(2)
        self.patch(f"/v1/cues/{self.cue['id']}", {"alerts": {"failure_threshold": 3}})
        self.failed()
        self.assertEqual(self.types(), ["consecutive_failures"])


class MutingTests(StreakTestCase):
    def test_muted_alerts_are_recorded_not_sent_not_sent_later(self):
        self.make_cue(failure_threshold=1, repeat_every_minutes=30,
                      muted_until=(NOW + timedelta(minutes=45)).isoformat())
        self.failed()
        muted = Alert.objects.get()
        self.assertTrue(muted.muted)
        self.assertFalse(Notification.objects.exists())
        body = self.get("/v1/alerts").json()
        self.assertEqual([(a["alert_type"], a["muted"]) for a in body["alerts"]], [("consecutive_failures", True)])
        self.later(minutes=30)
        self.assertEqual(streaks.send_due_repeats(now=NOW + timedelta(minutes=30)), 1)  # still muted
        self.assertFalse(Notification.objects.exists())
        self.later(minutes=30)  # the maintenance is over: the next repeat goes out, nothing before it
        self.assertEqual(streaks.send_due_repeats(now=NOW + timedelta(minutes=60)), 1)
        sent = Alert.objects.get(muted=False)
        self.assertEqual(sent.metadata["repeat"], 2)
        self.assertEqual(list(Notification.objects.values_list("alert_id", flat=True)), [sent.id])
        self.assertEqual(Alert.objects.filter(muted=True).count(), 2)
        self.assertEqual([a["muted"] for a in self.get("/v1/alerts").json()["alerts"]], [False, True, True])


class SuccessCountedOnceTests(StreakTestCase):
    def test_a_delivery_then_its_reported_success_is_one_success(self):
        from executions.tests.test_delivery import deliver_all
        from tests.receiver import Receiver

        with Receiver([(500, b"down")]) as receiver:
            self.cue = self.create_cue(callback={"url": receiver.url}, retry={"max_attempts": 1},
                                       on_failure={"email": False},
                                       alerts={"failure_threshold": 1, "recovery_threshold": 2})
            self.post(f"/v1/cues/{self.cue['id']}/fire")
            deliver_all()
            receiver.responses = [(200, b"ok")]
            self.later(seconds=1)
            execution_id = self.post(f"/v1/cues/{self.cue['id']}/fire").json()["id"]
            deliver_all()  # 2xx, no outcome expected: a success
        self.post(f"/v1/executions/{execution_id}/outcome", {"success": True})  # the same success, again
        self.assertEqual(AlertStreak.objects.get().successes, 1)
        self.assertEqual(self.types(), ["consecutive_failures"])


class ReportedFailureAfterDeliveryTests(StreakTestCase):
    """A plain webhook answered 2xx (a success, no outcome expected), then its handler reported
    `success: false` through the API: the execution failed, and counts in the streak (as before
    per-cue settings: the streak is the executions' verdicts)."""

    def test_failures_reported_after_a_2xx_reach_the_threshold(self):
        from executions.tests.test_delivery import deliver_all
        from tests.receiver import Receiver

        with Receiver([(200, b"ok")]) as receiver:
            self.cue = self.create_cue(callback={"url": receiver.url}, on_failure={"email": False},
                                       alerts={"failure_threshold": 2})
            for _ in range(2):
                self.later(seconds=1)
                execution_id = self.post(f"/v1/cues/{self.cue['id']}/fire").json()["id"]
                deliver_all()
                self.post(f"/v1/executions/{execution_id}/outcome", {"success": False, "error": "disk full"})
        self.assertEqual(self.types(), ["consecutive_failures"])
        alert = Alert.objects.get()
        self.assertEqual((str(alert.execution_id), alert.metadata), (execution_id, {"consecutive_failures": 2}))
        self.assertEqual(AlertStreak.objects.get().failures, 2)
