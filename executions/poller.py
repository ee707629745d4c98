"""The poller's units of work. Each takes `now` and returns how much it did.

Any number of pollers may run: on PostgreSQL a batch is taken with FOR NO KEY UPDATE SKIP
LOCKED, and every state change is also a guarded UPDATE (`WHERE next_run = <what we read>`),
which alone keeps SQLite correct and makes a repeated tick a no-op. The transitions
themselves are executions/lifecycle.py's.
"""

import logging
import math
import time
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import F, Min, QuerySet
from django.utils import timezone

from accounts.models import NO_LIMIT, monthly_execution_limit_message
from accounts.selectors import user_executions_this_month
from cueapi import metrics
from cueapi.logs import log_event
from cueapi.rows import db_time, execute, sql_by_id
from cues.models import Cue
from cues.schedule import ScheduleError, jitter_offset, plan_catch_up
from cues.services import cue_park, cue_resume_due
from executions import lifecycle
from executions.models import DispatchOutbox, Execution
from executions.selectors import running

logger = logging.getLogger("cueapi.engine")

BATCH_SIZE = 100
# A batch stops taking cues after this much planning, so its transaction (on SQLite: the
# database's write lock) stays short whatever the cues' schedules cost; the rest of the due
# cues go in the next batch, which the poller starts at once.
PLANNING_BUDGET_SECONDS = 0.25
OUTBOX_RETENTION = timedelta(days=7)
MISSED_MESSAGE = "Missed: the scheduler was not running at this time (catch-up policy: {policy})"
OVERLAP_MESSAGE = ("Skipped by the overlap policy ({policy}): an execution of this cue was still running "
                   "when this slot came due")
PARKED_NOTE = ("Paused by the server: its next run can't be computed ({reason}). "
               "Fix the schedule with PATCH, then set status to active.")
UNCLAIMED_AFTER = timedelta(seconds=900)


# Other apps' sweeps (alerts' repeats), each `unit(now=) -> int`, run by run_poller after its
# own units every cycle. See alerts/apps.py.
EXTRA_UNITS = []


def register_unit(unit) -> None:
    if unit not in EXTRA_UNITS:
        EXTRA_UNITS.append(unit)


def _locked(queryset: QuerySet) -> QuerySet:
    """Rows no other poller holds: SKIP LOCKED on PostgreSQL; SQLite serialises writers. FOR
    NO KEY UPDATE, so inserting rows that reference them (an API fire's execution) never waits."""
    if connection.vendor == "postgresql":
        return queryset.select_for_update(skip_locked=True, no_key=True, of=("self",))
    return queryset


def fire_due_cues(*, now: datetime | None = None, batch: int = BATCH_SIZE) -> int:
    """Fire active cues whose next_run has come; return how many cues were handled.

    One transaction per batch: plan every cue (pure schedule math; a cue whose schedule can't
    be computed is paused with a note saying why, `_park`, never retried in a loop), advance
    all their next_runs with one guarded UPDATE (`_advance`), then write the batch's executions
    and outbox rows with a few bulk inserts (lifecycle.slots_fired). If any cue changed under
    us, the batch falls back to one guarded update per cue, each in a savepoint of its own.
    """
    now = now or timezone.now()
    started = time.monotonic()
    with transaction.atomic():
        cues = list(
            _locked(Cue.objects.filter(status=Cue.Status.ACTIVE, next_run__lte=now))
            .select_related("user")
            .order_by("next_run")[:batch]
        )
        plans = []  # (cue, fire, skipped, next_slot, next_run)
        handled = 0
        for cue in cues:
            if handled and time.monotonic() - started > PLANNING_BUDGET_SECONDS:
                break
            handled += 1
            try:
                plans.append((cue, *_plan(cue, now)))
            except Exception as exc:  # noqa: BLE001 - whatever it is, it must not stop the others
                _park(cue, exc, now)
        try:
            with transaction.atomic():
                _advance(plans, now)
        except Exception:  # noqa: BLE001 - a cue changed under us, or one can't be written
            plans = [plan for plan in plans if _advance_one(plan, now)]
        _fire_planned(plans, now)
    return handled


class _CueChanged(Exception):
    pass


def _plan(cue: Cue, now: datetime) -> tuple[list, list, datetime | None, datetime | None]:
    """(slots to fire, slots missed, the next slot, its jittered run): pure schedule math.

    With jitter, next_run is the due slot plus its delay: catch-up judges lateness from the
    slot, as if there were no jitter. Slots after the cue's end_at are dropped; with no slot
    left in its window, the next slot and run are None (the cue completes)."""
    due = cue.due_slot()
    if cue.schedule_type != Cue.ScheduleType.RECURRING:
        return [due], [], None, None
    plan = plan_catch_up(expr=cue.schedule_cron, tz_name=cue.schedule_timezone, due=due,
                         now=now - (cue.next_run - due), policy=cue.catch_up)
    if plan.missed_not_recorded:
        log_event(logger, "missed_slots_not_recorded", logging.WARNING, cue_id=cue.id)
    end = cue.schedule_end_at
    fire, missed = plan.fire, plan.missed
    if end is not None:
        fire, missed = [s for s in fire if s <= end], [s for s in missed if s <= end]
    slot = plan.next_run if end is None or plan.next_run <= end else None
    if slot is None:
        return fire, missed, None, None
    return fire, missed, slot, slot + jitter_offset(cue.pk, slot, cue.jitter_seconds)


# _advance's statement, hand-written: compiling the ORM's form (a guard per cue OR-ed together,
# a CASE per column) was a third of the poller's CPU in a burst. Guarded on each cue's next_run
# as read: `(id, next_run) IN ((...), ...)`.
ADVANCE_SQL = ('UPDATE "cues" SET next_run = {next_run}, next_slot = {next_slot}, status = {status},'
               " fired_count = fired_count + {fired}, updated_at = %s"
               " WHERE status = %s AND (id, next_run) IN ({guard})")


def _advance(plans: list, now: datetime) -> None:
    """Every planned cue's next_run moved on in one UPDATE, guarded on the next_run read;
    raises _CueChanged (rolling it back) unless every cue was still as read."""
    if not plans:
        return
    next_runs, next_slots, fired, statuses = {}, {}, {}, {}
    for cue, fire, _skipped, next_slot, next_run in plans:
        next_runs[cue.pk], next_slots[cue.pk] = db_time(next_run), db_time(next_slot)
        fired[cue.pk], statuses[cue.pk] = len(fire), _status_after(cue, next_run)
    columns, params = {}, []
    for column, values in (("next_run", next_runs), ("next_slot", next_slots), ("status", statuses),
                           ("fired", fired)):
        columns[column], column_params = sql_by_id(values)
        params += column_params
    guard = [value for cue, *_ in plans for value in (cue.pk, db_time(cue.next_run))]
    advanced = execute(ADVANCE_SQL.format(guard=", ".join(["(%s, %s)"] * len(plans)), **columns),
                       [*params, db_time(now), Cue.Status.ACTIVE, *guard])
    if advanced != len(plans):
        raise _CueChanged


def _status_after(cue: Cue, next_run: datetime | None) -> str:
    """A recurring cue whose window has no slot left is completed (a one-time cue completes
    when its execution does)."""
    if next_run is None and cue.schedule_type == Cue.ScheduleType.RECURRING:
        return Cue.Status.COMPLETED
    return Cue.Status.ACTIVE


def _advance_one(plan, now: datetime) -> bool:
    """One cue's guarded advance (the fallback): False when another poller fired it, the cue
    changed meanwhile, or it can't be written (then it is parked)."""
    cue, fire, _skipped, next_slot, next_run = plan
    try:
        with transaction.atomic():  # a savepoint: one cue's failure rolls back alone
            return bool(Cue.objects.filter(pk=cue.pk, status=Cue.Status.ACTIVE, next_run=cue.next_run).update(
                next_run=next_run, next_slot=next_slot, status=_status_after(cue, next_run),
                fired_count=F("fired_count") + len(fire), updated_at=now))
    except Exception as exc:  # noqa: BLE001 - it must not stop the others
        _park(cue, exc, now)
        return False


def _fire_planned(plans: list, now: datetime) -> None:
    """The executions of the advanced cues: to send, missed (catch-up policy), or refused
    (over the user's monthly limit: recorded, never sent, DESIGN.md §3.11)."""
    room = {}  # user id -> executions left this month
    pending, missed, refused, overlapped = [], [], [], []
    busy = _running_cues([cue for cue, fire, *_ in plans if fire and cue.overlap != Cue.Overlap.ALLOW], now)
    for cue, fire, skipped, _next_slot, _next_run in plans:
        if cue.user_id not in room:
            limit = cue.user.monthly_execution_limit
            used = 0 if limit == NO_LIMIT else user_executions_this_month(user=cue.user, moment=now)
            room[cue.user_id] = math.inf if limit == NO_LIMIT else limit - used
        missed.extend(Execution(cue=cue, scheduled_for=slot, status=Execution.Status.MISSED,
                                error_message=MISSED_MESSAGE.format(policy=cue.catch_up)) for slot in skipped)
        over_limit = monthly_execution_limit_message(cue.user.monthly_execution_limit)
        if cue.overlap != Cue.Overlap.ALLOW:
            fire, skipped_now = _apply_overlap(cue, fire, running=cue.pk in busy)
            overlapped.extend(Execution(cue=cue, scheduled_for=slot, status=Execution.Status.MISSED,
                                        error_message=OVERLAP_MESSAGE.format(policy=cue.overlap))
                              for slot in skipped_now)
        for slot in fire:
            if room[cue.user_id] <= 0:
                refused.append(Execution(cue=cue, scheduled_for=slot, status=Execution.Status.FAILED,
                                         error_message=over_limit, last_attempt_at=now))
                continue
            room[cue.user_id] -= 1
            pending.append(Execution(cue=cue, scheduled_for=slot, status=Execution.Status.PENDING))
    lifecycle.slots_fired(pending=pending, missed=missed, refused=refused, overlapped=overlapped, now=timezone.now())


def _running_cues(cues: list, now: datetime) -> set:
    """Which of these cues have an execution running (one query; none when the list is empty)."""
    if not cues:
        return set()
    return set(Execution.objects.filter(running(now), cue__in=cues).values_list("cue_id", flat=True).distinct())


def _apply_overlap(cue: Cue, slots: list, *, running: bool) -> tuple[list, list]:
    """(slots to fire, slots skipped) under the cue's overlap policy, oldest first: a slot
    fires only when nothing of the cue runs (and then it runs); under buffer_one the first
    slot that can't fire waits on the cue (`overlap_buffered_slot`) unless one waits already."""
    fire, skipped = [], []
    for slot in slots:
        if not running:
            fire.append(slot)
            running = True
        elif (cue.overlap == Cue.Overlap.BUFFER_ONE and cue.overlap_buffered_slot is None
              and Cue.objects.filter(pk=cue.pk, overlap_buffered_slot__isnull=True).update(overlap_buffered_slot=slot)):
            cue.overlap_buffered_slot = slot
        else:
            skipped.append(slot)
    return fire, skipped


def release_buffered_slots(*, now: datetime, batch: int = BATCH_SIZE) -> int:
    """The sweep behind `overlap: buffer_one`: a waiting slot whose cue has nothing running
    fires (normally it fires when the running execution ends; this catches the rest)."""
    with transaction.atomic():
        cues = list(_locked(Cue.objects.filter(status=Cue.Status.ACTIVE, overlap_buffered_slot__isnull=False))
                    .select_related("user")[:batch])
        return sum(lifecycle.buffered_slot_released(cue=cue, now=now) is not None for cue in cues)


def _park(cue: Cue, exc: Exception, now: datetime) -> None:
    """Move a cue whose planning failed out of the way: paused, with a note the API and the
    admin show. Logged and counted once, when it is parked (it is not due any more)."""
    reason = str(exc) if isinstance(exc, ScheduleError) else f"internal error: {type(exc).__name__}"
    if cue_park(cue_id=cue.pk, due=cue.next_run, reason=PARKED_NOTE.format(reason=reason), now=now):
        metrics.count("cueapi_cues_parked", reason="schedule_error" if isinstance(exc, ScheduleError) else "error")
        log_event(logger, "cue_parked", logging.ERROR, cue_id=cue.pk, reason=reason,
                  **({} if isinstance(exc, ScheduleError) else {"exception": repr(exc)[:500]}))


def resume_timed_pauses(*, now: datetime, batch: int = BATCH_SIZE) -> int:
    """Paused cues whose paused_until has come resume (cues.services.cue_resume_due, guarded,
    so two pollers never resume one twice). Returns how many were handled. Runs before
    fire_due_cues, so a resumed cue that is already due fires in the same cycle."""
    with transaction.atomic():
        cues = list(_locked(Cue.objects.filter(status=Cue.Status.PAUSED, paused_until__lte=now))
                    .order_by("paused_until")[:batch])
        resumed = [cue for cue in cues if cue_resume_due(cue=cue, now=now)]
    for cue in resumed:
        log_event(logger, "cue_resumed", logging.INFO, cue_id=cue.pk, reason="timed_pause", status=cue.status)
    return len(cues)


def release_due_retries(*, now: datetime, batch: int = BATCH_SIZE) -> int:
    """Executions whose retry time has come go back to be sent or claimed. Returns how many."""
    with transaction.atomic():
        executions = list(
            _locked(Execution.objects.filter(status=Execution.Status.RETRYING, next_retry__lte=now))
            .select_related("cue").order_by("next_retry")[:batch]
        )
        return sum(lifecycle.retry_released(execution=e, now=now) for e in executions)


def _by_cue(executions: list) -> list:
    """In cue order: each takes its cue's row and alert streak, and the dispatcher's batches take
    those in cue order too, so the two never wait on each other in a cycle (PostgreSQL)."""
    return sorted(executions, key=lambda e: (e.cue_id, str(e.pk)))


def expire_worker_leases(*, now: datetime, batch: int = BATCH_SIZE) -> int:
    """Claimed worker executions whose lease lapsed (DESIGN.md §3.6). Returns how many."""
    with transaction.atomic():
        executions = list(
            _locked(Execution.objects.filter(status=Execution.Status.DELIVERING, lease_expires_at__lt=now,
                                             cue__callback_transport=Cue.Transport.WORKER))
            .select_related("cue__user")[:batch]
        )
        return sum(lifecycle.lease_expired(execution=e, now=now) is not None for e in _by_cue(executions))


def miss_unclaimed_worker_executions(*, now: datetime, batch: int = BATCH_SIZE) -> int:
    """Worker executions nobody claimed within 15 minutes of their time become `missed`. A
    backfilled one is born long after its time: its 15 minutes start when it is created."""
    cutoff = now - UNCLAIMED_AFTER
    with transaction.atomic():
        executions = list(
            _locked(Execution.objects.filter(status=Execution.Status.PENDING,
                                             cue__callback_transport=Cue.Transport.WORKER,
                                             scheduled_for__lt=cutoff)
                    .exclude(triggered_by="backfill", created_at__gte=cutoff))
            .select_related("cue__user")[:batch]
        )
        return sum(lifecycle.unclaimed(execution=e, now=now) for e in _by_cue(executions))


def time_out_missing_outcomes(*, now: datetime, batch: int = BATCH_SIZE) -> int:
    """Delivered executions whose outcome deadline passed with no outcome (DESIGN.md §3.9)."""
    with transaction.atomic():
        executions = list(
            _locked(Execution.objects.filter(status=Execution.Status.SUCCESS, outcome_recorded_at__isnull=True,
                                             outcome_deadline_at__lt=now))
            .select_related("cue__user")[:batch]
        )
        return sum(lifecycle.outcome_timed_out(execution=e, now=now) for e in _by_cue(executions))


def delete_old_outbox_rows(*, now: datetime) -> int:
    deleted, _ = DispatchOutbox.objects.filter(dispatched_at__lt=now - OUTBOX_RETENTION).delete()
    return deleted


def next_due(*, now: datetime) -> datetime | None:
    """The earliest instant the poller has work: a cue's next_run, the end of a timed pause, a
    retry's time, a lease's end."""
    candidates = [
        Cue.objects.filter(status=Cue.Status.ACTIVE).aggregate(t=Min("next_run"))["t"],
        Cue.objects.filter(status=Cue.Status.PAUSED, paused_until__isnull=False).aggregate(t=Min("paused_until"))["t"],
        Execution.objects.filter(status=Execution.Status.RETRYING).aggregate(t=Min("next_retry"))["t"],
        Execution.objects.filter(status=Execution.Status.DELIVERING).aggregate(t=Min("lease_expires_at"))["t"],
        Execution.objects.filter(status=Execution.Status.SUCCESS, outcome_recorded_at__isnull=True)
        .aggregate(t=Min("outcome_deadline_at"))["t"],
    ]
    candidates = [c for c in candidates if c is not None]
    return min(candidates) if candidates else None
