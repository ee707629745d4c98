"""The dispatcher's units of work: claim outbox rows, deliver one, record the attempt."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Min, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from cueapi import metrics
from cueapi.claims import claim_due
from cueapi.logs import log_event
from cues.models import Cue
from executions.delivery import send_webhook, signed_headers, webhook_body
from executions.models import DeliveryAttempt, DispatchOutbox, Execution
from executions.outcomes import execution_record_outcome, outcome_from_reply
from executions import signals
from executions.services import backoff_seconds, cue_record_run, outcome_deadline_seconds

logger = logging.getLogger("cueapi.engine")

# Other apps' sending (alerts' notifications), each `claim(now=, limit=) -> [callable]`: the
# dispatcher runs them on its pool beside webhook deliveries. See alerts/apps.py.
EXTRA_UNITS = []


def register_unit(claim):
    if claim not in EXTRA_UNITS:
        EXTRA_UNITS.append(claim)


def lease_seconds():
    """How long a claim holds: well past the longest send (connect + read timeouts), so a
    live holder never loses it, and short enough that a dead one's rows return soon."""
    return 2 * settings.CUEAPI_WEBHOOK_TIMEOUT_SECONDS + 5


def claim_outbox_rows(*, now, limit):
    """Take up to `limit` due rows and mark their executions `delivering`; return (row ids,
    lock token). A row whose holder died (its lock lapsed) is due again, which is how a
    crashed dispatcher's work is recovered: its execution is still `delivering`."""
    with transaction.atomic():
        ids, token = claim_due(DispatchOutbox.objects.filter(dispatched_at__isnull=True), now=now, limit=limit,
                               lease_seconds=lease_seconds(), dispatch_attempts=F("dispatch_attempts") + 1)
        if ids:
            Execution.objects.filter(  # conditions on the row itself: see _claimable_worker_executions
                id__in=DispatchOutbox.objects.filter(id__in=ids).values("execution_id"),
                status__in=[Execution.Status.PENDING, Execution.Status.RETRY_READY],
            ).update(status=Execution.Status.DELIVERING, started_at=Coalesce("started_at", now),
                     updated_at=now)
    return ids, token


def next_available(*, now):
    """The earliest instant a row becomes claimable: due and unlocked, or its lock lapsing."""
    pending = DispatchOutbox.objects.filter(dispatched_at__isnull=True)
    times = [
        pending.filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
        .aggregate(t=Min("available_at"))["t"],
        pending.filter(locked_until__gte=now).aggregate(t=Min("locked_until"))["t"],
    ]
    times = [t for t in times if t is not None]
    return min(times) if times else None


# What a delivery reads: one query, only the columns it uses (this is the hot path).
DELIVERY_FIELDS = [
    "task_type", "lock_token", "execution", "execution__attempts", "execution__payload",
    "execution__scheduled_for", "execution__status", "execution__cue", "execution__cue__name",
    "execution__cue__payload", "execution__cue__callback_url", "execution__cue__callback_method",
    "execution__cue__callback_headers", "execution__cue__schedule_type",
    "execution__cue__retry_max_attempts", "execution__cue__retry_backoff_minutes",
    "execution__cue__on_failure", "execution__cue__verification_mode", "execution__cue__user",
    "execution__cue__outcome_deadline_seconds", "execution__cue__callback_transport",
    "execution__cue__user__webhook_secret",
]


def deliver_outbox_row(row_id, token):
    """Send one claimed outbox row's webhook and record the attempt. Safe to call twice: only
    the holder of the row's current lock token records anything."""
    row = (DispatchOutbox.objects.select_related("execution__cue__user").only(*DELIVERY_FIELDS)
           .filter(pk=row_id).first())
    if row is None or row.lock_token != token:
        return None
    execution = row.execution
    cue = execution.cue
    if execution.status != Execution.Status.DELIVERING:
        # The execution moved on without this row (recorded elsewhere): nothing to send.
        DispatchOutbox.objects.filter(pk=row_id, lock_token=token).update(dispatched_at=timezone.now())
        return None
    attempt = execution.attempts + 1
    payload = execution.payload if execution.payload is not None else cue.payload
    body = webhook_body(execution_id=execution.id, cue_id=cue.id, name=cue.name,
                        scheduled_for=execution.scheduled_for, attempt=attempt, payload=payload)
    headers = signed_headers(secret=cue.user.webhook_secret or "", body=body,
                             execution_id=execution.id, cue_id=cue.id,
                             scheduled_for=execution.scheduled_for, attempt=attempt,
                             custom_headers=cue.callback_headers)
    result = send_webhook(url=cue.callback_url or "", method=cue.callback_method,
                          headers=headers, body=body)
    now = timezone.now()
    verdict = record_attempt(row_id=row_id, token=token, execution=execution, cue=cue, attempt=attempt,
                             result=result, now=now)
    if verdict is not None:  # committed: count and log it
        metrics.count("cueapi_webhook_deliveries", result=verdict)
        if verdict == "retrying":
            metrics.count("cueapi_retries_scheduled", transport="webhook")
        if result.delivered:
            metrics.observe("cueapi_delivery_latency_seconds", (now - execution.scheduled_for).total_seconds())
        log_event(logger, verdict, execution_id=execution.id, cue_id=cue.id, attempt=attempt,
                  http_status=result.http_status, duration_ms=result.duration_ms, error=result.error,
                  outcome=None if result.reported_outcome is None else bool(result.reported_outcome.get("success")))
    return result


@transaction.atomic
def record_attempt(*, row_id, token, execution, cue, attempt, result, now):
    """Write one attempt's result; return "delivered", "retrying" or "failed", or None when
    this dispatcher no longer holds the row (another one records it)."""
    owned = DispatchOutbox.objects.filter(pk=row_id, lock_token=token, dispatched_at__isnull=True).update(
        dispatched_at=now, locked_until=None, last_dispatch_error=result.error
    )
    if not owned:
        return None
    DeliveryAttempt.objects.create(
        execution_id=execution.pk, attempt=attempt, transport=Cue.Transport.WEBHOOK,
        result=DeliveryAttempt.Result.DELIVERED if result.delivered else DeliveryAttempt.Result.FAILED,
        started_at=now - timedelta(milliseconds=result.duration_ms), finished_at=now,
        duration_ms=result.duration_ms, http_status=result.http_status, error=result.error)
    common = dict(http_status=result.http_status, response_body=result.response_text,
                  last_attempt_at=now, attempts=attempt, updated_at=now)
    delivering = Execution.objects.filter(pk=execution.pk, status=Execution.Status.DELIVERING)

    if result.delivered:
        deadline = outcome_deadline_seconds(cue) if result.reported_outcome is None else None
        delivering.update(status=Execution.Status.SUCCESS, delivered_at=now, next_retry=None,
                          error_message=None, outcome_deadline_seconds=deadline,
                          outcome_deadline_at=now + timedelta(seconds=deadline) if deadline else None, **common)
        cue_record_run(cue, now, finished=True, once_status=Cue.Status.COMPLETED)
        if result.reported_outcome is not None:
            outcome = outcome_from_reply(result.reported_outcome)
            state = execution_record_outcome(execution_id=execution.id, verification_mode=cue.verification_mode,
                                             outcome=outcome, now=now)
            if state is not None:
                signals.outcome_recorded.send(sender=Execution, execution_id=execution.id, cue=cue, state=state, now=now)
                if not outcome["success"]:
                    _failed(execution.id, cue, now, "The handler reported a failure")
        return "delivered"

    if attempt < cue.retry_max_attempts:
        next_retry = now + timedelta(seconds=backoff_seconds(cue.retry_backoff_minutes, attempt))
        delivering.update(status=Execution.Status.RETRYING, next_retry=next_retry,
                          error_message=result.error, **common)
        cue_record_run(cue, now, finished=False)
        return "retrying"

    delivering.update(status=Execution.Status.FAILED, next_retry=None, error_message=result.error, **common)
    pause = cue.schedule_type != Cue.ScheduleType.ONCE and (cue.on_failure or {}).get("pause")
    cue_record_run(cue, now, finished=True, once_status=Cue.Status.FAILED, pause=bool(pause))
    _failed(execution.id, cue, now, result.error)
    return "failed"


def _failed(execution_id, cue, now, reason):
    signals.execution_failed.send(sender=Execution, execution=Execution.objects.get(pk=execution_id), cue=cue,
                                  now=now, reason=reason)
