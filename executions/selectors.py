import uuid
from datetime import datetime, timedelta
from typing import NamedTuple

from django.db.models import BooleanField, Case, CharField, Count, Max, Q, QuerySet, TextChoices, Value, When
from django.db.models.expressions import RawSQL


from cueapi.errors import AppError
from cueapi.rows import RowLoader, fetch, fetch_page, from_db_time, in_list
from cueapi.timefmt import ts_z
from cues.models import Cue
from cues.selectors import CUE_ROWS
from executions.models import DeliveryAttempt, Execution

CLAIMABLE_LIMIT = 50
# Executions are read by hand-written SQL on the API's hot paths (see cueapi.rows).
EXECUTION_ROWS = RowLoader(Execution)


class Verdict(TextChoices):
    """What an operator asks of an execution: did the job work? Answered by its outcome when
    the handler reported one, else by its delivery (`verdict_expression` is the one rule)."""

    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    DELIVERED = "delivered", "delivered, no outcome"  # 2xx, and the cue expects no outcome
    AWAITING_OUTCOME = "awaiting_outcome", "awaiting outcome"  # delivered, its outcome is due
    VERIFICATION_PENDING = "verification_pending", "verification pending"
    MISSED = "missed", "missed"  # never ran: a catch-up skip, or no worker claimed it
    IN_PROGRESS = "in_progress", "in progress"


# The handler's outcome, as a verdict (verification_pending awaits the owner's).
SUCCEEDED_OUTCOMES = (Execution.OutcomeState.REPORTED_SUCCESS, Execution.OutcomeState.VERIFIED_SUCCESS)
FAILED_OUTCOMES = (Execution.OutcomeState.REPORTED_FAILURE, Execution.OutcomeState.VERIFICATION_FAILED)
# Verdicts that end an execution's story; the failure rate is failed / these.
FINISHED_VERDICTS = (Verdict.SUCCEEDED, Verdict.FAILED, Verdict.DELIVERED)


def verdict_expression() -> Case:
    """The verdict as a SQL expression, for `.annotate(verdict=...)`: a reported outcome wins
    (a handler's `success: false` behind a 2xx, a late outcome after a timeout), then the
    delivery status."""
    state, status = Execution.OutcomeState, Execution.Status
    return Case(
        When(outcome_state__in=FAILED_OUTCOMES, then=Value(Verdict.FAILED)),
        When(outcome_state__in=SUCCEEDED_OUTCOMES, then=Value(Verdict.SUCCEEDED)),
        When(outcome_state=state.VERIFICATION_PENDING, then=Value(Verdict.VERIFICATION_PENDING)),
        When(status__in=[status.FAILED, status.OUTCOME_TIMEOUT], then=Value(Verdict.FAILED)),
        When(status=status.MISSED, then=Value(Verdict.MISSED)),
        When(status=status.SUCCESS, outcome_deadline_at__isnull=False, then=Value(Verdict.AWAITING_OUTCOME)),
        When(status=status.SUCCESS, then=Value(Verdict.DELIVERED)),
        default=Value(Verdict.IN_PROGRESS),
        output_field=CharField(),
    )


def running(now) -> Q:
    """Executions that are running, for a cue's overlap policy: from creation (a future
    send_at not yet) until delivered with no outcome expected, the outcome recorded, failed for
    good, or the outcome deadline passed (status outcome_timeout)."""
    status = Execution.Status
    return (Q(status__in=[status.PENDING, status.DELIVERING, status.RETRYING, status.RETRY_READY],
              scheduled_for__lte=now)
            | Q(status=status.SUCCESS, outcome_recorded_at__isnull=True, outcome_deadline_at__isnull=False))


def with_verdict(queryset: QuerySet) -> QuerySet:
    return queryset.annotate(verdict=verdict_expression())


def verdict_counts(queryset: QuerySet) -> dict[str, int]:
    """{verdict: count} of the executions in `queryset` (verdicts with none left out)."""
    return dict(with_verdict(queryset).order_by().values_list("verdict").annotate(n=Count("pk")))


def failure_rate(counts: dict[str, int]) -> float | None:
    """Failed / finished (succeeded, failed, delivered with no outcome expected), or None."""
    finished = sum(counts.get(verdict, 0) for verdict in FINISHED_VERDICTS)
    return counts.get(Verdict.FAILED, 0) / finished if finished else None


STATS_WINDOW_DAYS = 7


def cue_stats(*, cue, now) -> dict:
    """The cue's executions created in the last 7 days, by verdict, in one query on
    (cue, created_at): exactly the keys the hosted service's clients read. A webhook
    delivered with a 2xx to a cue that expects no outcome counts as `succeeded` (its status is
    `success`, and that answer is all such a cue ever reports). The rates are over executions
    whose result is known (succeeded, failed, missed). Times are when the latest success /
    failure was recorded."""
    verdict = verdict_expression()
    succeeded = Q(verdict__in=[Verdict.SUCCEEDED, Verdict.DELIVERED])
    failed = Q(verdict=Verdict.FAILED)
    row = (Execution.objects.filter(cue=cue, created_at__gte=now - timedelta(days=STATS_WINDOW_DAYS))
           .annotate(verdict=verdict).aggregate(
               executions=Count("pk"), succeeded=Count("pk", filter=succeeded), failed=Count("pk", filter=failed),
               missed=Count("pk", filter=Q(verdict=Verdict.MISSED)),
               last_success_at=Max("updated_at", filter=succeeded), last_failure_at=Max("updated_at", filter=failed)))
    known = row["succeeded"] + row["failed"] + row["missed"]
    return {
        "window_days": STATS_WINDOW_DAYS,
        **{key: row[key] for key in ("executions", "succeeded", "failed", "missed")},
        "success_rate": round(row["succeeded"] / known, 4) if known else None,
        "miss_rate": round(row["missed"] / known, 4) if known else None,
        "last_success_at": ts_z(row["last_success_at"]),
        "last_failure_at": ts_z(row["last_failure_at"]),
    }


def parse_execution_id(value):
    """The UUID, or None for anything malformed (which is then simply not found)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def execution_get(*, user, execution_id):
    """The caller's execution (through its cue), or 404 `execution_not_found`."""
    pk = parse_execution_id(execution_id)
    rows = []
    if pk is not None:
        sql = (f"SELECT {EXECUTION_ROWS.columns('e')}, {CUE_ROWS.columns('c')} "
               "FROM executions e JOIN cues c ON c.id = e.cue_id WHERE e.id = %s AND c.user_id = %s")
        rows = fetch(sql, [EXECUTION_ROWS.param("id", pk), CUE_ROWS.param("user", user.pk)])
    if not rows:
        raise AppError("execution_not_found", "Execution not found", 404)
    execution = EXECUTION_ROWS.load(rows[0])
    execution.cue = CUE_ROWS.load(rows[0], len(EXECUTION_ROWS))
    return execution


def execution_attempts(*, user, execution_id):
    """The caller's execution's delivery attempts, oldest first (404 for another's)."""
    execution = execution_get(user=user, execution_id=execution_id)
    return list(DeliveryAttempt.objects.filter(execution=execution).order_by("attempt", "id"))


def execution_list(*, user, filters, limit, offset):
    """(page newest first, total, oldest claimed_at) of the caller's executions."""
    where, params = ["c.user_id = %s"], [CUE_ROWS.param("user", user.pk)]
    for name, column in (("cue_id", "cue_id"), ("status", "status"), ("outcome_state", "outcome_state"),
                         ("triggered_by", "triggered_by"), ("worker_id", "claimed_by_worker")):
        if filters.get(name):
            where.append(f"e.{column} = %s")
            params.append(filters[name])
    if filters.get("status__in"):
        where.append(f"e.status IN {in_list(filters['status__in'])}")
        params.extend(filters["status__in"])
    matching = f"FROM executions e JOIN cues c ON c.id = e.cue_id WHERE {' AND '.join(where)}"
    page, (total, oldest_claimed) = fetch_page(
        EXECUTION_ROWS.columns("e"), matching, params, aggregates=["COUNT(*)", "MIN(e.claimed_at)"],
        order_by="e.created_at DESC, e.id DESC", limit=limit, offset=offset)
    return [EXECUTION_ROWS.load(row) for row in page], total, from_db_time(oldest_claimed)


def _payload_key(key, value):
    """The execution's payload (a fire's override, else the cue's) has `key` == value."""
    return Q(payload__isnull=True, **{f"cue__payload__{key}": value}) | Q(**{f"payload__{key}": value})


def claimable_worker_sql(*, user, now) -> tuple[str, list]:
    """The one rule for what a worker may claim, as a condition on the `executions` table (and
    its parameters): the user's worker-transport executions in a claimable status whose time
    has come (a fire's future send_at is not claimable early). The claims (lifecycle) use it in
    their hand-written statements, the claimable list through claimable_worker_executions.

    Every condition is on the execution row itself (the cue check is `cue_id IN (...)`), so a
    guarded claim is a plain `UPDATE … WHERE id = … AND status IN (…)`. With a join, Django
    writes `WHERE id IN (SELECT …)`, and PostgreSQL re-checks only `id IN` against its old
    snapshot after waiting for a concurrent claim: both claims then win (caught by
    tests/test_claim_race.py: 501 claims of 500 executions)."""
    return (f"executions.cue_id IN (SELECT worker_cues.id FROM cues worker_cues WHERE worker_cues.user_id = %s "
            f"AND worker_cues.callback_transport = %s) AND executions.status IN {in_list(Execution.CLAIMABLE)} "
            "AND executions.scheduled_for <= %s",
            [CUE_ROWS.param("user", user.pk), Cue.Transport.WORKER, *Execution.CLAIMABLE,
             EXECUTION_ROWS.param("scheduled_for", now)])


def claimable_worker_executions(*, user, now):
    """claimable_worker_sql's executions, as a queryset."""
    condition, params = claimable_worker_sql(user=user, now=now)
    return Execution.objects.filter(RawSQL(condition, params, output_field=BooleanField()))


class Claimable(NamedTuple):
    """A claimable execution as the claimable list shows it: its payload already resolved."""
    id: uuid.UUID
    cue_id: str
    cue_name: str
    payload: dict
    scheduled_for: datetime
    attempts: int


def claimable_executions(*, user, now, task=None, agent=None) -> list[Claimable]:
    """Worker executions the caller may claim now, oldest first; the filters apply before the
    limit (DESIGN.md §3.5). Only the columns the list shows are read: a worker polls this
    every few seconds, and whole rows of 50 executions and their cues are ~4,000 columns to
    convert."""
    queryset = claimable_worker_executions(user=user, now=now)
    if task is not None:
        queryset = queryset.filter(_payload_key("task", task))
    if agent is not None:
        queryset = queryset.filter(_payload_key("agent", agent))
    rows = queryset.order_by("scheduled_for", "id").values_list(
        "id", "cue_id", "cue__name", "payload", "cue__payload", "scheduled_for", "attempts")[:CLAIMABLE_LIMIT]
    return [Claimable(pk, cue_id, cue_name, effective_payload(payload, cue_payload), scheduled_for, attempts)
            for pk, cue_id, cue_name, payload, cue_payload, scheduled_for, attempts in rows]


def effective_payload(override, cue_payload):
    """What an execution delivers: a fire's override, else the cue's current payload."""
    payload = override if override is not None else cue_payload
    return payload if isinstance(payload, dict) else {}


def execution_payload(execution):
    """What the execution delivers: a fire's override, else the cue's current payload."""
    return effective_payload(execution.payload, execution.cue.payload)
