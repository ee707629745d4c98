"""Every transition of an execution: one guarded function each (the table is in the
`Execution.Status` docstring).

The poller, the dispatcher and the API call these; none of them changes an execution's status
or outcome itself. Each function
* is guarded on the state it expects: a conditional UPDATE whose row count decides, so a
  transition another process already made is a no-op (it returns None/False);
* does all of its bookkeeping once: the DeliveryAttempt row, the cue's counters and status
  (`cue_record_run`, the one cue service for this), pause-on-failure, the signal the alerts app
  listens to, metrics and the log event.
It runs in the caller's transaction when there is one (the poller's batch, the dispatcher's
record), else in its own. Metrics and log lines are written as the transition happens: if an
enclosing transaction rolls back, a counter may be one ahead (a counter is a hint; the
database is the record).

"What happens when an execution fails for good?" is `_failed_for_good`.
"""

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Iterable

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet

from accounts.models import limit_reached, monthly_execution_limit_message
from accounts.selectors import user_executions_this_month
from accounts.services import usage_increment
from cueapi import metrics
from cueapi.logs import log_event
from cueapi.rows import GUARDED, RowLoader, db_id, db_time, execute, execute_guarded, fetch, in_list, sql_by_id
from cues.models import Cue
from cues.services import cue_pause_with_note, cue_record_run, cue_record_run_statement, cue_runs_recorded
from executions import signals
from executions.delivery import DeliveryResult
from executions.models import DeliveryAttempt, DispatchOutbox, Execution
from executions.outcome_rules import outcome_fields, outcome_from_reply
from executions.selectors import EXECUTION_ROWS, SUCCEEDED_OUTCOMES, claimable_worker_sql, running

logger = logging.getLogger("cueapi.engine")

Status = Execution.Status
Transport = Cue.Transport

HANDLER_REPORTED_FAILURE = "The handler reported a failure"
UNCLAIMED = "No worker claimed this execution within timeout window"
LEASE_EXPIRED = "Worker lease expired: worker {worker} sent no outcome or heartbeat in time"
ENDPOINT_GONE = ("Paused: the callback URL answered 410 Gone (the endpoint is gone). Fix the callback "
                 "and resume the cue")
# The longest wait a receiver's Retry-After can ask for; a longer one waits this long.
RETRY_AFTER_MAX_SECONDS = 3600


def sends_webhook(cue: Cue) -> bool:
    """A cue whose executions the dispatcher sends (and so get an outbox row)."""
    return cue.callback_transport == Transport.WEBHOOK and bool(cue.callback_url)


def backoff_seconds(backoff_minutes: list[int], attempt: int) -> int:
    """Wait before attempt `attempt + 1`: backoff[attempt-1] (clamped), in retry units."""
    minutes = backoff_minutes[min(attempt - 1, len(backoff_minutes) - 1)] if backoff_minutes else 1
    return minutes * settings.CUEAPI_RETRY_UNIT_SECONDS


def _count_result(result: str, transport: str, amount: int = 1) -> None:
    """cueapi_execution_results: counted where an execution's verdict is reached (the
    dashboard's `Verdict`, executions/selectors.py): succeeded or failed by the handler's
    outcome when it reports one, else by the delivery; delivered (2xx, no outcome expected);
    missed."""
    if amount:
        metrics.count("cueapi_execution_results", amount, result=result, transport=transport)


def outcome_deadline_seconds(cue: Cue) -> int | None:
    """Seconds a delivered webhook execution may take to report its outcome, or None (the
    rule is the cue's: `Cue.outcome_deadline`)."""
    return cue.outcome_deadline() or None


# --- birth ----------------------------------------------------------------------------------

def fired(*, cue: Cue, scheduled_for: datetime, now: datetime, triggered_by: str | None = None,
          payload: dict | None = None, **fields) -> Execution:
    """A new `pending` execution (a fire, a replay, a chain), its outbox row for a webhook cue,
    and its count in the month's usage; `fields` are more of its columns. Raises
    IntegrityError when the slot already has one (unique (cue, scheduled_for)) or the source
    already fired its chain (unique chained_from); the caller's transaction stays usable."""
    execution = Execution(cue=cue, scheduled_for=scheduled_for, status=Status.PENDING,
                          triggered_by=triggered_by, payload=payload, **fields)
    with transaction.atomic():
        execution.save(force_insert=True)
        if sends_webhook(cue):
            DispatchOutbox.objects.create(execution=execution, available_at=scheduled_for)
        usage_increment(user_id=cue.user_id, moment=now)
    _count_fired([execution], now)
    return execution


def slots_fired(*, pending: list[Execution], missed: Iterable[Execution] = (),
                refused: Iterable[Execution] = (), overlapped: Iterable[Execution] = (),
                now: datetime) -> list[Execution]:
    """The poller's batch: `pending` executions to send, `missed` ones (slots skipped by the
    catch-up policy), `refused` ones (over the monthly limit: recorded as failed, never sent)
    and `overlapped` ones (missed: skipped by the overlap policy). A slot that already has an
    execution is skipped. Returns the pending executions created (their `cue` must be loaded)."""
    missed, refused, overlapped = list(missed), list(refused), list(overlapped)
    Execution.objects.bulk_create(pending + missed + refused + overlapped, ignore_conflicts=True)
    created = set(Execution.objects.filter(id__in=[e.id for e in pending + missed + overlapped])
                  .values_list("id", flat=True))
    fired_now = [e for e in pending if e.id in created]
    DispatchOutbox.objects.bulk_create(
        DispatchOutbox(execution=e, available_at=e.scheduled_for) for e in fired_now if sends_webhook(e.cue))
    # Users in a fixed order: two pollers never take usage rows in opposite orders.
    for user_id, count in sorted(Counter(e.cue.user_id for e in fired_now).items()):
        usage_increment(user_id=user_id, count=count, moment=now)
    for reason, executions in (("catch_up", missed), ("overlap", overlapped)):
        missed_now = [e for e in executions if e.id in created]
        if missed_now:
            metrics.count("cueapi_executions_missed", len(missed_now), reason=reason)
        for transport, n in Counter(e.cue.callback_transport for e in missed_now).items():
            _count_result("missed", transport, n)
        by_cue = {}
        for execution in missed_now:
            by_cue.setdefault(execution.cue_id, (execution.cue, []))[1].append(execution.scheduled_for)
        for cue, slots in by_cue.values():  # never silent: the alerts app raises `missed`
            signals.slots_missed.send(sender=Execution, cue=cue, slots=sorted(slots), reason=reason, now=now)
    # Over the monthly limit: recorded as failed, never sent.
    refused_now = Execution.objects.filter(id__in=[e.id for e in refused]).values_list("cue__callback_transport")
    for (transport,), n in Counter(refused_now).items():
        _count_result("failed", transport, n)
    _count_fired(fired_now, now)
    return fired_now


def buffered_slot_released(*, cue: Cue, now: datetime) -> Execution | None:
    """`overlap: buffer_one`: the slot that came due while an execution of the cue was running
    fires once none is running (called when one ends, and by the poller's sweep). The slot is
    taken with a guarded UPDATE, so it fires once. Returns its execution, or None."""
    slot = Cue.objects.filter(pk=cue.pk, status=Cue.Status.ACTIVE).values_list(
        "overlap_buffered_slot", flat=True).first()
    if slot is None or Execution.objects.filter(running(now), cue_id=cue.pk).exists():
        return None
    if not Cue.objects.filter(pk=cue.pk, overlap_buffered_slot=slot).update(overlap_buffered_slot=None):
        return None
    user = cue.user
    if limit_reached(used=user_executions_this_month(user=user, moment=now), limit=user.monthly_execution_limit):
        # As the poller does over the limit: recorded as failed, never sent.
        slots_fired(pending=[], refused=[Execution(cue=cue, scheduled_for=slot, status=Status.FAILED,
                                                   error_message=monthly_execution_limit_message(
                                                       user.monthly_execution_limit))], now=now)
        return None
    try:
        return fired(cue=cue, scheduled_for=slot, now=now)
    except IntegrityError:  # the slot has an execution already
        return None


def _ended(cue: Cue, now: datetime) -> None:
    """An execution of `cue` stopped running (see selectors.running)."""
    if cue.overlap == Cue.Overlap.BUFFER_ONE:
        buffered_slot_released(cue=cue, now=now)


def _count_fired(executions: list[Execution], now: datetime) -> None:
    for execution in executions:
        lag = (now - execution.scheduled_for).total_seconds()
        metrics.count("cueapi_executions_fired", transport=execution.cue.callback_transport)
        if execution.triggered_by is None:  # scheduled: how late the engine was
            metrics.observe("cueapi_fire_lag_seconds", max(lag, 0.0))
        log_event(logger, "fired", execution_id=execution.id, cue_id=execution.cue_id,
                  scheduled_for=execution.scheduled_for, triggered_by=execution.triggered_by,
                  lag_ms=round(lag * 1000, 1))


def replayed(*, execution: Execution, now: datetime) -> Execution:
    """A new pending execution of the same cue with the same payload and required assertions;
    the original stays."""
    return fired(cue=execution.cue, scheduled_for=now, now=now, triggered_by="replay",
                 payload=execution.payload, required_assertions=execution.required_assertions,
                 replayed_from=execution.pk)


# --- claims ---------------------------------------------------------------------------------

WEBHOOK_CLAIMED_SQL = ("UPDATE executions SET status = %s, started_at = COALESCE(started_at, %s), updated_at = %s"
                       " WHERE id IN {ids} AND status IN {claimable}")


def webhook_claimed(*, execution_ids, now: datetime) -> int:
    """The executions of outbox rows a dispatcher just claimed: pending/retry_ready ->
    delivering. (A crashed dispatcher's rows come back already `delivering`.) Hand-written
    SQL: it runs on every claim (a QuerySet of ids is read first)."""
    if isinstance(execution_ids, QuerySet):
        execution_ids = execution_ids.values_list("id", flat=True)
    ids = [db_id(Execution, "id", execution_id) for execution_id in execution_ids]
    if not ids:
        return 0
    at = db_time(now)
    return execute(WEBHOOK_CLAIMED_SQL.format(ids=in_list(ids), claimable=in_list(Execution.CLAIMABLE)),
                   [Status.DELIVERING, at, at, *ids, *Execution.CLAIMABLE])


def _claim_update(*, worker_id: str, now: datetime) -> tuple[str, list]:
    """The UPDATE a claim makes (up to its WHERE), and its parameters."""
    at = EXECUTION_ROWS.param("claimed_at", now)
    lease = EXECUTION_ROWS.param("lease_expires_at", now + timedelta(seconds=settings.CUEAPI_WORKER_LEASE_SECONDS))
    return ("UPDATE executions SET status = %s, claimed_by_worker = %s, claimed_at = %s, started_at = %s, "
            "last_attempt_at = %s, attempts = attempts + 1, updated_at = %s, next_retry = NULL, "
            "lease_expires_at = %s", [Status.DELIVERING, worker_id, at, at, at, at, lease])


def worker_claimed(*, user, execution_id, worker_id: str, now: datetime) -> bool:
    """A worker takes one of the user's claimable executions (selectors.claimable_worker_sql):
    a guarded UPDATE from a claimable status, so two claims can never both win. Written by
    hand: claims are the workers' hot path (see cueapi.rows)."""
    claimable, params = claimable_worker_sql(user=user, now=now)
    update, update_params = _claim_update(worker_id=worker_id, now=now)
    claimed = execute(f"{update} WHERE executions.id = %s AND {claimable}",
                      [*update_params, EXECUTION_ROWS.param("id", execution_id), *params])
    if claimed:
        log_event(logger, "claimed", execution_id=execution_id, worker_id=worker_id)
    return bool(claimed)


def _oldest_claimable_sql(claimable: str) -> str:
    """The user's oldest execution matching `claimable` (claimable_worker_sql), locked: SKIP
    LOCKED on PostgreSQL, so concurrent claimers each get another."""
    sql = (f"SELECT executions.id FROM executions WHERE {claimable} "
           "ORDER BY executions.scheduled_for, executions.id LIMIT 1")
    return sql + " FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else sql


def worker_claimed_next(*, user, worker_id: str, now: datetime):
    """A worker takes the user's oldest claimable execution; returns its id, or None when
    nothing is claimable (or all of it is being claimed). On PostgreSQL one statement (no
    transaction to begin and commit): the pick locks its row with SKIP LOCKED and the UPDATE
    keeps worker_claimed's guard. On SQLite, whose write transactions run one at a time, pick
    then claim in one transaction."""
    claimable, params = claimable_worker_sql(user=user, now=now)
    if connection.vendor != "postgresql":
        with transaction.atomic():
            rows = fetch(_oldest_claimable_sql(claimable), params)
            if not rows:
                return None
            execution_id = EXECUTION_ROWS.convert("id", rows[0][0])
            claimed = worker_claimed(user=user, execution_id=execution_id, worker_id=worker_id, now=now)
            return execution_id if claimed else None
    update, update_params = _claim_update(worker_id=worker_id, now=now)
    rows = fetch(f"{update} WHERE executions.id = ({_oldest_claimable_sql(claimable)}) AND {claimable} "
                 "RETURNING executions.id", [*update_params, *params, *params])
    if not rows:
        return None
    execution_id = EXECUTION_ROWS.convert("id", rows[0][0])
    log_event(logger, "claimed", execution_id=execution_id, worker_id=worker_id)
    return execution_id


def retry_released(*, execution: Execution, now: datetime) -> bool:
    """A retry's time came: retrying -> retry_ready; a webhook one gets its outbox row (a
    worker one is claimable again)."""
    moved = Execution.objects.filter(pk=execution.pk, status=Status.RETRYING).update(
        status=Status.RETRY_READY, updated_at=now)
    if moved and sends_webhook(execution.cue):
        DispatchOutbox.objects.create(execution=execution, task_type=DispatchOutbox.TaskType.RETRY,
                                      available_at=now)
    return bool(moved)


# --- attempts -------------------------------------------------------------------------------

# Attempts are written by hand-written SQL (see cueapi.rows): a worker's outcome writes one.
ATTEMPT_ROWS = RowLoader(DeliveryAttempt)
ATTEMPT_COLUMNS = [field.name for field in DeliveryAttempt._meta.concrete_fields if not field.primary_key]


def _attempt(execution: Execution, attempt: int, transport: str, result: str, now: datetime, *,
             started_at: datetime | None = None, duration_ms: int | None = None,
             http_status: int | None = None, error: str | None = None,
             worker_id: str | None = None, retry_after: datetime | None = None) -> DeliveryAttempt:
    """An attempt's row, finished now, unsaved (see _attempt_row)."""
    started_at = started_at or now
    if duration_ms is None:
        duration_ms = max(0, int((now - started_at).total_seconds() * 1000))
    return DeliveryAttempt(
        execution_id=execution.pk, attempt=attempt, transport=transport, result=result,
        started_at=started_at, finished_at=now, duration_ms=duration_ms, http_status=http_status,
        error=error, worker_id=worker_id, retry_after=retry_after)


def _attempt_row(*args, **kwargs) -> None:
    """INSERT an attempt's row (_attempt's arguments)."""
    ATTEMPT_ROWS.insert(_attempt(*args, **kwargs), ATTEMPT_COLUMNS)


def webhook_delivered(*, execution: Execution, cue: Cue, attempt: int, result: DeliveryResult,
                      now: datetime) -> str | None:
    """The handler answered 2xx: delivering -> success. A reply carrying an outcome records it
    at once; otherwise an outcome deadline may start. Returns "delivered", or None when the
    execution had moved on."""
    deadline = outcome_deadline_seconds(cue) if result.reported_outcome is None else None
    moved = Execution.objects.filter(pk=execution.pk, status=Status.DELIVERING).update(
        status=Status.SUCCESS, delivered_at=now, next_retry=None, error_message=None,
        outcome_deadline_seconds=deadline,
        outcome_deadline_at=now + timedelta(seconds=deadline) if deadline else None,
        http_status=result.http_status, response_body=result.response_text, last_attempt_at=now,
        attempts=attempt, updated_at=now)
    if not moved:
        return None
    _attempt_row(execution, attempt, Transport.WEBHOOK, DeliveryAttempt.Result.DELIVERED, now,
                 started_at=now - timedelta(milliseconds=result.duration_ms), duration_ms=result.duration_ms,
                 http_status=result.http_status)
    cue_record_run(cue=cue, now=now, finished=True, once_status=Cue.Status.COMPLETED)
    metrics.count("cueapi_webhook_deliveries", result="delivered")
    if result.reported_outcome is None and not deadline:  # no outcome expected: this is its verdict
        _count_result("delivered", Transport.WEBHOOK)
        signals.executions_succeeded.send(sender=Execution, succeeded=[(cue.pk, execution.pk)], now=now)
    metrics.observe("cueapi_delivery_latency_seconds", (now - execution.scheduled_for).total_seconds())
    # One log line for the delivery, its outcome (if the reply carried one) included.
    log_event(logger, "delivered", execution_id=execution.id, cue_id=cue.id, attempt=attempt,
              http_status=result.http_status, duration_ms=result.duration_ms,
              outcome=None if result.reported_outcome is None else bool(result.reported_outcome["success"]))
    if result.reported_outcome is not None:
        outcome_recorded(execution=execution, cue=cue, outcome=outcome_from_reply(result.reported_outcome), now=now,
                         logged=True)
    elif not deadline:
        _ended(cue, now)
    return "delivered"


@dataclass
class Delivered:
    """One plain 2xx answer of a batch (no outcome in the reply): see webhooks_delivered."""
    execution: Execution
    cue: Cue
    attempt: int
    result: DeliveryResult


class BatchChanged(Exception):
    """A batch transition found a row not in the state it expects. The caller rolls the
    batch back and makes each transition on its own (which sorts out who moved what)."""


# webhooks_delivered's statements, hand-written: they run for every batch the dispatcher records.
WEBHOOKS_DELIVERED_SQL = (
    "UPDATE executions SET status = %s, delivered_at = %s, next_retry = NULL, error_message = NULL,"
    " last_attempt_at = %s, updated_at = %s, {by_row} WHERE id IN {ids} AND status = %s")
ATTEMPTS_INSERT_SQL = ("INSERT INTO delivery_attempts (execution_id, attempt, transport, result, http_status,"
                       " started_at, finished_at, duration_ms) VALUES ")
ATTEMPT_VALUES = "(%s, %s, %s, %s, %s, %s, %s, %s)"


def webhooks_delivered(*, items: list[Delivered], now: datetime) -> None:
    """webhook_delivered for a batch of plain 2xx answers in a few statements (the dispatcher's
    hot path): the same fields, attempt rows, cue runs, metrics and log lines. All or nothing:
    raises BatchChanged when any execution is no longer `delivering`."""
    deadlines = {item.execution.pk: outcome_deadline_seconds(item.cue) for item in items}
    at = db_time(now)
    ids = {item.execution.pk: db_id(Execution, "id", item.execution.pk) for item in items}
    by_row = {
        "outcome_deadline_seconds": {ids[pk]: seconds for pk, seconds in deadlines.items()},
        "outcome_deadline_at": {ids[pk]: db_time(now + timedelta(seconds=seconds)) if seconds else None
                                for pk, seconds in deadlines.items()},
        "http_status": {ids[i.execution.pk]: i.result.http_status for i in items},
        "response_body": {ids[i.execution.pk]: i.result.response_text for i in items},
        "attempts": {ids[i.execution.pk]: i.attempt for i in items},
    }
    assignments, params = [], [Status.SUCCESS, at, at, at]
    for column, values in by_row.items():
        value_sql, value_params = sql_by_id(values)
        assignments.append(f"{column} = {value_sql}")
        params += value_params
    moved = execute(WEBHOOKS_DELIVERED_SQL.format(by_row=", ".join(assignments), ids=in_list(ids)),
                    [*params, *ids.values(), Status.DELIVERING])
    if moved != len(items):
        raise BatchChanged(f"{len(items) - moved} of {len(items)} executions are no longer delivering")
    rows = [(ids[i.execution.pk], i.attempt, Transport.WEBHOOK, DeliveryAttempt.Result.DELIVERED, i.result.http_status,
             db_time(now - timedelta(milliseconds=i.result.duration_ms)), at, i.result.duration_ms) for i in items]
    execute(ATTEMPTS_INSERT_SQL + ", ".join([ATTEMPT_VALUES] * len(rows)), [value for row in rows for value in row])
    cue_runs_recorded(cue_ids=[i.cue.pk for i in items], now=now, once_status=Cue.Status.COMPLETED)
    metrics.count("cueapi_webhook_deliveries", len(items), result="delivered")
    _count_result("delivered", Transport.WEBHOOK, sum(1 for seconds in deadlines.values() if not seconds))
    good = [(i.cue.pk, i.execution.pk) for i in items if not deadlines[i.execution.pk]]
    if good:  # no outcome expected: delivered is their verdict
        signals.executions_succeeded.send(sender=Execution, succeeded=good, now=now)
    for item in items:
        metrics.observe("cueapi_delivery_latency_seconds", (now - item.execution.scheduled_for).total_seconds())
        log_event(logger, "delivered", execution_id=item.execution.id, cue_id=item.cue.id, attempt=item.attempt,
                  http_status=item.result.http_status, duration_ms=item.result.duration_ms, outcome=None)
        if not deadlines[item.execution.pk]:
            _ended(item.cue, now)


def attempt_failed(*, execution: Execution, cue: Cue, attempt: int, error: str, now: datetime,
                   transport: str, give_up: bool = False, result: str = DeliveryAttempt.Result.FAILED,
                   guard: dict | None = None, http_status: int | None = None,
                   response_text: str | None = None, duration_ms: int | None = None,
                   started_at: datetime | None = None, worker_id: str | None = None,
                   retry_at: float | None = None) -> str | None:
    """A delivery attempt failed (webhook error or status, worker lease lapsed): retry with
    backoff while attempts are left, else fail for good. Guarded on `delivering` (plus
    `guard`). Returns "retrying" or "failed", or None when the execution had moved on.

    The receiver has a say: a webhook answered 410 Gone is not retried, and its cue is paused
    (`ENDPOINT_GONE`); a 429/503 `Retry-After` (`retry_at`, a Unix time) puts the retry at the
    later of the backoff and that time, the wait capped at RETRY_AFTER_MAX_SECONDS."""
    gone = transport == Transport.WEBHOOK and http_status == 410
    retry = not give_up and not gone and attempt < cue.retry_max_attempts
    asked_until = None
    if retry_at is not None:
        asked_until = min(datetime.fromtimestamp(retry_at, tz=dt_timezone.utc),
                          now + timedelta(seconds=RETRY_AFTER_MAX_SECONDS))
    fields = dict(error_message=error, updated_at=now, lease_expires_at=None)
    if transport == Transport.WEBHOOK:
        fields.update(http_status=http_status, response_body=response_text, last_attempt_at=now, attempts=attempt)
    if retry:
        next_retry = now + timedelta(seconds=backoff_seconds(cue.retry_backoff_minutes, attempt))
        if asked_until is not None:
            next_retry = max(next_retry, asked_until)
        fields.update(status=Status.RETRYING, next_retry=next_retry)
    else:
        fields.update(status=Status.FAILED, next_retry=None)
    moved = Execution.objects.filter(pk=execution.pk, status=Status.DELIVERING, **(guard or {})).update(**fields)
    if not moved:
        return None
    _attempt_row(execution, attempt, transport, result, now, started_at=started_at, duration_ms=duration_ms,
                 http_status=http_status, error=error, worker_id=worker_id, retry_after=asked_until)
    verdict = "retrying" if retry else "failed"
    if transport == Transport.WEBHOOK:
        metrics.count("cueapi_webhook_deliveries", result=verdict)
    log_event(logger, verdict if transport == Transport.WEBHOOK else "lease_expired", execution_id=execution.id,
              cue_id=cue.id, attempt=attempt, http_status=http_status, duration_ms=duration_ms, error=error,
              worker_id=worker_id, retried=retry, retry_after=asked_until)
    if retry:
        cue_record_run(cue=cue, now=now, finished=False)
        metrics.count("cueapi_retries_scheduled", transport=transport)
    else:
        _count_result("failed", transport)
        _failed_for_good(execution.pk, cue, now, error, pause=True, gone=gone)
    return verdict


def lease_expired(*, execution: Execution, now: datetime) -> str | None:
    """A worker's claim lapsed with no outcome and no heartbeat: a failed attempt (retried
    with backoff, or the last one). `claimed_by_worker` is kept, so a late outcome from that
    worker still lands. Guarded on the lease the poller read."""
    verdict = attempt_failed(
        execution=execution, cue=execution.cue, attempt=execution.attempts, now=now,
        error=LEASE_EXPIRED.format(worker=execution.claimed_by_worker), transport=Transport.WORKER,
        result=DeliveryAttempt.Result.LEASE_EXPIRED, guard={"lease_expires_at": execution.lease_expires_at},
        started_at=execution.claimed_at, worker_id=execution.claimed_by_worker)
    if verdict is not None:
        metrics.count("cueapi_worker_leases_expired")
    return verdict


def unclaimed(*, execution: Execution, now: datetime) -> bool:
    """A worker execution nobody claimed within the window: pending -> missed."""
    moved = Execution.objects.filter(pk=execution.pk, status=Status.PENDING).update(
        status=Status.MISSED, error_message=UNCLAIMED, updated_at=now)
    if not moved:
        return False
    metrics.count("cueapi_executions_missed", reason="unclaimed")
    _count_result("missed", Transport.WORKER)
    log_event(logger, "unclaimed", execution_id=execution.id, cue_id=execution.cue_id)
    _failed_for_good(execution.pk, execution.cue, now, UNCLAIMED, ran=False)
    return True


def _failed_for_good(execution_id, cue: Cue, now: datetime, reason: str, *, ran: bool = True,
                     pause: bool = False, gone: bool = False) -> None:
    """What happens when an execution fails for good, however it failed (delivery, lease,
    nobody claimed it, the handler's own report, no outcome in time): the cue records the
    run (a one-time cue is `failed`; a recurring one pauses when its `on_failure.pause` says
    so and the delivery failed; any cue pauses with a `pause_note` when its endpoint is `gone`:
    answered 410), and `execution_failed` goes out (alerts, on_failure actions; `endpoint_gone` when
    this failure paused the cue for a 410)."""
    pause = (pause and not gone and cue.schedule_type != Cue.ScheduleType.ONCE
             and bool((cue.on_failure or {}).get("pause")))
    # A run that never happened (nobody claimed it, its outcome never came) is not counted.
    # An endpoint that is gone pauses a one-time cue too (#19: "the cue is paused ... until
    # resumed"), rather than failing it: resumed once its callback is fixed, it fires again.
    cue_record_run(cue=cue, now=now, finished=ran, ran=ran, once_status=None if gone else Cue.Status.FAILED,
                   pause=pause)
    # Only the failure that paused it says so: the cue's other executions already on their way
    # to the same endpoint fail quietly.
    paused_gone = gone and cue_pause_with_note(cue_id=cue.pk, note=ENDPOINT_GONE, now=now)
    signals.execution_failed.send(sender=Execution, execution=Execution.objects.get(pk=execution_id), cue=cue,
                                  now=now, reason=reason, endpoint_gone=paused_gone)
    _ended(cue, now)


# --- outcomes -------------------------------------------------------------------------------

def outcome_recorded(*, execution: Execution, cue: Cue, outcome: dict, now: datetime,
                     logged: bool = False) -> str | None:
    """The handler's outcome, recorded once (guarded on none being recorded). For a worker the
    outcome is also the completion of its attempt: its status becomes success or failed (a
    late outcome, after its lease lapsed, too). A reported failure fails the execution's
    outcome for good (no retry: the handler ran). Returns the outcome_state, or None when one
    was already recorded. (`logged`: the caller's log line already tells it.)"""
    required = execution.required_assertions
    fields = outcome_fields(outcome=outcome, verification_mode=cue.verification_mode, now=now,
                            required_assertions=cue.required_assertions if required is None else required)
    state, success = fields["outcome_state"], outcome["success"]
    worker = cue.callback_transport == Transport.WORKER
    then = []
    if worker:  # the outcome completes the worker's run: one UPDATE for both
        fields.update(status=Status.SUCCESS if success else Status.FAILED, lease_expires_at=None, next_retry=None,
                      updated_at=now)
        fields.update(delivered_at=now, error_message=None) if success else fields.update(
            error_message=outcome.get("error"))
        # For a worker, running the handler is the delivery: its failure fails the attempt.
        # The attempt's row and a success's run count are written with the outcome, in one
        # statement (a failure's run is recorded by _failed_for_good).
        attempt = _attempt(execution, execution.attempts, Transport.WORKER,
                           DeliveryAttempt.Result.DELIVERED if success else DeliveryAttempt.Result.FAILED, now,
                           started_at=execution.claimed_at, error=None if success else outcome.get("error"),
                           worker_id=execution.claimed_by_worker)
        then.append(ATTEMPT_ROWS.insert_statement(attempt, ATTEMPT_COLUMNS, guarded=True))
        if success:
            then.append(cue_record_run_statement(cue=cue, now=now, finished=True, once_status=Cue.Status.COMPLETED,
                                                 condition=GUARDED))
    update = EXECUTION_ROWS.update_statement(execution.pk, fields, guard="outcome_recorded_at IS NULL")
    if not execute_guarded(update, *then):
        return None
    if not logged:
        log_event(logger, "outcome_recorded", execution_id=execution.pk, cue_id=cue.id,
                  attempt=execution.attempts, success=success, outcome_state=state,
                  worker_id=execution.claimed_by_worker)
    signals.outcome_recorded.send(sender=Execution, execution_id=execution.pk, cue=cue, state=state, now=now)
    if state != Execution.OutcomeState.VERIFICATION_PENDING:  # else the owner's verdict decides
        _count_result("succeeded" if state in SUCCEEDED_OUTCOMES else "failed", cue.callback_transport)
    if not success:  # a worker's run ends here; a webhook's was counted when delivered
        _failed_for_good(execution.pk, cue, now, HANDLER_REPORTED_FAILURE, ran=worker)
    if state in SUCCEEDED_OUTCOMES:
        succeeded(execution=execution, cue=cue, now=now)
    if success:  # a failure ended it in _failed_for_good
        _ended(cue, now)
    return state


def succeeded(*, execution: Execution, cue: Cue, now: datetime) -> None:
    """An execution reached a successful outcome (reported_success, or verified_success at
    report or by the owner's verdict): its cue's `on_success_fire` target fires, once per
    execution. A replay counts as the execution it replays, so re-reports, verdicts, verify
    races and replays never fire a chain twice: `chained_from` is unique and decides. What
    happened is recorded on the execution (`on_success_fire`), a skip with its reason. The
    alerts app hears of the success (`executions_succeeded`: streaks, recovery)."""
    signals.executions_succeeded.send(sender=Execution, succeeded=[(cue.pk, execution.pk)], now=now)
    target_id = cue.on_success_fire
    if not target_id:
        return
    source = _chain_source(execution)
    target = Cue.objects.select_related("user").filter(pk=target_id, user_id=cue.user_id).first()
    record = {"cue_id": target_id, "execution_id": None, "fired": False, "reason": None}
    if target is None:
        record["reason"] = f"Cue {target_id} no longer exists: nothing fired"
    elif target.status == Cue.Status.PAUSED:
        record["reason"] = f"Cue {target_id} is paused: nothing fired"
    elif limit_reached(used=user_executions_this_month(user=target.user, moment=now),
                       limit=target.user.monthly_execution_limit):
        record["reason"] = "The monthly execution limit is reached: nothing fired"
    else:
        chained = _fire_chain(target=target, source=source, now=now)
        if chained is not None:
            record.update(execution_id=str(chained.pk), fired=True)
        else:
            already = Execution.objects.filter(chained_from=source).values_list("pk", flat=True).first()
            if source == execution.pk:  # this execution's success fired it before: nothing to add
                return
            record.update(execution_id=str(already) if already else None,
                          reason=f"Already fired for execution {source}, which this one replays")
    Execution.objects.filter(pk=execution.pk).update(on_success_fire=record)
    log_event(logger, "chain_fired" if record["fired"] else "chain_skipped", execution_id=execution.pk,
              cue_id=cue.id, target_cue_id=target_id, target_execution_id=record["execution_id"],
              reason=record["reason"])


def _chain_source(execution: Execution):
    """The execution a chain fires for: the original one, through any replays of it."""
    source, parent = execution.pk, execution.replayed_from
    for _ in range(100):  # a replay of a replay of …; bounded against a cycle made by hand
        if parent is None:
            break
        source, parent = parent, Execution.objects.filter(pk=parent).values_list("replayed_from", flat=True).first()
    return source


def _fire_chain(*, target: Cue, source, now: datetime) -> Execution | None:
    """The target's new execution for `source`, or None when `source` already fired one."""
    for bump in range(10):  # "now" may collide with another fire of the target at the same µs
        try:
            return fired(cue=target, scheduled_for=now + timedelta(microseconds=bump), now=now,
                         triggered_by="on_success", chained_from=source)
        except IntegrityError:
            if Execution.objects.filter(chained_from=source).exists():
                return None
    return None


def verification_requested(*, execution: Execution, now: datetime) -> bool:
    """An owner asks to review a recorded outcome: outcome_state -> verification_pending."""
    return bool(Execution.objects.filter(pk=execution.pk, outcome_recorded_at__isnull=False).update(
        outcome_state=Execution.OutcomeState.VERIFICATION_PENDING, updated_at=now))


def outcome_verified(*, execution: Execution, valid: bool, reason: str | None, now: datetime) -> str | None:
    """An owner's verdict on the evidence: verified_success or verification_failed. Guarded
    on the outcome_state read, so two verdicts can't both apply. Returns the new state."""
    fields = {"updated_at": now}
    if valid:
        state = Execution.OutcomeState.VERIFIED_SUCCESS
        fields.update(outcome_state=state, evidence_validation_state="valid")
    else:
        state = Execution.OutcomeState.VERIFICATION_FAILED
        fields.update(outcome_state=state, evidence_validation_state="invalid")
        if reason:
            summary, note = execution.evidence_summary, reason[:500]
            fields["evidence_summary"] = (f"{summary} | verification rejected: {note}" if summary else note)[:500]
    moved = Execution.objects.filter(pk=execution.pk, outcome_state=execution.outcome_state).update(**fields)
    if not moved:
        return None
    log_event(logger, "outcome_verified", execution_id=execution.pk, cue_id=execution.cue_id, outcome_state=state)
    _count_result("succeeded" if valid else "failed", execution.cue.callback_transport)
    if valid:
        succeeded(execution=execution, cue=execution.cue, now=now)
    else:
        signals.verification_rejected.send(sender=Execution, execution_id=execution.pk, cue=execution.cue,
                                           reason=reason, now=now)
    return state


def outcome_timed_out(*, execution: Execution, now: datetime) -> bool:
    """Delivered, but no outcome by its deadline: success -> outcome_timeout, which fails the
    execution for good (the alert says which deadline passed)."""
    message = f"No outcome reported within {execution.outcome_deadline_seconds}s of delivery"
    moved = Execution.objects.filter(pk=execution.pk, status=Status.SUCCESS, outcome_recorded_at__isnull=True).update(
        status=Status.OUTCOME_TIMEOUT, error_message=message, updated_at=now)
    if not moved:
        return False
    execution.status, execution.error_message = Status.OUTCOME_TIMEOUT, message
    metrics.count("cueapi_outcome_timeouts")
    _count_result("failed", execution.cue.callback_transport)
    log_event(logger, "outcome_timeout", execution_id=execution.pk, cue_id=execution.cue_id,
              deadline_seconds=execution.outcome_deadline_seconds)
    signals.outcome_timed_out.send(sender=Execution, execution=execution, cue=execution.cue, now=now)
    _failed_for_good(execution.pk, execution.cue, now, message, ran=False)
    return True
