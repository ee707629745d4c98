"""Creating executions: by hand (fire), and the one function every creator goes through."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.selectors import user_executions_this_month
from accounts.services import usage_increment
from cueapi.errors import AppError
from cueapi.notify import OUTBOX_CHANNEL, notify
from cues.selectors import cue_get
from cues.services import check_payload
from cues.models import Cue
from executions.models import DispatchOutbox, Execution


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
    effective = send_at if send_at is not None and send_at > now else now
    try:
        execution = execution_create(
            cue=cue, scheduled_for=effective, triggered_by="manual_fire", payload=payload
        )
    except IntegrityError:
        raise AppError(
            "duplicate_execution",
            f"An execution of this cue is already scheduled for {effective.isoformat()}",
            409,
        ) from None
    usage_increment(user_id=user.pk, moment=now)
    return execution, effective
