"""Receivers that say stop (410 Gone) or later (429/503 with Retry-After), against a real
HTTP server on 127.0.0.1."""

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from email.utils import format_datetime

from django.test import SimpleTestCase, override_settings
from django.utils import timezone

from alerts.models import Alert
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions.delivery import retry_after_seconds
from executions.lifecycle import ENDPOINT_GONE
from executions.models import DispatchOutbox, Execution
from executions.tests.test_delivery import deliver_all
from tests.receiver import Receiver


class RetryAfterParsingTests(SimpleTestCase):
    def test_both_forms(self):
        now = 1_700_000_000.0
        self.assertEqual(retry_after_seconds("120", now), 120.0)
        self.assertEqual(retry_after_seconds(" 0 ", now), 0.0)
        date = format_datetime(datetime.fromtimestamp(now + 90, tz=dt_timezone.utc), usegmt=True)
        self.assertEqual(retry_after_seconds(date, now), 90.0)
        # A date already past is ignored, as the README says (the attempt shows no retry_after).
        self.assertIsNone(retry_after_seconds("Sun, 06 Nov 1994 08:49:37 GMT", now))
        for junk in (None, "", "soon", "-5", "1.5", "\u00b2", "\u0661\u0662"):
            self.assertIsNone(retry_after_seconds(junk, now), junk)

    def test_absurdly_long_numbers_are_the_longest_wait(self):
        # 400 digits overflowed float(), 5000 digits int(): the delivery was recorded as a
        # connection error (http_status null) and the receiver's wish ignored.
        for value in ("9" * 400, "9" * 5000, "1" + "0" * 12):
            self.assertGreaterEqual(retry_after_seconds(value, 1_700_000_000.0), 3600)
        self.assertEqual(retry_after_seconds("0" * 30 + "120", 1_700_000_000.0), 120.0)


@override_settings(CUEAPI_RETRY_UNIT_SECONDS=1)
class RetryAfterTests(CueTestCase):
    def run_once(self, response, backoff=(1,), name="nightly"):
        with Receiver([response]) as receiver:
            cue = self.create_cue(name=name, callback={"url": receiver.url},
                                  retry={"max_attempts": 3, "backoff_minutes": list(backoff)})
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
            before = timezone.now()
            deliver_all()
        execution = Execution.objects.get(pk=execution_id)
        self.assertEqual(execution.status, "retrying")
        return execution, before

    def assertWaits(self, execution, before, seconds, asked):
        """The retry is `seconds` away; the attempt shows the time asked for (`asked` seconds
        away, as honoured), or none."""
        self.assertAlmostEqual((execution.next_retry - before).total_seconds(), seconds, delta=2)
        (attempt,) = self.get(f"/v1/executions/{execution.id}/attempts").json()["attempts"]
        if asked is None:
            self.assertIsNone(attempt["retry_after"])
        else:
            shown = datetime.fromisoformat(attempt["retry_after"])
            self.assertAlmostEqual((shown - before).total_seconds(), asked, delta=2)
        return attempt

    def test_429_with_seconds(self):
        execution, before = self.run_once((429, b"slow down", {"Retry-After": "120"}))
        attempt = self.assertWaits(execution, before, 120, asked=120)
        self.assertEqual(attempt["http_status"], 429)

    def test_503_with_an_http_date(self):
        when = format_datetime(timezone.now() + timedelta(seconds=300), usegmt=True)
        execution, before = self.run_once((503, b"maintenance", {"Retry-After": when}))
        attempt = self.assertWaits(execution, before, 300, asked=300)
        self.assertEqual(attempt["error"], "Webhook endpoint server error (503)")

    def test_the_attempt_shows_the_http_date_itself(self):
        # Not the date plus the few ms between the answer and its recording.
        when = (timezone.now() + timedelta(seconds=300)).replace(microsecond=0)
        execution, before = self.run_once((429, b"", {"Retry-After": format_datetime(when, usegmt=True)}))
        (attempt,) = self.get(f"/v1/executions/{execution.id}/attempts").json()["attempts"]
        self.assertEqual(datetime.fromisoformat(attempt["retry_after"]), when)
        self.assertEqual(execution.next_retry, when)

    def test_our_backoff_wins_when_later(self):
        execution, before = self.run_once((503, b"", {"Retry-After": "5"}), backoff=(600,))
        self.assertWaits(execution, before, 600, asked=5)

    def test_the_wait_is_capped_at_an_hour(self):
        execution, before = self.run_once((429, b"", {"Retry-After": "86400"}))
        self.assertWaits(execution, before, 3600, asked=3600)

    def test_a_400_digit_wait_is_capped_too(self):
        execution, before = self.run_once((503, b"", {"Retry-After": "9" * 400}))
        attempt = self.assertWaits(execution, before, 3600, asked=3600)
        self.assertEqual((attempt["http_status"], attempt["error"]), (503, "Webhook endpoint server error (503)"))

    def test_a_date_in_the_past_is_ignored(self):
        execution, before = self.run_once((503, b"", {"Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT"}))
        self.assertWaits(execution, before, 1, asked=None)

    def test_other_statuses_and_unreadable_values_are_ignored(self):
        execution, before = self.run_once((500, b"", {"Retry-After": "120"}))
        self.assertWaits(execution, before, 1, asked=None)
        execution, before = self.run_once((429, b"", {"Retry-After": "tomorrow"}), name="other")
        self.assertWaits(execution, before, 1, asked=None)


class GoneTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.receiver = Receiver([(410, b"this endpoint was removed")])
        self.receiver.__enter__()
        self.addCleanup(self.receiver.__exit__)
        self.cue = self.create_cue(callback={"url": self.receiver.url}, retry={"max_attempts": 3})

    def fire(self):
        return self.post(f"/v1/cues/{self.cue['id']}/fire").json()["id"]

    def test_no_retry_the_cue_pauses_and_one_alert_says_why(self):
        execution_id = self.fire()
        deliver_all()
        self.assertEqual(len(self.receiver.requests), 1)
        execution = Execution.objects.get(pk=execution_id)
        self.assertEqual((execution.status, execution.next_retry, execution.http_status, execution.error_message),
                         ("failed", None, 410, "Webhook endpoint is gone (410)"))
        self.assertEqual(DispatchOutbox.objects.filter(dispatched_at__isnull=True).count(), 0)
        cue = self.get(f"/v1/cues/{self.cue['id']}").json()
        self.assertEqual((cue["status"], cue["pause_note"]), ("paused", ENDPOINT_GONE))
        (alert,) = Alert.objects.all()
        self.assertEqual((alert.alert_type, alert.cue_id, alert.execution_id), ("consecutive_failures",
                                                                                self.cue["id"], execution.id))
        self.assertIn("410 Gone", alert.message)
        self.assertEqual(alert.metadata["reason"], "endpoint_gone")

    def test_the_alert_is_raised_once(self):
        # Two failures before: the third would be a streak of 3; with two deliveries in one pass,
        # still one alert, from the failure that paused the cue.
        for minutes in (1, 2):
            Execution.objects.create(cue_id=self.cue["id"], status="failed",
                                     scheduled_for=timezone.now() - timedelta(minutes=minutes))
        self.fire(), self.fire()
        deliver_all()
        self.assertEqual(len(self.receiver.requests), 2)
        self.assertEqual(Alert.objects.count(), 1)
        self.assertEqual(Alert.objects.get().metadata["reason"], "endpoint_gone")

    def test_on_failure_pause_does_not_hide_the_note(self):
        self.patch(f"/v1/cues/{self.cue['id']}", {"on_failure": {"pause": True}})
        self.fire()
        deliver_all()
        self.assertEqual(Cue.objects.get(pk=self.cue["id"]).pause_note, ENDPOINT_GONE)
        self.assertEqual(Alert.objects.count(), 1)

    def test_a_one_time_cue_pauses_too_and_raises_the_alert(self):
        # The issue says "the cue is paused": a one-time cue too (it was `failed`, so its own
        # time never came and resuming it could not send it again).
        at = timezone.now() + timedelta(hours=1)
        cue = self.create_cue(name="once", callback={"url": self.receiver.url},
                              schedule={"type": "once", "at": at.isoformat()})
        self.post(f"/v1/cues/{cue['id']}/fire")
        deliver_all()
        shown = self.get(f"/v1/cues/{cue['id']}").json()
        self.assertEqual((shown["status"], shown["pause_note"], shown["next_run"]), ("paused", ENDPOINT_GONE, None))
        self.assertEqual(Alert.objects.get().metadata["reason"], "endpoint_gone")
        # Resumed (the callback fixed), it is due at its own time again.
        r = self.patch(f"/v1/cues/{cue['id']}", {"status": "active"})
        self.assertEqual((r.json()["status"], r.json()["pause_note"]), ("active", None))
        self.assertAlmostEqual(datetime.fromisoformat(r.json()["next_run"]).timestamp(), at.timestamp(), delta=1)

    def test_a_one_time_cue_gone_at_its_own_time_runs_again_when_resumed(self):
        # Fired by the poller at its time, then resumed: its time's slot is taken, so it runs now
        # (it used to stay active with nothing due: the second fire was refused as a duplicate).
        from executions import poller

        cue = self.create_cue(name="once", callback={"url": self.receiver.url},
                              schedule={"type": "once", "at": (timezone.now() + timedelta(hours=1)).isoformat()})
        at = timezone.now() - timedelta(seconds=5)  # its time came
        Cue.objects.filter(pk=cue["id"]).update(schedule_at=at, next_run=at)
        self.assertEqual(poller.fire_due_cues(now=timezone.now()), 1)
        deliver_all()
        self.assertEqual(Cue.objects.get(pk=cue["id"]).status, "paused")
        later = timezone.now()
        resumed = self.patch(f"/v1/cues/{cue['id']}", {"status": "active"}).json()
        self.assertAlmostEqual(datetime.fromisoformat(resumed["next_run"]).timestamp(), later.timestamp(), delta=5)
        self.assertEqual(poller.fire_due_cues(now=timezone.now() + timedelta(seconds=1)), 1)
        self.assertEqual(Execution.objects.filter(cue_id=cue["id"]).count(), 2)
        self.assertIsNone(Cue.objects.get(pk=cue["id"]).next_run)  # fired: nothing left due

    def test_resuming_clears_the_note(self):
        self.fire()
        deliver_all()
        r = self.patch(f"/v1/cues/{self.cue['id']}", {"status": "active"})
        self.assertEqual((r.json()["status"], r.json()["pause_note"]), ("active", None))

    def test_a_cue_in_a_timed_pause_is_paused_for_good(self):
        # Paused until later while a delivery was on its way: the 410 makes the pause indefinite
        # (resuming by itself, it would send to the gone endpoint again) and says why.
        self.fire()
        until = timezone.now() + timedelta(hours=1)
        Cue.objects.filter(pk=self.cue["id"]).update(status="paused", paused_until=until)
        deliver_all()
        cue = Cue.objects.get(pk=self.cue["id"])
        self.assertEqual((cue.status, cue.paused_until, cue.pause_note), ("paused", None, ENDPOINT_GONE))
        self.assertEqual(Alert.objects.get().metadata["reason"], "endpoint_gone")

    def test_a_paused_cue_stays_paused_without_a_note(self):
        Cue.objects.filter(pk=self.cue["id"]).update(status="paused")
        self.fire()
        deliver_all()
        self.assertEqual(Cue.objects.get(pk=self.cue["id"]).pause_note, None)
        self.assertEqual(Alert.objects.count(), 0)


class RedirectTests(CueTestCase):
    def test_a_3xx_is_a_failed_attempt_and_is_not_followed(self):
        with Receiver([(301, b"", {"Location": "http://127.0.0.1:9/elsewhere"})]) as receiver:
            cue = self.create_cue(callback={"url": receiver.url})
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
            deliver_all()
        self.assertEqual(len(receiver.requests), 1)
        execution = Execution.objects.get(pk=execution_id)
        self.assertEqual((execution.status, execution.http_status), ("retrying", 301))
