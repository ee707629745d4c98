"""Each transition of executions/lifecycle.py called directly: the guard holds when the state
moved on (nothing is written), and the bookkeeping is complete when it applies."""

import datetime
from contextlib import contextmanager
from datetime import timedelta

import time_machine
from django.db import IntegrityError
from django.test import override_settings

from accounts.selectors import user_executions_this_month
from cueapi import metrics
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions import lifecycle, signals
from executions.delivery import DeliveryResult
from executions.models import DeliveryAttempt, DispatchOutbox, Execution

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
S = Execution.Status


@contextmanager
def captured(signal):
    """The keyword arguments of every `signal` sent inside the block."""
    sent = []

    def receiver(sender, **kwargs):
        sent.append(kwargs)

    signal.connect(receiver, dispatch_uid="test-capture")
    try:
        yield sent
    finally:
        signal.disconnect(dispatch_uid="test-capture")


@time_machine.travel(NOW, tick=False)
@override_settings(CUEAPI_RETRY_UNIT_SECONDS=60)
class LifecycleTests(CueTestCase):
    def setUp(self):
        super().setUp()
        metrics.discard_pending()

    def cue(self, **fields):
        cue = Cue.objects.get(pk=self.create_cue(**fields)["id"])
        return Cue.objects.select_related("user").get(pk=cue.pk)

    def worker_cue(self, **fields):
        return self.cue(transport="worker", callback=None, **fields)

    def execution(self, cue, status=S.PENDING, **fields):
        return Execution.objects.create(cue=cue, status=status, **{"scheduled_for": NOW, **fields})

    def reload(self, obj):
        obj.refresh_from_db()
        return obj

    # --- birth ---

    def test_fired_writes_the_execution_its_outbox_row_and_usage(self):
        cue = self.cue()
        execution = lifecycle.fired(cue=cue, scheduled_for=NOW, now=NOW, triggered_by="manual_fire",
                                    payload={"x": 1})
        self.assertEqual((execution.status, execution.triggered_by, execution.payload), (S.PENDING, "manual_fire",
                                                                                          {"x": 1}))
        self.assertEqual(DispatchOutbox.objects.get().execution_id, execution.id)
        self.assertEqual(user_executions_this_month(user=self.alice, moment=NOW), 1)
        self.assertEqual(metrics._pending[("cueapi_executions_fired_total", 'transport="webhook"')], 1)

    def test_fired_twice_for_one_slot_raises_and_writes_nothing_more(self):
        cue = self.cue()
        lifecycle.fired(cue=cue, scheduled_for=NOW, now=NOW)
        with self.assertRaises(IntegrityError):
            lifecycle.fired(cue=cue, scheduled_for=NOW, now=NOW)
        # The caller's transaction is still usable, and nothing was counted twice.
        self.assertEqual((Execution.objects.count(), DispatchOutbox.objects.count()), (1, 1))
        self.assertEqual(user_executions_this_month(user=self.alice, moment=NOW), 1)

    def test_a_worker_execution_gets_no_outbox_row(self):
        lifecycle.fired(cue=self.worker_cue(), scheduled_for=NOW, now=NOW)
        self.assertFalse(DispatchOutbox.objects.exists())

    def test_slots_fired_skips_slots_that_exist_and_sends_only_pending_ones(self):
        cue = self.cue()
        existing = Execution.objects.create(cue=cue, scheduled_for=NOW - timedelta(hours=1), status=S.MISSED)
        created = lifecycle.slots_fired(
            pending=[Execution(cue=cue, scheduled_for=NOW, status=S.PENDING),
                     Execution(cue=cue, scheduled_for=existing.scheduled_for, status=S.PENDING)],
            missed=[Execution(cue=cue, scheduled_for=NOW - timedelta(hours=2), status=S.MISSED)],
            refused=[Execution(cue=cue, scheduled_for=NOW + timedelta(hours=1), status=S.FAILED)], now=NOW)
        self.assertEqual([e.scheduled_for for e in created], [NOW])
        self.assertEqual(list(DispatchOutbox.objects.values_list("execution__scheduled_for", flat=True)), [NOW])
        self.assertEqual(Execution.objects.count(), 4)
        self.assertEqual(user_executions_this_month(user=self.alice, moment=NOW), 1)

    def test_replayed_copies_the_payload(self):
        original = self.execution(self.cue(), status=S.FAILED, payload={"v": 2})
        replay = lifecycle.replayed(execution=original, now=NOW + timedelta(seconds=1))
        self.assertEqual((replay.triggered_by, replay.payload, replay.status), ("replay", {"v": 2}, S.PENDING))
        self.assertEqual(self.reload(original).status, S.FAILED)

    # --- claims ---

    def test_webhook_claimed_moves_only_claimable_executions(self):
        cue = self.cue()
        pending = self.execution(cue)
        done = self.execution(cue, status=S.SUCCESS, scheduled_for=NOW - timedelta(hours=1))
        ids = Execution.objects.filter(pk__in=[pending.pk, done.pk]).values("id")
        self.assertEqual(lifecycle.webhook_claimed(execution_ids=ids, now=NOW), 1)
        self.assertEqual((self.reload(pending).status, self.reload(pending).started_at), (S.DELIVERING, NOW))
        self.assertEqual(self.reload(done).status, S.SUCCESS)

    def test_worker_claimed_wins_once(self):
        execution = self.execution(self.worker_cue())
        self.assertTrue(lifecycle.worker_claimed(user=self.alice, execution_id=execution.pk, worker_id="w1",
                                                 now=NOW))
        self.assertFalse(lifecycle.worker_claimed(user=self.alice, execution_id=execution.pk, worker_id="w2",
                                                  now=NOW))
        execution = self.reload(execution)
        self.assertEqual((execution.status, execution.claimed_by_worker, execution.attempts), (S.DELIVERING, "w1", 1))

    def test_retry_released(self):
        cue = self.cue()
        execution = self.execution(cue, status=S.RETRYING)
        self.assertTrue(lifecycle.retry_released(execution=execution, now=NOW))
        self.assertEqual(self.reload(execution).status, S.RETRY_READY)
        self.assertEqual(DispatchOutbox.objects.get().task_type, "retry")
        self.assertFalse(lifecycle.retry_released(execution=execution, now=NOW))  # guard
        self.assertEqual(DispatchOutbox.objects.count(), 1)

    # --- attempts ---

    def test_webhook_delivered(self):
        cue = self.cue(schedule={"type": "once", "at": (NOW + timedelta(minutes=1)).isoformat()})
        execution = self.execution(cue, status=S.DELIVERING)
        result = DeliveryResult(delivered=True, http_status=200, response_text="ok", duration_ms=12)
        self.assertEqual(lifecycle.webhook_delivered(execution=execution, cue=cue, attempt=1, result=result,
                                                     now=NOW), "delivered")
        execution = self.reload(execution)
        self.assertEqual((execution.status, execution.attempts, execution.http_status, execution.delivered_at),
                         (S.SUCCESS, 1, 200, NOW))
        attempt = DeliveryAttempt.objects.get()
        self.assertEqual((attempt.result, attempt.duration_ms, attempt.transport), ("delivered", 12, "webhook"))
        cue = self.reload(cue)
        self.assertEqual((cue.status, cue.run_count, cue.last_run), (Cue.Status.COMPLETED, 1, NOW))
        # Guard: it is not delivering any more, so a second record writes nothing.
        self.assertIsNone(lifecycle.webhook_delivered(execution=execution, cue=cue, attempt=2, result=result, now=NOW))
        self.assertEqual((DeliveryAttempt.objects.count(), self.reload(cue).run_count), (1, 1))

    def test_a_reply_with_an_outcome_records_it(self):
        cue = self.cue()
        execution = self.execution(cue, status=S.DELIVERING)
        result = DeliveryResult(delivered=True, http_status=200,
                                reported_outcome={"success": False, "error": "disk full"})
        with captured(signals.execution_failed) as failed:
            lifecycle.webhook_delivered(execution=execution, cue=cue, attempt=1, result=result, now=NOW)
        execution = self.reload(execution)
        self.assertEqual((execution.status, execution.outcome_state, execution.outcome_error),
                         (S.SUCCESS, "reported_failure", "disk full"))
        self.assertEqual([f["reason"] for f in failed], [lifecycle.HANDLER_REPORTED_FAILURE])

    def test_attempt_failed_with_attempts_left_schedules_a_retry(self):
        cue = self.cue(retry={"max_attempts": 3, "backoff_minutes": [2, 10]})
        execution = self.execution(cue, status=S.DELIVERING)
        with captured(signals.execution_failed) as failed:
            verdict = lifecycle.attempt_failed(execution=execution, cue=cue, attempt=1, error="boom", now=NOW,
                                               transport="webhook", http_status=500, duration_ms=3)
        self.assertEqual(verdict, "retrying")
        execution = self.reload(execution)
        self.assertEqual((execution.status, execution.next_retry, execution.error_message, execution.attempts),
                         (S.RETRYING, NOW + timedelta(minutes=2), "boom", 1))
        self.assertEqual(DeliveryAttempt.objects.get().http_status, 500)
        self.assertEqual(self.reload(cue).run_count, 1)
        self.assertEqual(failed, [])

    def test_the_last_failed_attempt_fails_for_good_and_pauses_when_asked(self):
        cue = self.cue(retry={"max_attempts": 2}, on_failure={"pause": True})
        execution = self.execution(cue, status=S.DELIVERING, attempts=1)
        with captured(signals.execution_failed) as failed:
            verdict = lifecycle.attempt_failed(execution=execution, cue=cue, attempt=2, error="down", now=NOW,
                                               transport="webhook")
        self.assertEqual(verdict, "failed")
        self.assertEqual(self.reload(execution).status, S.FAILED)
        cue = self.reload(cue)
        self.assertEqual((cue.status, cue.next_run, cue.last_run), (Cue.Status.PAUSED, None, NOW))
        self.assertEqual([(f["execution"].pk, f["reason"]) for f in failed], [(execution.pk, "down")])

    def test_give_up_fails_for_good_with_attempts_left(self):
        cue = self.cue()
        execution = self.execution(cue, status=S.DELIVERING)
        self.assertEqual(lifecycle.attempt_failed(execution=execution, cue=cue, attempt=1, error="x", now=NOW,
                                                  transport="webhook", give_up=True), "failed")

    def test_attempt_failed_guard(self):
        cue = self.cue()
        execution = self.execution(cue, status=S.SUCCESS)
        self.assertIsNone(lifecycle.attempt_failed(execution=execution, cue=cue, attempt=1, error="x", now=NOW,
                                                   transport="webhook"))
        self.assertEqual((self.reload(execution).status, DeliveryAttempt.objects.count()), (S.SUCCESS, 0))

    def test_lease_expired_is_a_failed_worker_attempt_guarded_on_the_lease(self):
        cue = self.worker_cue()
        lease = NOW - timedelta(seconds=1)
        execution = self.execution(cue, status=S.DELIVERING, attempts=1, claimed_by_worker="w1",
                                   claimed_at=NOW - timedelta(minutes=15), lease_expires_at=lease)
        # A heartbeat moved the lease since the poller read it: nothing happens.
        Execution.objects.filter(pk=execution.pk).update(lease_expires_at=NOW + timedelta(minutes=15))
        self.assertIsNone(lifecycle.lease_expired(execution=execution, now=NOW))
        Execution.objects.filter(pk=execution.pk).update(lease_expires_at=lease)
        self.assertEqual(lifecycle.lease_expired(execution=execution, now=NOW), "retrying")
        execution = self.reload(execution)
        self.assertEqual((execution.status, execution.claimed_by_worker, execution.lease_expires_at),
                         (S.RETRYING, "w1", None))
        attempt = DeliveryAttempt.objects.get()
        self.assertEqual((attempt.result, attempt.worker_id, attempt.duration_ms), ("lease_expired", "w1", 900_000))

    def test_unclaimed(self):
        cue = self.worker_cue(schedule={"type": "once", "at": (NOW + timedelta(minutes=1)).isoformat()})
        execution = self.execution(cue)
        with captured(signals.execution_failed) as failed:
            self.assertTrue(lifecycle.unclaimed(execution=execution, now=NOW))
            self.assertFalse(lifecycle.unclaimed(execution=execution, now=NOW))  # guard
        self.assertEqual(self.reload(execution).status, S.MISSED)
        cue = self.reload(cue)
        self.assertEqual((cue.status, cue.run_count, cue.last_run), (Cue.Status.FAILED, 0, None))
        self.assertEqual(len(failed), 1)

    # --- outcomes ---

    def test_a_worker_outcome_completes_the_attempt_once(self):
        cue = self.worker_cue(schedule={"type": "once", "at": (NOW + timedelta(minutes=1)).isoformat()})
        execution = self.execution(cue, status=S.DELIVERING, attempts=1, claimed_by_worker="w1",
                                   claimed_at=NOW - timedelta(seconds=5))
        with captured(signals.outcome_recorded) as recorded:
            state = lifecycle.outcome_recorded(execution=execution, cue=cue, outcome={"success": True}, now=NOW)
            again = lifecycle.outcome_recorded(execution=execution, cue=cue, outcome={"success": False}, now=NOW)
        self.assertEqual((state, again), ("reported_success", None))
        execution = self.reload(execution)
        self.assertEqual((execution.status, execution.outcome_success, execution.delivered_at), (S.SUCCESS, True, NOW))
        attempt = DeliveryAttempt.objects.get()
        self.assertEqual((attempt.result, attempt.duration_ms, attempt.worker_id), ("delivered", 5000, "w1"))
        cue = self.reload(cue)  # the refused second report wrote neither an attempt nor a run
        self.assertEqual((cue.status, cue.run_count, cue.last_run), (Cue.Status.COMPLETED, 1, NOW))
        self.assertEqual([r["state"] for r in recorded], ["reported_success"])

    def test_a_worker_failure_fails_the_execution_and_the_one_time_cue(self):
        cue = self.worker_cue(schedule={"type": "once", "at": (NOW + timedelta(minutes=1)).isoformat()})
        execution = self.execution(cue, status=S.DELIVERING, attempts=1)
        with captured(signals.execution_failed) as failed:
            lifecycle.outcome_recorded(execution=execution, cue=cue, outcome={"success": False, "error": "e"}, now=NOW)
        self.assertEqual((self.reload(execution).status, self.reload(execution).error_message), (S.FAILED, "e"))
        self.assertEqual((self.reload(cue).status, self.reload(cue).run_count), (Cue.Status.FAILED, 1))
        self.assertEqual(len(failed), 1)

    def test_verification(self):
        cue = self.cue(verification={"mode": "manual"})
        execution = self.execution(cue, status=S.SUCCESS)
        self.assertFalse(lifecycle.verification_requested(execution=execution, now=NOW))  # no outcome yet
        lifecycle.outcome_recorded(execution=execution, cue=cue, outcome={"success": True}, now=NOW)
        execution = self.reload(execution)
        self.assertEqual(execution.outcome_state, "verification_pending")
        self.assertEqual(lifecycle.outcome_verified(execution=execution, valid=False, reason="no file", now=NOW),
                         "verification_failed")
        # A second verdict from the state read before the first: the guard refuses it.
        self.assertIsNone(lifecycle.outcome_verified(execution=execution, valid=True, reason=None, now=NOW))
        execution = self.reload(execution)
        self.assertEqual((execution.outcome_state, execution.evidence_summary), ("verification_failed", "no file"))

    def test_outcome_timed_out(self):
        cue = self.cue()
        execution = self.execution(cue, status=S.SUCCESS, outcome_deadline_seconds=60,
                                   outcome_deadline_at=NOW - timedelta(seconds=1))
        with captured(signals.outcome_timed_out) as timed_out, captured(signals.execution_failed) as failed:
            self.assertTrue(lifecycle.outcome_timed_out(execution=execution, now=NOW))
            self.assertFalse(lifecycle.outcome_timed_out(execution=execution, now=NOW))  # guard
        execution = self.reload(execution)
        self.assertEqual((execution.status, execution.error_message),
                         (S.OUTCOME_TIMEOUT, "No outcome reported within 60s of delivery"))
        self.assertEqual((len(timed_out), len(failed)), (1, 1))

    def test_an_outcome_that_came_in_time_is_not_timed_out(self):
        cue = self.cue()
        execution = self.execution(cue, status=S.SUCCESS, outcome_deadline_at=NOW - timedelta(seconds=1))
        lifecycle.outcome_recorded(execution=execution, cue=cue, outcome={"success": True}, now=NOW)
        self.assertFalse(lifecycle.outcome_timed_out(execution=execution, now=NOW))
        self.assertEqual(self.reload(execution).status, S.SUCCESS)
