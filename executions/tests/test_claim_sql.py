"""The dispatcher's claim and sleep are hand-written SQL (executions/dispatcher.py): what they
write must read back through the ORM as it did (token, lease, counts, times), on both databases."""

from datetime import timedelta

from django.utils import timezone

from cueapi.testing import CueTestCase
from executions import dispatcher
from executions.models import DispatchOutbox, Execution


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
