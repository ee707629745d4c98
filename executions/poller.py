"""The poller's units of work. Each takes `now` and returns how much it did.

Any number of pollers may run: on PostgreSQL a batch is taken with FOR UPDATE SKIP LOCKED,
and every state change is also a guarded UPDATE (`WHERE next_run = <what we read>`), which
alone keeps SQLite correct and makes a repeated tick a no-op.
"""

import logging
from collections import Counter
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import F, Min

from accounts.selectors import user_executions_this_month
from accounts.services import usage_increment
from cueapi import metrics
from cueapi.logs import log_event
from cueapi.notify import OUTBOX_CHANNEL, notify
from cues.models import Cue
from cues.schedule import plan_catch_up
from executions import signals
from executions.models import DeliveryAttempt, DispatchOutbox, Execution
from executions.services import backoff_seconds, cue_record_run

logger = logging.getLogger("cueapi.engine")

BATCH_SIZE = 100
OUTBOX_RETENTION = timedelta(days=7)
MISSED_MESSAGE = "Missed: the scheduler was not running at this time (catch-up policy: {policy})"
OVER_LIMIT_MESSAGE = "Monthly execution limit reached"


def _locked(queryset):
    """Rows no other poller holds: SKIP LOCKED on PostgreSQL; SQLite serialises writers."""
    if connection.vendor == "postgresql":
        return queryset.select_for_update(skip_locked=True, of=("self",))
    return queryset


def fire_due_cues(*, now, batch=BATCH_SIZE):
    """Fire every active cue whose next_run has come; return how many cues were handled.

    One transaction per batch: plan each cue (pure schedule math), advance its next_run with a
    guarded update, then write all the batch's executions and outbox rows with a few bulk
    inserts. A slot that already has an execution (unique (cue, scheduled_for)) is skipped.
    """
    with transaction.atomic():
        cues = list(
            _locked(Cue.objects.filter(status=Cue.Status.ACTIVE, next_run__lte=now))
            .select_related("user")
            .order_by("next_run")[:batch]
        )
        room = {}  # user id -> executions left this month
        pending, others = [], []  # executions to send / to record only (missed, over the limit)
        for cue in cues:
            if cue.user_id not in room:
                used = user_executions_this_month(user=cue.user, moment=now)
                room[cue.user_id] = cue.user.monthly_execution_limit - used
            try:
                _plan_cue(cue, now, room, pending, others)
            except Exception:  # one bad cue must not stop the others
                logger.exception("cue_fire_failed", extra={"fields": {"cue_id": cue.id}})
        Execution.objects.bulk_create(pending + others, ignore_conflicts=True)
        created = set(Execution.objects.filter(id__in=[e.id for e in pending]).values_list("id", flat=True))
        fired = [e for e in pending if e.id in created]
        DispatchOutbox.objects.bulk_create(
            DispatchOutbox(execution=e, available_at=e.scheduled_for)
            for e in fired
            if e.cue.callback_transport == Cue.Transport.WEBHOOK and e.cue.callback_url
        )
        for user_id, count in Counter(e.cue.user_id for e in fired).items():
            usage_increment(user_id=user_id, count=count, moment=now)
        if fired:
            notify(OUTBOX_CHANNEL)  # delivered at commit: wakes the dispatchers
        missed = Execution.objects.filter(id__in=[e.id for e in others if e.status == Execution.Status.MISSED]).count()
    for execution in fired:
        lag = (now - execution.scheduled_for).total_seconds()
        metrics.count("cueapi_executions_fired", transport=execution.cue.callback_transport)
        metrics.observe("cueapi_fire_lag_seconds", lag)
        log_event(logger, "fired", execution_id=execution.id, cue_id=execution.cue_id,
                  scheduled_for=execution.scheduled_for, lag_ms=round(lag * 1000, 1))
    if missed:
        metrics.count("cueapi_executions_missed", missed, reason="catch_up")
    return len(cues)


def _plan_cue(cue, now, room, pending, others):
    """Decide this cue's executions and advance its next_run (guarded)."""
    due = cue.next_run
    if cue.schedule_type == Cue.ScheduleType.RECURRING:
        plan = plan_catch_up(expr=cue.schedule_cron, tz_name=cue.schedule_timezone, due=due,
                             now=now, policy=cue.catch_up)
        fire, missed, next_run = plan.fire, plan.missed, plan.next_run
        if plan.missed_not_recorded:
            log_event(logger, "missed_slots_not_recorded", logging.WARNING, cue_id=cue.id)
    else:
        fire, missed, next_run = [due], [], None
    advanced = Cue.objects.filter(pk=cue.pk, status=Cue.Status.ACTIVE, next_run=due).update(
        next_run=next_run, fired_count=F("fired_count") + len(fire), updated_at=now
    )
    if not advanced:
        return  # another poller fired it, or the cue changed meanwhile
    others.extend(
        Execution(cue=cue, scheduled_for=slot, status=Execution.Status.MISSED,
                  error_message=MISSED_MESSAGE.format(policy=cue.catch_up))
        for slot in missed
    )
    for slot in fire:
        if room[cue.user_id] <= 0:
            # Over the monthly limit: recorded, never sent (DESIGN.md §3.11).
            others.append(Execution(cue=cue, scheduled_for=slot, status=Execution.Status.FAILED,
                                    error_message=OVER_LIMIT_MESSAGE, last_attempt_at=now))
            continue
        room[cue.user_id] -= 1
        pending.append(Execution(cue=cue, scheduled_for=slot, status=Execution.Status.PENDING))


def release_due_retries(*, now, batch=BATCH_SIZE):
    """Executions whose retry time has come: `retrying` -> `retry_ready`, in one transaction;
    a webhook one also gets a retry outbox row (a worker one is claimable again).
    Returns how many were released."""
    released = 0
    with transaction.atomic():
        executions = list(
            _locked(Execution.objects.filter(status=Execution.Status.RETRYING, next_retry__lte=now))
            .select_related("cue").order_by("next_retry")[:batch]
        )
        for execution in executions:
            moved = Execution.objects.filter(pk=execution.pk, status=Execution.Status.RETRYING).update(
                status=Execution.Status.RETRY_READY, updated_at=now
            )
            if moved and execution.cue.callback_transport == Cue.Transport.WEBHOOK:
                DispatchOutbox.objects.create(execution=execution, task_type=DispatchOutbox.TaskType.RETRY,
                                              available_at=now)
            released += moved
        if released:
            notify(OUTBOX_CHANNEL)
    return released


LEASE_EXPIRED = "Worker lease expired: worker {worker} sent no outcome or heartbeat in time"
UNCLAIMED = "No worker claimed this execution within timeout window"
UNCLAIMED_AFTER = timedelta(seconds=900)


def expire_worker_leases(*, now, batch=BATCH_SIZE):
    """A claimed worker execution whose lease lapsed goes back to be claimed again, as a
    failed attempt with backoff, or fails when its attempts are used up (DESIGN.md §3.6).
    `claimed_by_worker` is kept: a late outcome from that worker is still accepted."""
    expired = []
    with transaction.atomic():
        executions = list(
            _locked(Execution.objects.filter(status=Execution.Status.DELIVERING, lease_expires_at__lt=now,
                                             cue__callback_transport=Cue.Transport.WORKER))
            .select_related("cue__user")[:batch]
        )
        for execution in executions:
            cue = execution.cue
            message = LEASE_EXPIRED.format(worker=execution.claimed_by_worker)
            guarded = Execution.objects.filter(pk=execution.pk, status=Execution.Status.DELIVERING,
                                               lease_expires_at=execution.lease_expires_at)
            if execution.attempts < cue.retry_max_attempts:
                next_retry = now + timedelta(seconds=backoff_seconds(cue.retry_backoff_minutes, execution.attempts))
                done = guarded.update(status=Execution.Status.RETRYING, next_retry=next_retry,
                                      error_message=message, lease_expires_at=None, updated_at=now)
            else:
                done = guarded.update(status=Execution.Status.FAILED, error_message=message,
                                      lease_expires_at=None, updated_at=now)
                if done:
                    pause = cue.schedule_type != Cue.ScheduleType.ONCE and (cue.on_failure or {}).get("pause")
                    cue_record_run(cue, now, finished=True, once_status=Cue.Status.FAILED, pause=bool(pause))
                    _failed(execution.pk, cue, now, message)
            if done:
                DeliveryAttempt.objects.create(
                    execution_id=execution.pk, attempt=execution.attempts, transport=Cue.Transport.WORKER,
                    result=DeliveryAttempt.Result.LEASE_EXPIRED, started_at=execution.claimed_at or now,
                    finished_at=now, error=message, worker_id=execution.claimed_by_worker)
                expired.append((execution, execution.attempts < cue.retry_max_attempts))
    for execution, retried in expired:
        metrics.count("cueapi_worker_leases_expired")
        if retried:
            metrics.count("cueapi_retries_scheduled", transport="worker")
        log_event(logger, "lease_expired", execution_id=execution.id, cue_id=execution.cue_id,
                  worker_id=execution.claimed_by_worker, attempt=execution.attempts, retried=retried)
    return len(expired)


def miss_unclaimed_worker_executions(*, now, batch=BATCH_SIZE):
    """Worker executions nobody claimed within 15 minutes of their time become `missed`."""
    missed = 0
    with transaction.atomic():
        executions = list(
            _locked(Execution.objects.filter(status=Execution.Status.PENDING,
                                             cue__callback_transport=Cue.Transport.WORKER,
                                             scheduled_for__lt=now - UNCLAIMED_AFTER))
            .select_related("cue__user")[:batch]
        )
        for execution in executions:
            done = Execution.objects.filter(pk=execution.pk, status=Execution.Status.PENDING).update(
                status=Execution.Status.MISSED, error_message=UNCLAIMED, updated_at=now
            )
            if done and execution.cue.schedule_type == Cue.ScheduleType.ONCE:
                Cue.objects.filter(pk=execution.cue_id, status=Cue.Status.ACTIVE).update(status=Cue.Status.FAILED)
            if done:
                _failed(execution.pk, execution.cue, now, UNCLAIMED)
                log_event(logger, "unclaimed", execution_id=execution.id, cue_id=execution.cue_id)
            missed += done
    if missed:
        metrics.count("cueapi_executions_missed", missed, reason="unclaimed")
    return missed


def time_out_missing_outcomes(*, now, batch=BATCH_SIZE):
    """Delivered executions whose outcome deadline passed with no outcome -> `outcome_timeout`
    (DESIGN.md §3.9: outcome timeouts are wired), which raises the alert."""
    timed_out = 0
    with transaction.atomic():
        executions = list(
            _locked(Execution.objects.filter(status=Execution.Status.SUCCESS, outcome_recorded_at__isnull=True,
                                             outcome_deadline_at__lt=now))
            .select_related("cue__user")[:batch]
        )
        for execution in executions:
            message = f"No outcome reported within {execution.outcome_deadline_seconds}s of delivery"
            done = Execution.objects.filter(pk=execution.pk, status=Execution.Status.SUCCESS,
                                            outcome_recorded_at__isnull=True).update(
                status=Execution.Status.OUTCOME_TIMEOUT, error_message=message, updated_at=now)
            if done:
                execution.status, execution.error_message = Execution.Status.OUTCOME_TIMEOUT, message
                signals.outcome_timed_out.send(sender=Execution, execution=execution, cue=execution.cue, now=now)
                signals.execution_failed.send(sender=Execution, execution=execution, cue=execution.cue, now=now,
                                              reason=message)
                log_event(logger, "outcome_timeout", execution_id=execution.pk, cue_id=execution.cue_id,
                          deadline_seconds=execution.outcome_deadline_seconds)
            timed_out += done
    if timed_out:
        metrics.count("cueapi_outcome_timeouts", timed_out)
    return timed_out


def _failed(execution_id, cue, now, reason):
    signals.execution_failed.send(sender=Execution, execution=Execution.objects.get(pk=execution_id), cue=cue,
                                  now=now, reason=reason)


def delete_old_outbox_rows(*, now):
    deleted, _ = DispatchOutbox.objects.filter(dispatched_at__lt=now - OUTBOX_RETENTION).delete()
    return deleted


def next_due(*, now):
    """The earliest instant the poller has work: a cue's next_run, a retry's time, a lease's end."""
    candidates = [
        Cue.objects.filter(status=Cue.Status.ACTIVE).aggregate(t=Min("next_run"))["t"],
        Execution.objects.filter(status=Execution.Status.RETRYING).aggregate(t=Min("next_retry"))["t"],
        Execution.objects.filter(status=Execution.Status.DELIVERING).aggregate(t=Min("lease_expires_at"))["t"],
        Execution.objects.filter(status=Execution.Status.SUCCESS, outcome_recorded_at__isnull=True)
        .aggregate(t=Min("outcome_deadline_at"))["t"],
    ]
    candidates = [c for c in candidates if c is not None]
    return min(candidates) if candidates else None
