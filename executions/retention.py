"""Retention (issue #20): finished executions older than the retention period are deleted, in
small batches, with their delivery attempts, outbox rows and fire idempotency keys.

The period is CUEAPI_EXECUTION_RETENTION_DAYS (default 90; 0 keeps everything), or the user's
own `execution_retention_days` when set in the admin. "Finished" means the delivery ended
(success, failed, missed, outcome_timeout) and nothing waits on it: a delivered execution still
awaiting its outcome (a deadline set, no outcome yet) is kept whatever its age, and so is every
pending, delivering (claimed), retrying or retry_ready one. The age is counted from the
execution's last change (`updated_at`), so a late outcome or evidence restarts it. Usage
counters (usage_monthly) and alerts (which hold plain ids) are not touched.

Each batch is one short transaction: select at most `batch` ids through the
(status, updated_at) index, delete them (a statement per related table). Nothing is locked
but the rows deleted, which no one else writes any more, so firing never waits on a prune.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet

from accounts.models import User
from cueapi import metrics
from executions.models import Execution

PRUNE_BATCH_SIZE = 500
FINISHED = (Execution.Status.SUCCESS, Execution.Status.FAILED, Execution.Status.MISSED,
            Execution.Status.OUTCOME_TIMEOUT)


def prunable(*, now: datetime, statuses=FINISHED) -> QuerySet:
    """The executions past their owner's retention period."""
    periods, cutoffs = Q(), []
    default_days = settings.CUEAPI_EXECUTION_RETENTION_DAYS
    if default_days:
        cutoffs.append(now - timedelta(days=default_days))
        periods |= Q(cue__user__execution_retention_days__isnull=True, updated_at__lt=cutoffs[-1])
    overrides = (User.objects.filter(execution_retention_days__gt=0)
                 .values_list("execution_retention_days", flat=True).distinct())
    for days in overrides:
        cutoffs.append(now - timedelta(days=days))
        periods |= Q(cue__user__execution_retention_days=days, updated_at__lt=cutoffs[-1])
    if not cutoffs:
        return Execution.objects.none()
    awaiting_outcome = Q(status=Execution.Status.SUCCESS, outcome_recorded_at__isnull=True,
                         outcome_deadline_at__isnull=False)
    # The latest cutoff, repeated outside the OR, bounds the (status, updated_at) index range.
    return (Execution.objects.filter(periods, status__in=statuses, updated_at__lt=max(cutoffs))
            .exclude(awaiting_outcome))


def prune_executions(*, now: datetime, batch: int = PRUNE_BATCH_SIZE) -> int:
    """Delete one batch of prunable executions; return how many.

    The batch is taken status by status, oldest first, each an ordered range scan of the
    (status, updated_at) index that stops at `batch` rows: its cost does not grow with the
    number of old rows (ordering all statuses at once made PostgreSQL sort them every batch).
    """
    with transaction.atomic():
        ids = []
        for status in FINISHED:
            candidates = prunable(now=now, statuses=[status]).order_by("updated_at")
            if connection.vendor == "postgresql":  # two pollers take different batches
                candidates = candidates.select_for_update(skip_locked=True, of=("self",))
            ids += candidates.values_list("pk", flat=True)[:batch - len(ids)]
            if len(ids) >= batch:
                break
        if not ids:
            return 0
        # Re-checked in the DELETE: a row that changed since (a late outcome) is left alone.
        deleted, by_model = prunable(now=now).filter(pk__in=ids).delete()
    pruned = by_model.get(Execution._meta.label, 0)
    metrics.count("cueapi_executions_pruned", pruned)
    return pruned
