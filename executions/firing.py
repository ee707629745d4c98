"""Executions made by hand: a fire (`POST /v1/cues/{id}/fire`), a replay and a backfill. The
scheduled ones are the poller's (executions/poller.py); all are born in
lifecycle.fired/slots_fired."""

import hashlib
import json
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import NO_LIMIT, User, limit_reached, monthly_execution_limit_message
from accounts.selectors import user_executions_this_month
from cueapi.errors import AppError, RequestValidationError
from cues import schedule as schedule_math
from cues.models import Cue
from cues.selectors import cue_get
from cues.services import check_payload
from executions import lifecycle
from executions.models import Execution, FireIdempotencyKey
from executions.selectors import execution_get

# How long a fire's idempotency_key answers with its execution; after that it may be reused.
IDEMPOTENCY_WINDOW = timedelta(hours=24)
PRUNE_BATCH = 500


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


def body_sha256(data) -> str:
    """The fingerprint of a parsed JSON body: key order and whitespace don't change it."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


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


def _idempotent_answer(*, cue: Cue, key: str, sha256: str, now: datetime) -> Execution | None:
    """The execution an earlier fire with this key made within the window, or None; 409 when
    that fire had another body. An expired row is deleted so the key can be used again."""
    row = FireIdempotencyKey.objects.filter(cue=cue, key=key).select_related("execution").first()
    if row is None:
        return None
    if row.created_at <= now - IDEMPOTENCY_WINDOW:
        row.delete()
        return None
    if row.body_sha256 != sha256:
        raise AppError("idempotency_key_conflict",
                       "This idempotency_key was already used with a different request body", 409)
    return row.execution


def _answer_time(execution: Execution, send_at: datetime | None) -> datetime:
    """A repeated fire's `scheduled_for`, as the first answer gave it: the caller's send_at
    (with its offset) when it was used, else the execution's time."""
    if send_at is not None and send_at == execution.scheduled_for:
        return send_at
    return execution.scheduled_for


@transaction.atomic
def cue_fire(*, user: User, cue_id: str, send_at: datetime | None = None, payload_override: dict | None = None,
             merge_strategy: str = "merge", exit_criteria: list | None = None,
             idempotency_key: str | None = None, request_sha256: str = "",
             now: datetime | None = None) -> tuple[Execution, datetime]:
    """Create a `pending` execution of the cue now, or at `send_at` if that is later.

    Works for a cue in any status. Counts toward the month's usage; over the limit -> 403.
    With an `idempotency_key` already used on this cue within 24 h, returns that fire's
    execution (creating and counting nothing), or 409 if its body (`request_sha256`) differed.
    Returns (execution, effective time as given: the caller's offset is kept).
    """
    now = now or timezone.now()
    user = _lock_owner(user)
    cue = cue_get(user=user, cue_id=cue_id)
    if idempotency_key is not None:
        earlier = _idempotent_answer(cue=cue, key=idempotency_key, sha256=request_sha256, now=now)
        if earlier is not None:
            return earlier, _answer_time(earlier, send_at)
    _check_required_payload(cue, payload_override, merge_strategy)
    _check_monthly_limit(user, now)
    payload = fire_payload(cue.payload, payload_override, merge_strategy)
    if payload is not None:
        check_payload(payload)
    if idempotency_key is None:
        return _fire(cue=cue, send_at=send_at, payload=payload, exit_criteria=exit_criteria, now=now)
    try:
        # One savepoint for the execution and its key: a fire that loses the race for the
        # key takes its execution (and usage count) back with it.
        with transaction.atomic():
            execution, effective = _fire(cue=cue, send_at=send_at, payload=payload, exit_criteria=exit_criteria,
                                         now=now)
            FireIdempotencyKey.objects.create(cue=cue, key=idempotency_key, body_sha256=request_sha256,
                                              execution=execution, created_at=now)
            return execution, effective
    except IntegrityError:  # unique (cue, key): a concurrent fire with this key committed first
        earlier = _idempotent_answer(cue=cue, key=idempotency_key, sha256=request_sha256, now=now)
        if earlier is None:  # it was rolled back or pruned meanwhile: too rare to retry
            raise AppError("idempotency_key_conflict",
                           "This idempotency_key is being used by another request", 409) from None
        return earlier, _answer_time(earlier, send_at)


def _fire(*, cue: Cue, send_at: datetime | None, payload: dict | None, exit_criteria: list | None,
          now: datetime) -> tuple[Execution, datetime]:
    scheduled = send_at is not None and send_at > now
    effective = send_at if scheduled else now
    # "Now" is a microsecond: two fires of one cue can land on the same one (seen with 8
    # concurrent clients), and (cue, scheduled_for) is unique. A fire "now" moves on by a
    # microsecond; the same explicit send_at twice is the caller's conflict.
    for bump in range(1 if scheduled else 10):
        try:
            execution = lifecycle.fired(cue=cue, scheduled_for=effective + timedelta(microseconds=bump), now=now,
                                        triggered_by="manual_fire", payload=payload,
                                        required_assertions=exit_criteria)
            return execution, effective
        except IntegrityError:
            continue
    raise AppError("duplicate_execution",
                   f"An execution of this cue is already scheduled for {effective.isoformat()}", 409)


def delete_expired_idempotency_keys(*, now: datetime, batch: int = PRUNE_BATCH) -> int:
    """Drop keys older than the window, `batch` rows per DELETE so no statement holds many
    row locks for long (the poller's hourly cleanup)."""
    deleted = 0
    expired = FireIdempotencyKey.objects.filter(created_at__lte=now - IDEMPOTENCY_WINDOW)
    while True:
        ids = list(expired.values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted
        deleted += FireIdempotencyKey.objects.filter(pk__in=ids).delete()[0]
        if len(ids) < batch:
            return deleted


@transaction.atomic
def execution_replay(*, user: User, execution_id: str, now: datetime | None = None) -> Execution:
    """A new pending execution of the same cue (the original is untouched)."""
    now = now or timezone.now()
    execution = execution_get(user=user, execution_id=execution_id)
    if execution.status not in Execution.ENDED:
        raise AppError("execution_in_flight", "Cannot replay an execution that is still in progress", 409)
    _check_monthly_limit(_lock_owner(user), now)
    return lifecycle.replayed(execution=execution, now=now)


# What a bulk replay may select: finished executions that did not work.
BULK_REPLAY_STATUSES = (Execution.Status.FAILED, Execution.Status.MISSED, Execution.Status.OUTCOME_TIMEOUT)
BULK_REPLAY_MAX = 100


def executions_replay(*, user: User, status: str = Execution.Status.FAILED, cue_id: str | None = None,
                      since: datetime | None = None, until: datetime | None = None,
                      limit: int = BULK_REPLAY_MAX) -> tuple[list[tuple[Execution, Execution]], bool]:
    """Replay the caller's executions in `status` (of one cue; scheduled in [since, until)),
    oldest first, at most `limit`: each one exactly as `execution_replay` does, in its own
    transaction. Stops at the monthly execution limit. Returns ([(original, replay)], whether
    it stopped at the limit); 403 when the limit left room for none, 404 for another's cue.

    Not idempotent: the originals stay as they are, so a second call replays them again."""
    if status not in BULK_REPLAY_STATUSES:
        raise ValueError(status)
    originals = Execution.objects.filter(cue__user=user, status=status)
    if cue_id is not None:
        originals = originals.filter(cue=cue_get(user=user, cue_id=cue_id))
    if since is not None:
        originals = originals.filter(scheduled_for__gte=since)
    if until is not None:
        originals = originals.filter(scheduled_for__lt=until)
    ids = list(originals.order_by("scheduled_for", "id").values_list("pk", flat=True)[:limit])
    replayed, last = [], None
    for pk in ids:
        # Two replays of one cue get distinct times: (cue, scheduled_for) is unique.
        now = timezone.now()
        now = max(now, last + timedelta(microseconds=1)) if last else now
        try:
            replay = execution_replay(user=user, execution_id=str(pk), now=now)
        except AppError as exc:
            if exc.code in ("execution_in_flight", "execution_not_found"):
                continue  # moved on, or deleted with its cue, since it was listed
            if exc.code != "execution_limit_exceeded" or not replayed:
                raise
            return replayed, True
        replayed.append((replay.replayed_from, replay))
        last = now
    return replayed, False


BACKFILL_MAX_SLOTS = 100
# Slots counted for the "too many" message; past this it says "more than" (counting costs
# a few croniter steps per slot).
BACKFILL_COUNT_CAP = 1000
_TICK = timedelta(microseconds=1)
_EARLIEST = datetime.min.replace(tzinfo=dt_timezone.utc)


@transaction.atomic
def cue_backfill(*, user: User, cue_id: str, start: datetime, end: datetime,
                 now: datetime | None = None) -> tuple[list[Execution], int]:
    """One `pending` execution (triggered_by "backfill") for each slot of the cue's schedule
    in [start, end) that has none yet, oldest first, sent at once (their time has passed).
    Return (the executions created, the number of slots that already had one).

    The slots are the scheduler's (cues/schedule.py, same DST rules). The unique (cue,
    scheduled_for) constraint decides which slots are taken, so concurrent backfills (or
    the poller) create each slot once. Counts toward the month's usage; if the new ones
    don't fit under the monthly limit, 403 and nothing is created. Any status, like a fire.
    """
    now = now or timezone.now()
    cue = cue_get(user=user, cue_id=cue_id)
    if cue.schedule_type != Cue.ScheduleType.RECURRING:
        raise RequestValidationError([(
            "path.cue_id",
            f"Cue {cue.pk} is a one-time cue; backfill creates the past slots of a recurring schedule "
            f"only. Run a one-time cue again with POST /v1/cues/{cue.pk}/fire",
        )])
    slots = _backfill_slots(cue, start, end, now)
    if user.monthly_execution_limit != NO_LIMIT:
        # Locked so two requests at the limit can't both pass the check (as a fire).
        user = _lock_owner(user)
    taken = set(Execution.objects.filter(cue=cue, scheduled_for__in=slots).values_list("scheduled_for", flat=True))
    _check_room(user, len([slot for slot in slots if slot not in taken]), now)
    created = lifecycle.slots_fired(
        pending=[Execution(cue=cue, scheduled_for=slot, status=Execution.Status.PENDING, triggered_by="backfill")
                 for slot in slots],
        now=now,
    )
    return created, len(slots) - len(created)


def _backfill_slots(cue: Cue, start: datetime, end: datetime, now: datetime) -> list[datetime]:
    """The cue's slots in [start, end), oldest first; 422 on `body.end` for a range that is
    empty, reaches into the future or holds more than BACKFILL_MAX_SLOTS."""
    if end <= start:
        raise RequestValidationError([("body.end", "end must be later than start: the range is [start, end)")])
    if end > now:
        raise RequestValidationError([(
            "body.end", f"end is in the future; backfill covers past slots only: use an end at or before now "
                        f"({now.isoformat()})")])
    # fires_between takes (after, until]; a microsecond earlier on both ends makes it [start, end).
    # Nothing is earlier than 0001-01-01T00:00Z: from there, that one instant is left out.
    after = start - _TICK if start > _EARLIEST else start
    try:
        slots, more = schedule_math.fires_between(cue.schedule_cron, cue.schedule_timezone, after,
                                                  end - _TICK, BACKFILL_COUNT_CAP)
    except schedule_math.ScheduleError as exc:
        raise AppError("invalid_schedule", f"The cue's schedule can't be computed: {exc}", 400) from None
    if len(slots) > BACKFILL_MAX_SLOTS:
        held = f"more than {BACKFILL_COUNT_CAP}" if more else str(len(slots))
        raise RequestValidationError([(
            "body.end", f"The range holds {held} slots; at most {BACKFILL_MAX_SLOTS} per request: narrow it "
                        f"(send several requests for a longer range)")])
    return slots


def _check_room(user: User, count: int, now: datetime) -> None:
    """403 `execution_limit_exceeded` when `count` more executions don't fit in the month."""
    limit = user.monthly_execution_limit
    if limit == NO_LIMIT or count == 0:
        return
    used = user_executions_this_month(user=user, moment=now)
    if used >= limit:
        raise AppError("execution_limit_exceeded", monthly_execution_limit_message(limit), 403)
    if used + count > limit:
        raise AppError(
            "execution_limit_exceeded",
            f"This backfill creates {count} executions and {limit - used} remain under the monthly execution "
            f"limit of {limit} for this UTC month. Narrow the range, or raise the user's "
            "monthly_execution_limit in the admin (0 = no limit).", 403)
