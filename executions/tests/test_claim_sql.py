"""The engine's hot paths are hand-written SQL (the dispatcher's claim, sleep and record:
executions/dispatcher.py, lifecycle.webhooks_delivered, cues.services.cue_runs_recorded; the
poller's batch advance): what they write must read back through the ORM as it did (token, lease,
counts, times, per-row values), on both databases, and apply once."""

from datetime import timedelta

from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from cueapi.testing import CueTestCase
from cues.models import Cue
from executions import dispatcher, poller
from executions.delivery import DeliveryResult
from executions.models import DeliveryAttempt, DispatchOutbox, Execution


class ClaimSqlTests(CueTestCase):
    def fire(self):
        cue = self.create_cue()
        self.assertEqual(self.post(f"/v1/cues/{cue['id']}/fire").status_code, 200)
        return DispatchOutbox.objects.get(execution__cue_id=cue["id"])

    def test_a_claim_leases_the_row_once_and_marks_its_execution_delivering(self):
        row = self.fire()
        now = timezone.now() + timedelta(seconds=1)
        ids, token = dispatcher.claim_outbox_rows(now=now, limit=10)
        self.assertEqual(ids, [row.pk])
        row.refresh_from_db()
        self.assertEqual((row.lock_token, row.dispatch_attempts), (token, 1))
        self.assertEqual(row.locked_until, now + timedelta(seconds=dispatcher.lease_seconds()))
        execution = Execution.objects.get(pk=row.execution_id)
        self.assertEqual((execution.status, execution.started_at), (Execution.Status.DELIVERING, now))
        # Held: a second pass takes nothing and counts nothing.
        self.assertEqual(dispatcher.claim_outbox_rows(now=now, limit=10)[0], [])
        row.refresh_from_db()
        self.assertEqual(row.dispatch_attempts, 1)
        self.assertEqual([d.row_id for d in dispatcher.load_deliveries(ids, token)], [row.pk])

    def test_a_lapsed_claim_is_taken_again_keeping_when_the_execution_started(self):
        row = self.fire()
        first = timezone.now() + timedelta(seconds=1)
        dispatcher.claim_outbox_rows(now=first, limit=10)
        later = first + timedelta(seconds=dispatcher.lease_seconds() + 1)
        ids, token = dispatcher.claim_outbox_rows(now=later, limit=10)
        self.assertEqual(ids, [row.pk])
        row.refresh_from_db()
        self.assertEqual((row.lock_token, row.dispatch_attempts), (token, 2))
        execution = Execution.objects.get(pk=row.execution_id)
        self.assertEqual((execution.status, execution.started_at), (Execution.Status.DELIVERING, first))

    def test_next_available_is_the_next_due_row_or_the_next_lapsing_lease(self):
        self.assertIsNone(dispatcher.next_available(now=timezone.now()))
        row = self.fire()
        due = timezone.now() + timedelta(minutes=5)
        DispatchOutbox.objects.filter(pk=row.pk).update(available_at=due)
        self.assertEqual(dispatcher.next_available(now=timezone.now()), due)
        lapses = timezone.now() + timedelta(minutes=1)
        DispatchOutbox.objects.filter(pk=row.pk).update(available_at=timezone.now(), locked_until=lapses)
        self.assertEqual(dispatcher.next_available(now=timezone.now()), lapses)


@override_settings(CUEAPI_DISPATCH_PER_USER_IN_FLIGHT=100)
class RecordSqlTests(CueTestCase):
    """The recorder's batch statements (lifecycle.webhooks_delivered, cue_runs_recorded) are
    hand-written SQL with per-row values: each row gets its own, and nothing applies twice."""

    def claim(self, count, **cue_fields):
        for index in range(count):
            cue = self.create_cue(name=f"job-{index}", **cue_fields)
            self.post(f"/v1/cues/{cue['id']}/fire")
        ids, token = dispatcher.claim_outbox_rows(now=timezone.now() + timedelta(seconds=1), limit=100)
        return dispatcher.load_deliveries(ids, token)

    def test_each_row_gets_its_own_values(self):
        deliveries = self.claim(3)
        Cue.objects.filter(pk=deliveries[1].cue.pk).update(outcome_deadline_seconds=90)
        deliveries = dispatcher.load_deliveries([d.row_id for d in deliveries], deliveries[0].token)
        texts = ["it's \"quoted\"", "ünïcode ✓", ""]
        for index, delivery in enumerate(deliveries):
            delivery.result = DeliveryResult(delivered=True, http_status=200 + index, response_text=texts[index],
                                             duration_ms=5 * index)
        now = timezone.now()
        dispatcher.record_deliveries(deliveries, now=now)
        for index, delivery in enumerate(deliveries):
            execution = Execution.objects.get(pk=delivery.execution.pk)
            self.assertEqual((execution.status, execution.http_status, execution.response_body, execution.attempts),
                             (Execution.Status.SUCCESS, 200 + index, texts[index], 1))
            self.assertEqual((execution.delivered_at, execution.last_attempt_at), (now, now))
            self.assertEqual(execution.outcome_deadline_seconds, 90 if index == 1 else None)
            self.assertEqual(execution.outcome_deadline_at, now + timedelta(seconds=90) if index == 1 else None)
            attempt = DeliveryAttempt.objects.get(execution=execution)
            self.assertEqual((attempt.attempt, attempt.transport, attempt.result, attempt.http_status,
                              attempt.duration_ms, attempt.finished_at, attempt.error, attempt.worker_id),
                             (1, "webhook", "delivered", 200 + index, 5 * index, now, None, None))
            self.assertEqual(attempt.started_at, now - timedelta(milliseconds=5 * index))
            self.assertEqual(Cue.objects.get(pk=delivery.cue.pk).last_run, now)

    def test_recording_a_batch_twice_applies_it_once(self):
        at = (timezone.now() + timedelta(hours=1)).isoformat()
        deliveries = self.claim(2, schedule={"type": "once", "at": at})
        for delivery in deliveries:
            delivery.result = DeliveryResult(delivered=True, http_status=200, response_text="ok", duration_ms=1)
        dispatcher.record_deliveries(deliveries, now=timezone.now())
        dispatcher.record_deliveries(deliveries, now=timezone.now())  # a second recorder, or a retry
        for delivery in deliveries:
            self.assertEqual(DeliveryAttempt.objects.filter(execution_id=delivery.execution.pk).count(), 1)
            cue = Cue.objects.get(pk=delivery.cue.pk)
            self.assertEqual((cue.run_count, cue.status), (1, Cue.Status.COMPLETED))


class AdvanceSqlTests(CueTestCase):
    """The poller's batch advance (poller._advance) is hand-written SQL: each cue gets its own
    next run, slot, status and count, guarded on the next_run read, and applies once."""

    def test_a_cue_whose_window_ends_completes_beside_one_that_advances(self):
        now = timezone.now().replace(minute=12, second=0, microsecond=0)
        for name in ("goes-on", "ends"):
            self.create_cue(name=name, schedule={"type": "recurring", "cron": "*/5 * * * *", "timezone": "UTC"})
        Cue.objects.update(next_run=now - timedelta(minutes=2))
        Cue.objects.filter(name="ends").update(schedule_end_at=now)
        plans = [(cue, *poller._plan(cue, now)) for cue in Cue.objects.order_by("name")]
        poller._advance(plans, now)
        ends, goes_on = Cue.objects.get(name="ends"), Cue.objects.get(name="goes-on")
        self.assertEqual((ends.status, ends.next_run, ends.next_slot, ends.fired_count),
                         (Cue.Status.COMPLETED, None, None, 1))
        self.assertEqual((goes_on.status, goes_on.next_run, goes_on.next_slot, goes_on.fired_count),
                         (Cue.Status.ACTIVE, now + timedelta(minutes=3), now + timedelta(minutes=3), 1))
        self.assertEqual(goes_on.updated_at, now)
        # The same plans again: no cue is as read any more, so nothing applies twice.
        with self.assertRaises(poller._CueChanged), transaction.atomic():
            poller._advance(plans, now)
        self.assertEqual(Cue.objects.get(name="goes-on").fired_count, 1)
