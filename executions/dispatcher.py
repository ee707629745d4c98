"""The dispatcher's units of work: claim outbox rows (fairly between users), deliver one, and
hand the result to the lifecycle (executions/lifecycle.py), which records it."""

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from cueapi.logs import log_event
from cueapi.rows import db_id, db_time, execute, fetch, from_db_time, in_list
from cues.models import Cue
from executions import lifecycle
from executions.delivery import DeliveryResult, send_webhook, signed_headers, webhook_body
from executions.models import DispatchOutbox, Execution

logger = logging.getLogger("cueapi.engine")

# A row whose sends were cut off this many times (the dispatcher died or crashed mid-send each
# time: its lease lapsed) is not sent again: its execution fails for good, with an alert.
MAX_DISPATCHES = 5
GAVE_UP = "Gave up after {n} interrupted deliveries: the dispatcher stopped while sending each time"
INTERNAL_ERROR = "Internal error while sending the webhook (see the dispatcher log)"

# Other apps' sending (alerts' notifications), each `claim(now=, limit=) -> [callable]`: the
# dispatcher runs them on its pool beside webhook deliveries. See alerts/apps.py.
EXTRA_UNITS = []


def register_unit(claim: Callable) -> None:
    if claim not in EXTRA_UNITS:
        EXTRA_UNITS.append(claim)


def lease_seconds(timeout: float | None = None) -> float:
    """How long a claim holds: well past the longest send (a delivery's total deadline is its
    webhook timeout, the server's unless a cue sets its own), so a live holder never loses it,
    and short enough that a dead one's rows return soon."""
    return 2 * (settings.CUEAPI_WEBHOOK_TIMEOUT_SECONDS if timeout is None else timeout) + 5


# The claim and the sleep run on every pass of the loop, so they are written as SQL once here
# rather than compiled by the ORM each time (that compilation was most of the claim's CPU). Plain
# SQL that PostgreSQL and SQLite both run; datetimes and ids go through the backend's adapters
# (cueapi.rows' `db_time`, `db_id`), and an IN list gets a placeholder per value (`in_list`).
OUTBOX_WITH_CUES = ("FROM dispatch_outbox o JOIN executions e ON e.id = o.execution_id "
                    "JOIN cues c ON c.id = e.cue_id")
# Due and unlocked (or its lock lapsed); two parameters: now, now.
CLAIMABLE = ("o.dispatched_at IS NULL AND o.available_at <= %s "
             "AND (o.locked_until IS NULL OR o.locked_until < %s)")
# Claimed under a live lease and not recorded yet; one parameter: now.
IN_FLIGHT = "o.dispatched_at IS NULL AND o.locked_until >= %s"
IN_FLIGHT_BY_USER_SQL = f"SELECT c.user_id, COUNT(*) {OUTBOX_WITH_CUES} WHERE {IN_FLIGHT} GROUP BY c.user_id"
CAPPED_CUES_EXIST_SQL = "SELECT 1 FROM cues WHERE max_in_flight IS NOT NULL LIMIT 1"
# Each user's due rows ranked oldest first; parameters: now, now, per-user cap, limit.
RANKED_SQL = (
    "SELECT id, owner, available_at FROM ("
    " SELECT o.id, c.user_id AS owner, o.available_at,"
    " ROW_NUMBER() OVER (PARTITION BY c.user_id ORDER BY o.available_at, o.id) AS user_rank"
    f" {OUTBOX_WITH_CUES} WHERE {CLAIMABLE}{{uncapped}}"
    ") ranked WHERE user_rank <= %s ORDER BY user_rank, available_at, id LIMIT %s")
RANKED_ALL_SQL = RANKED_SQL.format(uncapped="")
RANKED_UNCAPPED_SQL = RANKED_SQL.format(uncapped=" AND c.max_in_flight IS NULL")
# Each capped cue's due rows ranked oldest first, up to its cap; parameters: now, now.
CAPPED_RANKED_SQL = (
    "SELECT id, owner, available_at, cue_id, cue_cap, cue_rank FROM ("
    " SELECT o.id, c.user_id AS owner, o.available_at, e.cue_id, c.max_in_flight AS cue_cap,"
    " ROW_NUMBER() OVER (PARTITION BY e.cue_id ORDER BY o.available_at, o.id) AS cue_rank"
    f" {OUTBOX_WITH_CUES} WHERE {CLAIMABLE} AND c.max_in_flight IS NOT NULL"
    ") ranked WHERE cue_rank <= cue_cap ORDER BY available_at, id")
CAPPED_IN_FLIGHT_SQL = (f"SELECT e.cue_id, COUNT(*) {OUTBOX_WITH_CUES} WHERE {IN_FLIGHT}"
                        " AND c.max_in_flight IS NOT NULL GROUP BY e.cue_id")
CUES_IN_FLIGHT_SQL = (f"SELECT e.cue_id, COUNT(*) {OUTBOX_WITH_CUES} WHERE {IN_FLIGHT}"
                      " AND e.cue_id IN {cue_ids} GROUP BY e.cue_id")
# Of the picked rows, those still claimable and not locked by another dispatcher (PostgreSQL).
LOCK_SQL = f"SELECT o.id FROM dispatch_outbox o WHERE o.id IN {{ids}} AND {CLAIMABLE} FOR UPDATE SKIP LOCKED"
CLAIM_SQL = ("UPDATE dispatch_outbox SET locked_until = %s, lock_token = %s, dispatch_attempts = dispatch_attempts + 1"
             " WHERE id IN {ids} RETURNING execution_id")
# The earliest a free row is due, then the earliest a lock lapses; parameters: now, now.
NEXT_AVAILABLE_SQL = (
    "SELECT MIN(o.available_at) FROM dispatch_outbox o"
    " WHERE o.dispatched_at IS NULL AND (o.locked_until IS NULL OR o.locked_until < %s){not_full}"
    " UNION ALL "
    f"SELECT MIN(o.locked_until) FROM dispatch_outbox o WHERE {IN_FLIGHT}")


def _fair_pick(*, now: datetime, limit: int) -> tuple[list[int], dict[int, str]]:
    """Up to `limit` due rows, taken round-robin between users (each user's oldest first), and
    never more than CUEAPI_DISPATCH_PER_USER_IN_FLIGHT of one user's in flight: a user's backlog
    or slow handler can't keep everyone else waiting. A cue with `max_in_flight` gets no more
    rows than its cap leaves room for (see _capped_candidates). Returns (row ids, {row id: cue
    id} for the rows of capped cues)."""
    cap = settings.CUEAPI_DISPATCH_PER_USER_IN_FLIGHT
    at = db_time(now)
    in_flight = dict(fetch(IN_FLIGHT_BY_USER_SQL, [at]))
    # The common case, no cue capped anywhere: one index probe, and the query as it always was.
    capped = _capped_cues_exist()
    candidates = fetch(RANKED_UNCAPPED_SQL if capped else RANKED_ALL_SQL,
                       [at, at, cap, limit + sum(in_flight.values())])
    capped_rows = {}
    if capped:
        extra = _capped_candidates(now=now, limit=limit)
        capped_rows = {row_id: cue_id for row_id, _, _, cue_id in extra}
        candidates = _ranked_by_owner(candidates + [row[:3] for row in extra])
    picked, taken = [], dict(in_flight)
    for row_id, user_id, _ in candidates:
        if taken.get(user_id, 0) < cap:
            picked.append(row_id)
            taken[user_id] = taken.get(user_id, 0) + 1
            if len(picked) == limit:
                break
    return picked, capped_rows


def _capped_cues_exist() -> bool:
    return bool(fetch(CAPPED_CUES_EXIST_SQL, []))


def _cue_in_flight(*, now: datetime, cue_ids=None) -> dict[str, int]:
    """{cue id: webhooks in flight} for capped cues (or those of `cue_ids`): rows claimed under
    a live lease and not recorded yet. A dead dispatcher's rows stop counting when its lease
    lapses (they are due again)."""
    if cue_ids is None:
        return dict(fetch(CAPPED_IN_FLIGHT_SQL, [db_time(now)]))
    cue_ids = list(cue_ids)
    if not cue_ids:
        return {}
    return dict(fetch(CUES_IN_FLIGHT_SQL.format(cue_ids=in_list(cue_ids)), [db_time(now), *cue_ids]))


def _capped_candidates(*, now: datetime, limit: int) -> list[tuple[int, object, datetime, str]]:
    """Due rows of cues with `max_in_flight`, each cue's oldest first and no more than its cap
    leaves room for now: (row id, owner, available_at, cue id). A cue at its cap offers none,
    so its backlog waits in the outbox without holding up its owner's other cues."""
    at = db_time(now)
    ranked = fetch(CAPPED_RANKED_SQL, [at, at])
    busy = _cue_in_flight(now=now)
    return [row[:4] for row in ranked if row[5] <= row[4] - busy.get(row[3], 0)][: 10 * limit]


def _ranked_by_owner(rows: list[tuple]) -> list[tuple]:
    """(id, owner, available_at) rows in round-robin order: each owner's oldest first."""
    rank, ranked = {}, []
    for row in sorted(rows, key=lambda row: (row[2], row[0])):
        rank[row[1]] = rank.get(row[1], 0) + 1
        ranked.append((rank[row[1]], row))
    return [row for _, row in sorted(ranked, key=lambda item: (item[0], item[1][2], item[1][0]))]


def _within_cue_caps(ids: list[int], capped_rows: dict[int, str], now: datetime) -> list[int]:
    """The guarded step for capped cues: lock their cue rows (one claim at a time per capped
    cue, across dispatchers), count what is in flight now (a claim committed meanwhile
    included: each statement sees what was committed before it) and drop the rows over the
    cap. A cue another transaction holds is skipped, never waited for (no lock waits in the
    claim, so no deadlock): its rows stay due for the next pass. Rows of uncapped cues pass
    untouched, with no query."""
    cue_ids = sorted({capped_rows[row_id] for row_id in ids if row_id in capped_rows})
    if not cue_ids:
        return ids
    locked = Cue.objects.filter(pk__in=cue_ids).order_by("pk")
    if connection.vendor == "postgresql":  # SQLite: the claim's IMMEDIATE transaction serialises it
        locked = locked.select_for_update(skip_locked=True, no_key=True)
    caps = dict(locked.values_list("pk", "max_in_flight"))
    busy = _cue_in_flight(now=now, cue_ids=cue_ids)
    kept = []
    for row_id in sorted(ids):
        cue_id = capped_rows.get(row_id)
        if cue_id is not None:
            if cue_id not in caps:  # held by another claim right now
                continue
            if caps[cue_id] is not None:
                if busy.get(cue_id, 0) >= caps[cue_id]:
                    continue
                busy[cue_id] = busy.get(cue_id, 0) + 1
        kept.append(row_id)
    return kept


def claim_outbox_rows(*, now: datetime, limit: int) -> tuple[list[int], uuid.UUID]:
    """Take up to `limit` due rows (fairly, see _fair_pick) under a lease and mark their
    executions `delivering`; return (row ids, lock token). A row whose holder died (its lock
    lapsed) is due again, which is how a crashed dispatcher's work is recovered."""
    token = uuid.uuid4()
    at = db_time(now)
    with transaction.atomic():
        ids, capped_rows = _fair_pick(now=now, limit=limit)
        if ids and connection.vendor == "postgresql":
            # Another dispatcher may have taken some since we looked: lock what is still free.
            ids = [row_id for row_id, in fetch(LOCK_SQL.format(ids=in_list(ids)), [*ids, at, at])]
        if ids and capped_rows:
            ids = _within_cue_caps(ids, capped_rows, now)
        if ids:
            lease = db_time(now + timedelta(seconds=lease_seconds()))
            claimed = fetch(CLAIM_SQL.format(ids=in_list(ids)),
                            [lease, db_id(DispatchOutbox, "lock_token", token), *ids])
            lifecycle.webhook_claimed(execution_ids=[execution_id for execution_id, in claimed], now=now)
    return ids, token


def next_available(*, now: datetime) -> datetime | None:
    """The earliest instant a row becomes claimable: due and unlocked, or its lock lapsing."""
    at, full = db_time(now), []
    if _capped_cues_exist():
        # A cue at its max_in_flight has nothing due until one of its deliveries is recorded
        # (which wakes the loop): its waiting rows must not keep the loop spinning.
        caps = dict(Cue.objects.filter(max_in_flight__isnull=False).values_list("pk", "max_in_flight"))
        full = [cue_id for cue_id, n in _cue_in_flight(now=now).items() if n >= caps.get(cue_id, n + 1)]
    sql = NEXT_AVAILABLE_SQL.format(not_full=(
        f" AND o.execution_id NOT IN (SELECT id FROM executions WHERE cue_id IN {in_list(full)})" if full else ""))
    times = [from_db_time(t) for t, in fetch(sql, [at, *full, at])]
    times = [t for t in times if t is not None]
    return min(times) if times else None


# What a delivery reads: one query for a whole claim, only the columns it uses (the hot path).
DELIVERY_FIELDS = [
    "task_type", "lock_token", "dispatch_attempts", "execution", "execution__attempts", "execution__payload",
    "execution__scheduled_for", "execution__status", "execution__triggered_by", "execution__cue",
    "execution__cue__name", "execution__cue__payload", "execution__cue__callback_url",
    "execution__cue__callback_method", "execution__cue__callback_headers", "execution__cue__schedule_type",
    "execution__cue__retry_max_attempts", "execution__cue__retry_backoff_minutes",
    "execution__cue__on_failure", "execution__cue__verification_mode", "execution__cue__user",
    "execution__cue__outcome_deadline_seconds", "execution__cue__callback_transport",
    "execution__cue__webhook_timeout_seconds", "execution__cue__required_assertions",
    "execution__cue__on_success_fire", "execution__cue__overlap", "execution__required_assertions",
    "execution__replayed_from",
    "execution__cue__user__webhook_secret", "execution__cue__user__previous_webhook_secret",
    "execution__cue__user__previous_webhook_secret_expires_at",
]


@dataclass
class Delivery:
    """One claimed outbox row, loaded and ready to send: who holds it (`token`), what to send,
    and, once sent, what came back (`result`)."""
    row_id: int
    token: uuid.UUID
    execution: Execution
    cue: Cue
    attempt: int
    dispatches: int  # how many times this row was claimed, this time included
    result: DeliveryResult | None = None

    @property
    def give_up(self) -> bool:
        return self.dispatches > MAX_DISPATCHES


def load_deliveries(row_ids: list[int], token: uuid.UUID) -> list[Delivery]:
    """The claimed rows still held with `token`, loaded in one query. A row whose execution
    moved on without it (recorded elsewhere) is closed here: there is nothing to send."""
    deliveries, closed = [], []
    rows = (DispatchOutbox.objects.select_related("execution__cue__user").only(*DELIVERY_FIELDS)
            .filter(pk__in=row_ids, lock_token=token).order_by("pk"))
    for row in rows:
        execution = row.execution
        if execution.status != Execution.Status.DELIVERING:
            closed.append(row.pk)
            continue
        deliveries.append(Delivery(row_id=row.pk, token=token, execution=execution, cue=execution.cue,
                                   attempt=execution.attempts + 1, dispatches=row.dispatch_attempts))
    if closed:
        DispatchOutbox.objects.filter(pk__in=closed, lock_token=token).update(dispatched_at=timezone.now())
    _extend_long_leases(deliveries, token)
    return deliveries


def _extend_long_leases(deliveries: list[Delivery], token: uuid.UUID) -> None:
    """The claim leased every row for the server's timeout; a cue with a longer timeout of its
    own gets its row's lease extended to match (one UPDATE per such timeout, rare)."""
    by_timeout = {}
    for delivery in deliveries:
        timeout = delivery.cue.webhook_timeout()
        if timeout > settings.CUEAPI_WEBHOOK_TIMEOUT_SECONDS:
            by_timeout.setdefault(timeout, []).append(delivery.row_id)
    now = timezone.now()
    for timeout, row_ids in by_timeout.items():
        DispatchOutbox.objects.filter(pk__in=row_ids, lock_token=token).update(
            locked_until=now + timedelta(seconds=lease_seconds(timeout)))


def send_delivery(delivery: Delivery) -> Delivery:
    """Send one loaded delivery (no database work: safe on any thread); sets its `result`."""
    if delivery.give_up:
        delivery.result = DeliveryResult(delivered=False, error=GAVE_UP.format(n=delivery.dispatches - 1))
    else:
        delivery.result = _send(delivery.execution, delivery.cue, delivery.attempt)
    return delivery


def deliver_outbox_row(row_id: int, token: uuid.UUID) -> DeliveryResult | None:
    """Send one claimed outbox row's webhook and record the attempt. Safe to call twice: only
    the holder of the row's current lock token records anything. Whatever goes wrong while
    sending ends as a recorded failed attempt (retried or final), never as a row left to lapse."""
    deliveries = load_deliveries([row_id], token)
    if not deliveries:
        return None
    delivery = send_delivery(deliveries[0])
    record_deliveries(deliveries, now=timezone.now())
    return delivery.result


def _send(execution: Execution, cue: Cue, attempt: int) -> DeliveryResult:
    try:
        payload = execution.payload if execution.payload is not None else cue.payload
        body = webhook_body(execution_id=execution.id, cue_id=cue.id, name=cue.name,
                            scheduled_for=execution.scheduled_for, attempt=attempt, payload=payload)
        headers = signed_headers(secret=cue.user.webhook_secret or "", body=body,
                                 previous_secret=cue.user.previous_webhook_secret_at(timezone.now()),
                                 execution_id=execution.id, cue_id=cue.id,
                                 scheduled_for=execution.scheduled_for, attempt=attempt,
                                 custom_headers=cue.callback_headers)
        return send_webhook(url=cue.callback_url or "", method=cue.callback_method, headers=headers, body=body,
                            timeout=cue.webhook_timeout())
    except Exception:  # a bug of ours, not the receiver's doing: still a recorded attempt
        # The traceback only (never the exception text: it may quote a header value).
        logger.error("delivery_crashed", exc_info=True, extra={"fields": {"execution_id": str(execution.id)}})
        return DeliveryResult(delivered=False, error=INTERNAL_ERROR)


def record_deliveries(deliveries: list[Delivery], *, now: datetime) -> None:
    """Record sent deliveries. The common case, a batch of plain 2xx answers still held and
    still `delivering`, is a few statements for the whole batch (lifecycle.webhooks_delivered);
    anything else, or any surprise in the batch, is recorded one row at a time
    (`record_attempt`). A row whose recording fails is logged and left to lapse: its lease
    ends and it is sent again (at most MAX_DISPATCHES times), and the other rows are recorded."""
    plain, rest = [], []
    for delivery in deliveries:
        result = delivery.result
        (plain if result.delivered and result.reported_outcome is None else rest).append(delivery)
    if plain:
        try:
            with transaction.atomic():
                if not _close_rows(plain, now):
                    raise lifecycle.BatchChanged("a row is no longer held")
                lifecycle.webhooks_delivered(items=[_delivered_item(d) for d in plain], now=now)
        except Exception as exc:  # noqa: BLE001 - the careful path sorts it out, row by row
            if not isinstance(exc, lifecycle.BatchChanged):  # moved meanwhile is normal; this is not
                logger.error("batch_record_failed", exc_info=True)
            rest = plain + rest
    for delivery in rest:
        try:
            record_attempt(row_id=delivery.row_id, token=delivery.token, execution=delivery.execution,
                           cue=delivery.cue, attempt=delivery.attempt, result=delivery.result, now=now,
                           give_up=delivery.give_up)
        except Exception:  # noqa: BLE001 - one row's failure must not lose the others' results
            logger.error("record_failed", exc_info=True,
                         extra={"fields": {"execution_id": str(delivery.execution.id)}})


def _delivered_item(delivery: Delivery) -> lifecycle.Delivered:
    return lifecycle.Delivered(execution=delivery.execution, cue=delivery.cue, attempt=delivery.attempt,
                               result=delivery.result)


# Rows still held with the token, marked sent (the recorder's hot path, hand-written SQL).
CLOSE_SQL = ("UPDATE dispatch_outbox SET dispatched_at = %s, locked_until = NULL, last_dispatch_error = NULL"
             " WHERE lock_token = %s AND dispatched_at IS NULL AND id IN {ids}")


def _close_rows(deliveries: list[Delivery], now: datetime) -> bool:
    """Mark the rows dispatched, one UPDATE per claim; True when every row was still held."""
    closed = 0
    by_token = {}
    for delivery in deliveries:
        by_token.setdefault(delivery.token, []).append(delivery.row_id)
    for token, row_ids in by_token.items():
        closed += execute(CLOSE_SQL.format(ids=in_list(row_ids)),
                          [db_time(now), db_id(DispatchOutbox, "lock_token", token), *row_ids])
    return closed == len(deliveries)


@transaction.atomic
def record_attempt(*, row_id: int, token: uuid.UUID, execution: Execution, cue: Cue, attempt: int,
                   result: DeliveryResult, now: datetime, give_up: bool = False) -> str | None:
    """Record one attempt's result; return "delivered", "retrying" or "failed", or None when
    this dispatcher no longer holds the row (another one records it)."""
    owned = DispatchOutbox.objects.filter(pk=row_id, lock_token=token, dispatched_at__isnull=True).update(
        dispatched_at=now, locked_until=None, last_dispatch_error=result.error)
    if not owned:
        return None
    if result.delivered:
        return lifecycle.webhook_delivered(execution=execution, cue=cue, attempt=attempt, result=result, now=now)
    return lifecycle.attempt_failed(
        execution=execution, cue=cue, attempt=attempt, error=result.error, now=now, transport=Cue.Transport.WEBHOOK,
        give_up=give_up, http_status=result.http_status, response_text=result.response_text,
        duration_ms=result.duration_ms, started_at=now - timedelta(milliseconds=result.duration_ms),
        retry_at=result.retry_at)
