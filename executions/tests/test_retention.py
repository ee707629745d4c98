"""Retention (issue #20): old finished executions are pruned in batches; nothing in progress,
no usage counter and no alert goes with them."""

import io
from datetime import timedelta
from unittest import mock

from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from accounts.models import UsageMonthly
from accounts.services import usage_increment
from alerts.models import Alert
from cueapi import metrics
from cueapi.models import MetricSample
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions import retention
from executions.management.commands.run_poller import Command as PollerCommand
from executions.models import DeliveryAttempt, DispatchOutbox, Execution

S = Execution.Status


@override_settings(CUEAPI_EXECUTION_RETENTION_DAYS=90)
class RetentionTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.now = timezone.now()
        self.cutoff = self.now - timedelta(days=90)
        self.cue = Cue.objects.create(user=self.alice, name="c", schedule_type="recurring", schedule_cron="0 * * * *",
                                      callback_url="https://example.com/h")
        self.slot = 0

    def execution(self, status=S.SUCCESS, age=timedelta(days=91), cue=None, **fields):
        self.slot += 1
        execution = Execution.objects.create(cue=cue or self.cue, status=status,
                                             scheduled_for=self.now - timedelta(days=400, minutes=self.slot), **fields)
        Execution.objects.filter(pk=execution.pk).update(updated_at=self.now - age)
        return execution

    def remaining(self):
        return set(Execution.objects.values_list("pk", flat=True))

    def test_old_finished_executions_go_with_their_attempts_and_outbox_rows(self):
        old = [self.execution(status) for status in (S.SUCCESS, S.FAILED, S.MISSED, S.OUTCOME_TIMEOUT)]
        young = self.execution(S.SUCCESS, age=timedelta(days=89))
        for execution in (old[0], young):
            DispatchOutbox.objects.create(execution=execution, available_at=self.now, dispatched_at=self.now)
            DeliveryAttempt.objects.create(execution=execution, attempt=1, transport="webhook", result="success",
                                           started_at=self.now, finished_at=self.now)
        self.assertEqual(retention.prune_executions(now=self.now), 4)
        self.assertEqual(self.remaining(), {young.pk})
        self.assertEqual(list(DispatchOutbox.objects.values_list("execution_id", flat=True)), [young.pk])
        self.assertEqual(list(DeliveryAttempt.objects.values_list("execution_id", flat=True)), [young.pk])

    def test_exactly_at_the_cutoff_is_kept(self):
        at = self.execution(age=timedelta(days=90))
        just_past = self.execution(age=timedelta(days=90, microseconds=1))
        retention.prune_executions(now=self.now)
        self.assertEqual(self.remaining(), {at.pk})
        self.assertNotIn(just_past.pk, self.remaining())

    def test_nothing_in_progress_is_ever_pruned(self):
        kept = {self.execution(status, age=timedelta(days=3650)).pk
                for status in (S.PENDING, S.DELIVERING, S.RETRYING, S.RETRY_READY, S.PENDING_OUTCOME)}
        awaiting = self.execution(S.SUCCESS, age=timedelta(days=3650), outcome_deadline_at=self.now - timedelta(days=3000))
        claimed = self.execution(S.DELIVERING, age=timedelta(days=3650), claimed_by_worker="w",
                                 claimed_at=self.now - timedelta(days=3650))
        reported = self.execution(S.SUCCESS, age=timedelta(days=3650), outcome_deadline_at=self.now,
                                  outcome_recorded_at=self.now - timedelta(days=3650), outcome_success=True)
        self.assertEqual(retention.prune_executions(now=self.now), 1)
        self.assertEqual(self.remaining(), kept | {awaiting.pk, claimed.pk})
        self.assertNotIn(reported.pk, self.remaining())

    def test_batches_are_small(self):
        for _ in range(5):
            self.execution()
        self.assertEqual(retention.prune_executions(now=self.now, batch=2), 2)
        self.assertEqual(len(self.remaining()), 3)
        self.assertEqual(retention.prune_executions(now=self.now, batch=2), 2)
        self.assertEqual(retention.prune_executions(now=self.now, batch=2), 1)
        self.assertEqual(retention.prune_executions(now=self.now, batch=2), 0)

    def test_a_users_own_period_wins(self):
        bobs_cue = Cue.objects.create(user=self.bob, name="b", schedule_type="recurring", schedule_cron="0 * * * *",
                                      callback_url="https://example.com/h")
        self.bob.execution_retention_days = 7
        self.bob.save()
        bob_old, bob_young = self.execution(cue=bobs_cue, age=timedelta(days=8)), self.execution(cue=bobs_cue, age=timedelta(days=6))
        alice_month = self.execution(age=timedelta(days=30))
        retention.prune_executions(now=self.now)
        self.assertEqual(self.remaining(), {bob_young.pk, alice_month.pk})
        self.assertNotIn(bob_old.pk, self.remaining())

        self.alice.execution_retention_days = 0  # forever
        self.alice.save()
        ancient = self.execution(age=timedelta(days=3650))
        retention.prune_executions(now=self.now)
        self.assertIn(ancient.pk, self.remaining())

    @override_settings(CUEAPI_EXECUTION_RETENTION_DAYS=0)
    def test_zero_keeps_everything(self):
        self.execution(age=timedelta(days=3650))
        self.assertEqual(retention.prune_executions(now=self.now), 0)
        self.assertEqual(len(self.remaining()), 1)

    def test_usage_alerts_and_the_metric(self):
        old = self.execution()
        usage_increment(user_id=self.alice.pk, count=1, moment=self.now - timedelta(days=91))
        Alert.objects.create(user=self.alice, alert_type="consecutive_failures", severity="warning",
                             message="m", cue_id=self.cue.pk, execution_id=old.pk)
        metrics.discard_pending()
        retention.prune_executions(now=self.now)
        metrics.flush(force=True)
        self.assertEqual(self.remaining(), set())
        self.assertEqual(UsageMonthly.objects.get().execution_count, 1)
        self.assertEqual(Alert.objects.get().execution_id, old.pk)
        self.assertEqual(MetricSample.objects.get(name="cueapi_executions_pruned_total").value, 1)

    def test_the_command_and_its_dry_run(self):
        for _ in range(3):
            self.execution()
        young = self.execution(age=timedelta(days=1))
        out = io.StringIO()
        call_command("prune_executions", "--dry-run", stdout=out)
        self.assertIn("3 executions would be pruned", out.getvalue())
        self.assertEqual(len(self.remaining()), 4)
        out = io.StringIO()
        call_command("prune_executions", "--batch", "2", stdout=out)
        self.assertIn("3 executions pruned", out.getvalue())
        self.assertEqual(self.remaining(), {young.pk})

    def test_the_poller_prunes_a_batch_per_cycle_between_its_other_work(self):
        for _ in range(3):
            self.execution()
        command = PollerCommand()
        command.stopping = False  # as handle() sets it
        with mock.patch.object(retention, "PRUNE_BATCH_SIZE", 2):
            command.cycle()
            self.assertEqual(len(self.remaining()), 1)
            self.assertTrue(command.pruning)
            self.assertEqual(command.sleep_seconds(), 0)  # more may be left: go on at once
            command.cycle()
            self.assertEqual(len(self.remaining()), 0)
            self.assertFalse(command.pruning)
            self.assertGreater(command.sleep_seconds(), 0)
