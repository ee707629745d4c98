import datetime
from datetime import timedelta

import time_machine
from django.test import override_settings
from django.utils import timezone

from accounts.models import User, monthly_execution_limit_message
from accounts.selectors import user_executions_this_month
from cueapi.testing import CueTestCase
from tests.receiver import Receiver
from cues.models import Cue
from executions import dispatcher, poller
from executions.models import DispatchOutbox, Execution

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
HOURLY = {"type": "recurring", "cron": "0 * * * *", "timezone": "UTC"}


@time_machine.travel(NOW, tick=False)
class FireDueCuesTests(CueTestCase):
    def test_a_due_recurring_cue_fires_once(self):
        cue = self.create_cue(schedule=HOURLY)
        self.assertEqual(poller.fire_due_cues(now=NOW), 0)  # next_run is 13:00
        at = NOW + timedelta(hours=1, seconds=1)
        self.assertEqual(poller.fire_due_cues(now=at), 1)
        self.assertEqual(poller.fire_due_cues(now=at), 0)  # a repeated tick is a no-op
        execution = Execution.objects.get()
        self.assertEqual((execution.status, execution.scheduled_for, execution.triggered_by),
                         ("pending", NOW + timedelta(hours=1), None))
        self.assertEqual(DispatchOutbox.objects.get().execution, execution)
        stored = Cue.objects.get(pk=cue["id"])
        self.assertEqual((stored.next_run, stored.fired_count), (NOW + timedelta(hours=2), 1))
        self.assertEqual(user_executions_this_month(user=self.alice, moment=at), 1)

    def test_one_time_cue(self):
        cue = self.create_cue(schedule={"type": "once", "at": (NOW + timedelta(minutes=1)).isoformat()})
        poller.fire_due_cues(now=NOW + timedelta(minutes=1))
        stored = Cue.objects.get(pk=cue["id"])
        self.assertEqual((stored.status, stored.next_run), ("active", None))  # completed on delivery
        self.assertEqual(Execution.objects.get().scheduled_for, NOW + timedelta(minutes=1))

    def test_paused_and_worker_cues(self):
        paused = self.create_cue(name="p", schedule=HOURLY)
        self.patch(f"/v1/cues/{paused['id']}", {"status": "paused"})
        self.create_cue(name="w", schedule=HOURLY, transport="worker", callback=None)
        poller.fire_due_cues(now=NOW + timedelta(hours=1))
        execution = Execution.objects.get()  # only the worker cue's
        self.assertEqual(execution.cue.callback_transport, "worker")
        self.assertFalse(DispatchOutbox.objects.exists())  # workers pull; nothing to push

    def test_over_the_monthly_limit_is_recorded_failed(self):
        User.objects.filter(pk=self.alice.pk).update(monthly_execution_limit=1)
        self.create_cue(name="a", schedule=HOURLY)
        self.create_cue(name="b", schedule=HOURLY)
        poller.fire_due_cues(now=NOW + timedelta(hours=1))
        statuses = sorted(Execution.objects.values_list("status", "error_message"))
        self.assertEqual(statuses, [("failed", monthly_execution_limit_message(1)), ("pending", None)])
        self.assertEqual(DispatchOutbox.objects.count(), 1)
        self.assertEqual(Cue.objects.get(name="b").next_run, NOW + timedelta(hours=2))


class CatchUpAfterDowntimeTests(CueTestCase):
    """Created at 12:00 hourly, the engine down for 3 days, back at 12:00:30 three days later."""

    back = NOW + timedelta(days=3, seconds=30)

    def run_with(self, policy):
        with time_machine.travel(NOW, tick=False):
            cue = self.create_cue(schedule=HOURLY, catch_up=policy)
        poller.fire_due_cues(now=self.back)
        executions = Execution.objects.filter(cue_id=cue["id"])
        return (list(executions.filter(status="pending").order_by("scheduled_for").values_list("scheduled_for", flat=True)),
                executions.filter(status="missed").count(), Cue.objects.get(pk=cue["id"]))

    def test_latest(self):
        fired, missed, cue = self.run_with("latest")
        self.assertEqual(fired, [NOW + timedelta(days=3)])
        self.assertEqual(missed, 71)  # 13:00 on day 0 ... 11:00 on day 3
        self.assertEqual(cue.next_run, NOW + timedelta(days=3, hours=1))
        self.assertEqual(cue.fired_count, 1)

    def test_all(self):
        fired, missed, _ = self.run_with("all")
        self.assertEqual((len(fired), missed), (72, 0))
        self.assertEqual(fired[0], NOW + timedelta(hours=1))
        self.assertEqual(DispatchOutbox.objects.count(), 72)

    def test_none(self):
        with time_machine.travel(NOW, tick=False):
            cue = self.create_cue(schedule=HOURLY, catch_up="none")
        poller.fire_due_cues(now=NOW + timedelta(days=3, minutes=5))
        self.assertEqual(Execution.objects.filter(status="pending").count(), 0)
        self.assertEqual(Execution.objects.filter(status="missed").count(), 72)
        missed = Execution.objects.filter(status="missed").first()
        self.assertIn("catch-up policy: none", missed.error_message)
        self.assertEqual(Cue.objects.get(pk=cue["id"]).next_run, NOW + timedelta(days=3, hours=1))


class RetryLadderTests(CueTestCase):
    """500, timeout, connection refused, then success: four attempts, one execution."""

    @override_settings(CUEAPI_RETRY_UNIT_SECONDS=1, CUEAPI_WEBHOOK_TIMEOUT_SECONDS=0.5)
    def test_ladder(self):
        with Receiver() as closed:
            refused_url = closed.url
        with Receiver([(500, b"boom"), (200, b"slow", 1.5), (200, b"ok")]) as receiver:
            cue = self.create_cue(callback={"url": receiver.url},
                                  retry={"max_attempts": 4, "backoff_minutes": [1, 2, 3]})
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]

            def attempt(now):
                poller.release_due_retries(now=now)
                ids, token = dispatcher.claim_outbox_rows(now=now, limit=10)
                self.assertEqual(len(ids), 1)
                dispatcher.deliver_outbox_row(ids[0], token)
                return Execution.objects.get(pk=execution_id)

            first = attempt(timezone.now())
            self.assertEqual((first.status, first.attempts, first.http_status, first.error_message),
                             ("retrying", 1, 500, "Webhook endpoint returned server error (500)"))
            self.assertEqual(poller.release_due_retries(now=timezone.now()), 0)  # not due yet
            second = attempt(first.next_retry)
            self.assertEqual((second.status, second.attempts, second.http_status, second.error_message),
                             ("retrying", 2, None, "Webhook endpoint timed out"))
            self.assertAlmostEqual((second.next_retry - second.last_attempt_at).total_seconds(), 2, delta=0.1)
            Cue.objects.filter(pk=cue["id"]).update(callback_url=refused_url)
            third = attempt(second.next_retry)
            self.assertEqual((third.status, third.attempts, third.error_message),
                             ("retrying", 3, "Could not connect to webhook endpoint"))
            Cue.objects.filter(pk=cue["id"]).update(callback_url=receiver.url)
            fourth = attempt(third.next_retry)
        self.assertEqual((fourth.status, fourth.attempts, fourth.http_status, fourth.error_message),
                         ("success", 4, 200, None))
        self.assertEqual([r["headers"]["X-CueAPI-Attempt"] for r in receiver.requests], ["1", "2", "4"])
        self.assertEqual(Cue.objects.get(pk=cue["id"]).run_count, 4)
        self.assertEqual(DispatchOutbox.objects.filter(task_type="retry").count(), 3)

    def test_exhausted_retries_fail(self):
        with Receiver([(500, b"")]) as receiver:
            cue = self.create_cue(callback={"url": receiver.url}, retry={"max_attempts": 2, "backoff_minutes": [1]})
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
            now = timezone.now()
            for _ in range(2):
                poller.release_due_retries(now=now)
                ids, token = dispatcher.claim_outbox_rows(now=now, limit=10)
                dispatcher.deliver_outbox_row(ids[0], token)
                now += timedelta(minutes=5)
        execution = Execution.objects.get(pk=execution_id)
        self.assertEqual((execution.status, execution.attempts, execution.next_retry), ("failed", 2, None))


class OutboxHousekeepingTests(CueTestCase):
    def test_old_dispatched_rows_are_deleted(self):
        cue = self.create_cue()
        self.post(f"/v1/cues/{cue['id']}/fire")
        DispatchOutbox.objects.update(dispatched_at=timezone.now() - timedelta(days=8))
        self.assertEqual(poller.delete_old_outbox_rows(now=timezone.now()), 1)

    def test_next_due(self):
        with time_machine.travel(NOW, tick=False):
            self.create_cue(schedule=HOURLY)
            self.assertEqual(poller.next_due(now=NOW), NOW + timedelta(hours=1))
