"""The facts an operator looks at first, for the admin home page and `GET /metrics`.

A handful of aggregate queries, each served by an index (executions by created_at, by status;
cues by status; the outbox's partial index), whatever the size of the tables.
"""

import statistics
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Q

from alerts.models import Alert
from cues.models import Cue
from executions.models import DispatchOutbox, Execution, Worker
from executions.selectors import Verdict, failure_rate, verdict_counts, with_verdict

ENGINE_PROCESSES = ("poller", "dispatcher")
IN_FLIGHT = (Execution.Status.PENDING, Execution.Status.DELIVERING, Execution.Status.RETRYING,
             Execution.Status.RETRY_READY)
LAG_SAMPLE = 200  # the latest executions, for the fire/delivery lag figures
RECENT_FAILURES = 10


def cue_counts() -> dict[str, int]:
    return dict(Cue.objects.order_by().values_list("status").annotate(n=Count("pk")))


def executions_since(since: datetime) -> dict[str, int]:
    return dict(Execution.objects.filter(created_at__gte=since).order_by()
                .values_list("status").annotate(n=Count("pk")))


def verdicts_since(since: datetime) -> dict[str, int]:
    """Executions created since `since`, by verdict (succeeded, failed, ...: the outcome)."""
    return verdict_counts(Execution.objects.filter(created_at__gte=since))


def recent_failures(since: datetime, limit: int = RECENT_FAILURES) -> list[Execution]:
    """The latest executions created since `since` whose verdict is failed, newest failure first."""
    return list(with_verdict(Execution.objects.filter(created_at__gte=since))
                .filter(verdict=Verdict.FAILED).select_related("cue")
                .only("id", "status", "outcome_state", "error_message", "outcome_error", "updated_at",
                      "cue__id", "cue__name")
                .order_by("-updated_at")[:limit])


def in_flight_counts() -> dict[str, int]:
    counts = dict(Execution.objects.filter(status__in=IN_FLIGHT).order_by()
                  .values_list("status").annotate(n=Count("pk")))
    return {status: counts.get(status, 0) for status in IN_FLIGHT}


def waiting_for_outcome() -> int:
    return Execution.objects.filter(status=Execution.Status.SUCCESS, outcome_recorded_at__isnull=True,
                                    outcome_deadline_at__isnull=False).count()


def outbox_depth() -> int:
    return DispatchOutbox.objects.filter(dispatched_at__isnull=True).count()


def worker_counts(now: datetime) -> dict[str, int]:
    """active, stale, dead: the /v1/workers thresholds (CUEAPI_WORKER_ACTIVE/STALE_SECONDS)."""
    active_since = now - timedelta(seconds=settings.CUEAPI_WORKER_ACTIVE_SECONDS)
    stale_since = now - timedelta(seconds=settings.CUEAPI_WORKER_STALE_SECONDS)
    return Worker.objects.aggregate(
        active=Count("pk", filter=Q(last_heartbeat__gte=active_since)),
        stale=Count("pk", filter=Q(last_heartbeat__lt=active_since, last_heartbeat__gte=stale_since)),
        dead=Count("pk", filter=Q(last_heartbeat__lt=stale_since)),
    )


def alert_counts(since: datetime | None = None) -> dict[str, int]:
    alerts = Alert.objects.all() if since is None else Alert.objects.filter(created_at__gte=since)
    return dict(alerts.order_by().values_list("alert_type").annotate(n=Count("pk")))


def engine_state(now: datetime) -> dict[str, dict]:
    """Each engine process's last cycle, from the heartbeat it writes to the shared cache;
    `stale` when never seen or quieter than CUEAPI_ENGINE_STALE_SECONDS."""
    keys = [f"{process}:{name}" for process in ENGINE_PROCESSES for name in ("last_run", "cycle_duration_ms")]
    try:
        stored = cache.get_many(keys)
    except Exception:  # noqa: BLE001 - the cache being down is itself the answer
        stored = {}
    state = {}
    for process in ENGINE_PROCESSES:
        last_run = stored.get(f"{process}:last_run")
        # `now` was taken before the read: a cycle that ended in between is 0 s old, not -0.01.
        age = max(0.0, (now - datetime.fromisoformat(last_run)).total_seconds()) if last_run else None
        state[process] = {"last_run": last_run, "seconds_ago": age,
                          "cycle_duration_ms": stored.get(f"{process}:cycle_duration_ms"),
                          "stale": age is None or age > settings.CUEAPI_ENGINE_STALE_SECONDS}
    return state


def lag_seconds() -> dict[str, dict | None]:
    """Fire lag (due -> execution created, scheduled slots only: a fire's or replay's due time
    is its creation) and due -> delivered (every delivered execution), over the latest
    executions, as {"fire": {p50, p99, max, samples} | None, "delivery": ...}. `missed` records
    of a catch-up are left out: they are written long after their slot by design."""
    rows = list(Execution.objects.exclude(status=Execution.Status.MISSED).order_by("-created_at")
                .values_list("triggered_by", "scheduled_for", "created_at", "delivered_at")[:LAG_SAMPLE])
    fire = [(created - due).total_seconds() for trigger, due, created, _ in rows if trigger is None]
    delivery = [(delivered - due).total_seconds() for _, due, _, delivered in rows if delivered]
    return {"fire": _summary(fire), "delivery": _summary(delivery)}


def _summary(values: list[float]) -> dict | None:
    if not values:
        return None
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return {"p50": statistics.median(values), "p99": p99, "max": values[-1], "samples": len(values)}


def collect(now: datetime) -> dict:
    """Everything on the admin home page."""
    day_ago = now - timedelta(hours=24)
    executions = executions_since(day_ago)
    verdicts = verdicts_since(day_ago)
    return {
        "cues": cue_counts(),
        "executions_24h": executions,
        "executions_24h_total": sum(executions.values()),
        "verdicts_24h": verdicts,
        "failure_rate_24h": failure_rate(verdicts),
        "recent_failures": recent_failures(day_ago),
        "in_flight": in_flight_counts(),
        "waiting_for_outcome": waiting_for_outcome(),
        "outbox_depth": outbox_depth(),
        "workers": worker_counts(now),
        "alerts_24h": alert_counts(day_ago),
        "engine": engine_state(now),
        "lag": lag_seconds(),
    }
