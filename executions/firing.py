"""Executions made by hand: a fire (`POST /v1/cues/{id}/fire`) and a replay. The scheduled
ones are the poller's (executions/poller.py); all are born in lifecycle.fired/slots_fired."""

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User, limit_reached, monthly_execution_limit_message
from accounts.selectors import user_executions_this_month
from cueapi.errors import AppError
from cues.models import Cue
from cues.selectors import cue_get
from cues.services import check_payload
from executions import lifecycle
from executions.models import Execution
from executions.selectors import execution_get


def _lock_owner(user: User) -> User:
    """Lock the owner so two fires can't both pass the monthly check at the limit. FOR NO KEY
    UPDATE: rows that merely reference the user (usage, cues) stay insertable meanwhile, so
    this never deadlocks with the poller's batch."""
    return User.objects.select_for_update(no_key=True).get(pk=user.pk)


def _check_monthly_limit(user: User, now: datetime) -> None:
    """403 when the month's executions reached the user's limit (DESIGN.md §3.11)."""
    limit = user.monthly_execution_limit
    if limit_reached(used=user_executions_this_month(user=user, moment=now), limit=limit):
        raise AppError("execution_limit_exceeded", monthly_execution_limit_message(limit), 403)


def fire_payload(cue_payload: dict | None, override: dict | None, strategy: str) -> dict | None:
    """The payload a fired execution delivers (CLIENTS.md §3 payload_override/merge_strategy)."""
    if override is None:
        return None
    if strategy == "replace":
        return override
    return {**(cue_payload or {}), **override}


def _check_required_payload(cue: Cue, override: dict | None, strategy: str) -> None:
    """The cue's own rules for a fire by hand: 400 when it needs a payload_override and got
    none, or when the payload it would deliver lacks one of its required keys."""
    if cue.require_payload_override and override is None:
        raise AppError("payload_override_required",
                       "This cue requires payload_override on every fire", 400)
    if cue.required_payload_keys:
        payload = fire_payload(cue.payload, override, strategy)
        payload = cue.payload if payload is None else payload
        missing = [key for key in cue.required_payload_keys if key not in (payload or {})]
        if missing:
            raise AppError("missing_required_payload_keys",
                           f"Payload is missing required keys: {', '.join(missing)}", 400)


@transaction.atomic
def cue_fire(*, user: User, cue_id: str, send_at: datetime | None = None, payload_override: dict | None = None,
             merge_strategy: str = "merge", now: datetime | None = None) -> tuple[Execution, datetime]:
    """Create a `pending` execution of the cue now, or at `send_at` if that is later.

    Works for a cue in any status. Counts toward the month's usage; over the limit -> 403.
    Returns (execution, effective time as given: the caller's offset is kept).
    """
    now = now or timezone.now()
    user = _lock_owner(user)
    cue = cue_get(user=user, cue_id=cue_id)
    _check_required_payload(cue, payload_override, merge_strategy)
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
            execution = lifecycle.fired(cue=cue, scheduled_for=effective + timedelta(microseconds=bump), now=now,
                                        triggered_by="manual_fire", payload=payload)
            return execution, effective
        except IntegrityError:
            continue
    raise AppError("duplicate_execution",
                   f"An execution of this cue is already scheduled for {effective.isoformat()}", 409)


@transaction.atomic
def execution_replay(*, user: User, execution_id: str, now: datetime | None = None) -> Execution:
    """A new pending execution of the same cue (the original is untouched)."""
    now = now or timezone.now()
    execution = execution_get(user=user, execution_id=execution_id)
    if execution.status not in Execution.ENDED:
        raise AppError("execution_in_flight", "Cannot replay an execution that is still in progress", 409)
    _check_monthly_limit(_lock_owner(user), now)
    return lifecycle.replayed(execution=execution, now=now)
