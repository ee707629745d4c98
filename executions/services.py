"""Creating executions: by hand (fire), and the one function every creator goes through."""

import json
import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Value, When
from django.utils import timezone

from accounts.models import User
from accounts.selectors import user_executions_this_month
from accounts.services import usage_increment
from cueapi.errors import AppError
from cueapi.logs import log_event
from cueapi.notify import OUTBOX_CHANNEL, notify
from cues.selectors import cue_get
from cues.services import check_payload
from cues.models import Cue
from executions import signals
from executions.models import DeliveryAttempt, DispatchOutbox, Execution, Worker
from executions.outcomes import execution_record_outcome
from executions.selectors import execution_get, parse_execution_id

logger = logging.getLogger("cueapi.engine")

METADATA_MAX_BYTES = 10_240
TERMINAL_FOR_REPLAY = ("success", "failed", "missed", "outcome_timeout")
VERIFIABLE_STATES = ("reported_success", "reported_failure", "verification_pending")


def execution_create(*, cue, scheduled_for, triggered_by=None, payload=None):
    """A `pending` execution and, for a webhook cue, its outbox row: in the caller's
    transaction, so either both exist or neither does. Raises IntegrityError for a slot that
    already has an execution (unique (cue, scheduled_for)). (The poller writes its batches
    with bulk inserts instead, executions/poller.py.)"""
    execution = Execution(cue=cue, scheduled_for=scheduled_for, status=Execution.Status.PENDING,
                          triggered_by=triggered_by, payload=payload)
    with transaction.atomic():
        execution.save(force_insert=True)
    if cue.callback_transport == Cue.Transport.WEBHOOK and cue.callback_url:
        DispatchOutbox.objects.create(execution=execution, available_at=scheduled_for)
        notify(OUTBOX_CHANNEL)  # delivered at commit: wakes a dispatcher
    return execution


def _check_monthly_limit(user, now):
    """403 when the month's executions reached the user's limit (DESIGN.md §3.11)."""
    limit = user.monthly_execution_limit
    if user_executions_this_month(user=user, moment=now) >= limit:
        raise AppError(
            "execution_limit_exceeded", f"Monthly execution limit of {limit} reached", 403
        )


def fire_payload(cue_payload, override, strategy):
    """The payload a fired execution delivers (CLIENTS.md §3 payload_override/merge_strategy)."""
    if override is None:
        return None
    if strategy == "replace":
        return override
    return {**(cue_payload or {}), **override}


@transaction.atomic
def cue_fire(*, user, cue_id, send_at=None, payload_override=None, merge_strategy="merge", now=None):
    """Create a `pending` execution of the cue now, or at `send_at` if that is later.

    Works for a cue in any status. Counts toward the month's usage; over the limit -> 403.
    Returns (execution, effective time as given: the caller's offset is kept).
    """
    now = now or timezone.now()
    # Lock the owner so two fires can't both pass the monthly check at the limit.
    user = User.objects.select_for_update().get(pk=user.pk)
    cue = cue_get(user=user, cue_id=cue_id)
    _check_monthly_limit(user, now)
    payload = fire_payload(cue.payload, payload_override, merge_strategy)
    if payload is not None:
        check_payload(payload)
    scheduled = send_at is not None and send_at > now
    effective = send_at if scheduled else now
    # "Now" is a microsecond: two fires of one cue can land on the same one (seen with 8
    # concurrent clients), and (cue, scheduled_for) is unique. A fire "now" moves on by a
    # microsecond; the same explicit send_at twice is the caller's conflict.
    for bump in range(1 if scheduled else 10):
        try:
            execution = execution_create(cue=cue, scheduled_for=effective + timedelta(microseconds=bump),
                                         triggered_by="manual_fire", payload=payload)
            break
        except IntegrityError:
            continue
    else:
        raise AppError(
            "duplicate_execution",
            f"An execution of this cue is already scheduled for {effective.isoformat()}",
            409,
        )
    usage_increment(user_id=user.pk, moment=now)
    return execution, effective


def cue_record_run(cue, now, *, finished, once_status=None, pause=False):
    """One UPDATE for the cue after an attempt or an outcome: run_count always; last_run when
    the execution is finished; a one-time cue's final status; a pause asked by on_failure."""
    fields = {"run_count": F("run_count") + 1}
    if finished:
        fields["last_run"] = now
    new_status = once_status if cue.schedule_type == Cue.ScheduleType.ONCE else None
    if pause:
        new_status = Cue.Status.PAUSED
        fields["next_run"] = Case(When(status=Cue.Status.ACTIVE, then=Value(None)), default=F("next_run"))
    if new_status:
        # Only an active cue changes status: a cue paused by hand meanwhile stays paused.
        fields["status"] = Case(When(status=Cue.Status.ACTIVE, then=Value(new_status)), default=F("status"))
    Cue.objects.filter(pk=cue.pk).update(**fields)


def backoff_seconds(backoff_minutes, attempt):
    """Wait before attempt `attempt + 1`: backoff[attempt-1] (clamped), in retry units."""
    minutes = backoff_minutes[min(attempt - 1, len(backoff_minutes) - 1)] if backoff_minutes else 1
    return minutes * settings.CUEAPI_RETRY_UNIT_SECONDS


# --- worker transport ------------------------------------------------------------------

def _claimable_worker_executions(user, now):
    # Every condition is on the execution row itself (the cue check is `cue_id IN (...)`), so
    # the guarded UPDATE is a plain `UPDATE … WHERE id = … AND status IN (…)`. With a join,
    # Django writes `WHERE id IN (SELECT …)`, and PostgreSQL re-checks only `id IN` against
    # its old snapshot after waiting for a concurrent claim: both claims then win (caught by
    # tests/test_claim_race.py: 501 claims of 500 executions).
    return Execution.objects.filter(
        cue__in=Cue.objects.filter(user=user, callback_transport=Cue.Transport.WORKER),
        status__in=[Execution.Status.PENDING, Execution.Status.RETRY_READY],
        scheduled_for__lte=now,
    )


def _claim_fields(worker_id, now):
    return dict(
        status=Execution.Status.DELIVERING, claimed_by_worker=worker_id, claimed_at=now,
        started_at=now, last_attempt_at=now, attempts=F("attempts") + 1, updated_at=now,
        lease_expires_at=now + timedelta(seconds=settings.CUEAPI_WORKER_LEASE_SECONDS),
        next_retry=None,
    )


def execution_claim(*, user, worker_id, execution_id, now=None):
    """Claim one execution for a worker: a guarded UPDATE from a claimable status, so two
    claims can never both win. 409 `claim_failed` for anything not claimable (never 404)."""
    now = now or timezone.now()
    pk = parse_execution_id(execution_id)
    claimed = pk is not None and _claimable_worker_executions(user, now).filter(pk=pk).update(
        **_claim_fields(worker_id, now)
    )
    if not claimed:
        raise AppError("claim_failed", "Execution not available for claiming", 409)
    log_event(logger, "claimed", execution_id=pk, worker_id=worker_id)
    return pk


def execution_claim_next(*, user, worker_id, now=None):
    """Claim the oldest claimable execution (SKIP LOCKED on PostgreSQL, then guarded)."""
    now = now or timezone.now()
    for _ in range(5):
        with transaction.atomic():
            queryset = _claimable_worker_executions(user, now).order_by("scheduled_for", "id")
            if connection.vendor == "postgresql":
                queryset = queryset.select_for_update(skip_locked=True, of=("self",))
            pk = queryset.values_list("id", flat=True).first()
            if pk is None:
                break
            if Execution.objects.filter(pk=pk, status__in=[Execution.Status.PENDING, Execution.Status.RETRY_READY]
                                        ).update(**_claim_fields(worker_id, now)):
                log_event(logger, "claimed", execution_id=pk, worker_id=worker_id)
                return pk
    raise AppError("claim_failed", "No executions available for claiming", 409)


def execution_heartbeat(*, user, execution_id, worker_id=None, now=None):
    """Extend a claim's lease; 409 unless delivering, 403 for another worker's claim."""
    now = now or timezone.now()
    execution = execution_get(user=user, execution_id=execution_id)
    if execution.status != Execution.Status.DELIVERING:
        raise AppError("execution_not_claiming", "Execution is not currently being claimed", 409)
    if worker_id and execution.claimed_by_worker and worker_id != execution.claimed_by_worker:
        raise AppError("not_execution_owner", "Only the claiming worker can heartbeat", 403)
    until = now + timedelta(seconds=settings.CUEAPI_WORKER_LEASE_SECONDS)
    Execution.objects.filter(pk=execution.pk, status=Execution.Status.DELIVERING).update(
        lease_expires_at=until, last_heartbeat_at=now, updated_at=now
    )
    return until


@transaction.atomic
def execution_report_outcome(*, user, execution_id, outcome, now=None):
    """POST /v1/executions/{id}/outcome (SERVER.md §5.2). Returns the outcome_state."""
    now = now or timezone.now()
    execution = execution_get(user=user, execution_id=execution_id, for_update=True)
    already = AppError("outcome_already_recorded", "Outcome has already been recorded for this execution", 409)
    if execution.outcome_recorded_at is not None:
        raise already
    metadata = outcome.get("metadata")
    if metadata is not None and len(json.dumps(metadata).encode()) > METADATA_MAX_BYTES:
        raise AppError("metadata_too_large", "Outcome metadata must be under 10KB", 400)
    cue = execution.cue
    state = execution_record_outcome(execution_id=execution.pk, verification_mode=cue.verification_mode,
                                     outcome=outcome, now=now)
    if state is None:
        raise already
    if cue.callback_transport == Cue.Transport.WORKER:
        # For a worker the outcome is the completion (a late one, after its lease lapsed, too).
        success = outcome["success"]
        fields = dict(status=Execution.Status.SUCCESS if success else Execution.Status.FAILED,
                      lease_expires_at=None, next_retry=None, updated_at=now)
        if success:
            fields.update(delivered_at=now, error_message=None)
        else:
            fields["error_message"] = outcome.get("error")
        Execution.objects.filter(pk=execution.pk).update(**fields)
        DeliveryAttempt.objects.create(
            execution_id=execution.pk, attempt=execution.attempts, transport=Cue.Transport.WORKER,
            # For a worker, running the handler is the delivery: its failure fails the attempt.
            result=DeliveryAttempt.Result.DELIVERED if success else DeliveryAttempt.Result.FAILED,
            started_at=execution.claimed_at or now, finished_at=now,
            duration_ms=max(0, int((now - execution.claimed_at).total_seconds() * 1000)) if execution.claimed_at else None,
            error=None if success else outcome.get("error"), worker_id=execution.claimed_by_worker)
        cue_record_run(cue, now, finished=True,
                       once_status=Cue.Status.COMPLETED if success else Cue.Status.FAILED)
    signals.outcome_recorded.send(sender=Execution, execution_id=execution.pk, cue=cue, state=state, now=now)
    if not outcome["success"]:
        signals.execution_failed.send(sender=Execution, execution=Execution.objects.get(pk=execution.pk), cue=cue,
                                      now=now, reason="The handler reported a failure")
    log_event(logger, "outcome_recorded", execution_id=execution.pk, cue_id=cue.id, attempt=execution.attempts,
              success=outcome["success"], outcome_state=state, worker_id=execution.claimed_by_worker)
    return state


def execution_verify(*, user, execution_id, valid=True, reason=None, now=None):
    now = now or timezone.now()
    execution = execution_get(user=user, execution_id=execution_id)
    state = execution.outcome_state
    if state not in VERIFIABLE_STATES:
        raise AppError("invalid_state", f"Cannot verify from state '{state}'", 409)
    fields = {"updated_at": now}
    if valid:
        fields.update(outcome_state="verified_success", evidence_validation_state="valid")
    else:
        fields.update(outcome_state="verification_failed", evidence_validation_state="invalid")
        if reason:
            summary = execution.evidence_summary
            note = reason[:500]
            fields["evidence_summary"] = (f"{summary} | verification rejected: {note}" if summary else note)[:500]
    # Guarded: a concurrent verify from the same state can't be applied twice.
    if not Execution.objects.filter(pk=execution.pk, outcome_state=state).update(**fields):
        raise AppError("invalid_state", "Cannot verify from state 'changed'", 409)
    return fields["outcome_state"]


def execution_mark_verification_pending(*, user, execution_id, now=None):
    now = now or timezone.now()
    execution = execution_get(user=user, execution_id=execution_id)
    if execution.outcome_recorded_at is None:
        raise AppError("no_outcome", "No outcome recorded yet", 409)
    Execution.objects.filter(pk=execution.pk).update(outcome_state="verification_pending", updated_at=now)


EVIDENCE_FIELDS = {
    "external_id": "evidence_external_id", "result_url": "evidence_result_url",
    "result_ref": "evidence_result_ref", "result_type": "evidence_result_type",
    "summary": "evidence_summary", "artifacts": "evidence_artifacts", "metadata": "evidence_metadata",
}


def execution_append_evidence(*, user, execution_id, evidence, now=None):
    now = now or timezone.now()
    execution = execution_get(user=user, execution_id=execution_id)
    if execution.outcome_recorded_at is None:
        raise AppError("no_outcome", "Report outcome first before appending evidence", 409)
    fields = {EVIDENCE_FIELDS[k]: v for k, v in evidence.items() if k in EVIDENCE_FIELDS and v}
    if "evidence_summary" in fields:
        fields["evidence_summary"] = fields["evidence_summary"][:500]
    Execution.objects.filter(pk=execution.pk).update(updated_at=now, **fields)
    return execution.outcome_state


@transaction.atomic
def execution_replay(*, user, execution_id, now=None):
    """A new pending execution of the same cue (the original is untouched)."""
    now = now or timezone.now()
    execution = execution_get(user=user, execution_id=execution_id)
    if execution.status not in TERMINAL_FOR_REPLAY:
        raise AppError("execution_in_flight", "Cannot replay an execution that is still in progress", 409)
    user = User.objects.select_for_update().get(pk=user.pk)
    _check_monthly_limit(user, now)
    replay = execution_create(cue=execution.cue, scheduled_for=now, triggered_by="replay",
                              payload=execution.payload)
    usage_increment(user_id=user.pk, moment=now)
    return replay


def worker_heartbeat(*, user, worker_id, handlers, now=None):
    """Upsert the worker's row (last_heartbeat = now, handlers replaced)."""
    now = now or timezone.now()
    updated = Worker.objects.filter(user=user, worker_id=worker_id).update(handlers=handlers, last_heartbeat=now)
    if not updated:
        try:
            with transaction.atomic():
                Worker.objects.create(user=user, worker_id=worker_id, handlers=handlers, last_heartbeat=now)
        except IntegrityError:  # its first two heartbeats raced
            Worker.objects.filter(user=user, worker_id=worker_id).update(handlers=handlers, last_heartbeat=now)
    return now


WORKER_ACTIVE_SECONDS, WORKER_STALE_SECONDS = 180, 900


def worker_heartbeat_status(last_heartbeat, now):
    """`active` under 3 minutes since the last heartbeat, `stale` under 15, else `dead`."""
    age = (now - last_heartbeat).total_seconds()
    return "active" if age < WORKER_ACTIVE_SECONDS else "stale" if age < WORKER_STALE_SECONDS else "dead"


def worker_delete(*, user, worker_id):
    deleted, _ = Worker.objects.filter(user=user, worker_id=worker_id).delete()
    if not deleted:
        raise AppError("worker_not_found", "Worker not found", 404)


def outcome_deadline_seconds(cue):
    """Seconds a delivered webhook execution may take to report its outcome, or None.

    The cue's `outcome_deadline_seconds` when set (0 turns it off); otherwise
    CUEAPI_DEFAULT_OUTCOME_DEADLINE_SECONDS for cues that ask for verification (they expect an
    outcome), and no deadline for plain webhooks, which need not report one.
    """
    if cue.outcome_deadline_seconds is not None:
        return cue.outcome_deadline_seconds or None
    if cue.verification_mode not in (None, "none"):
        return settings.CUEAPI_DEFAULT_OUTCOME_DEADLINE_SECONDS
    return None
