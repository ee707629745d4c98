"""Prometheus metrics, the writing side: engine events counted in each process and flushed to
the database. `GET /metrics` reads them back with the current state (ops/metrics.py).

`count()` and `observe()` are cheap (a dict update under a lock); `flush()` writes the
accumulated deltas with one upsert adding each delta to its series, so any number of poller and
dispatcher processes, in any number of containers, add up correctly. The engine loop flushes
after its cycles, at most once a second, and once more when it stops.
"""

import threading
import time
from collections import defaultdict

from django.db import connection

# Seconds from an execution's due time; sub-second firing is the point, so most buckets are small.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
FLUSH_EVERY_SECONDS = 1.0

COUNTERS = {
    "cueapi_executions_fired": "Executions created to be sent: due schedule slots, fires and replays.",
    "cueapi_executions_missed": "Schedule slots recorded as missed (catch-up policy, unclaimed worker jobs).",
    "cueapi_webhook_deliveries": "Webhook delivery attempts, by result.",
    "cueapi_retries_scheduled": "Failed attempts that were scheduled for a retry, by transport.",
    "cueapi_worker_leases_expired": "Worker claims whose lease ran out with no outcome.",
    "cueapi_outcome_timeouts": "Delivered executions whose outcome did not arrive by its deadline.",
    "cueapi_execution_results": ("Executions whose verdict was reached, by result (succeeded, failed: by the "
                                 "handler's outcome when it reported one; delivered: 2xx, no outcome expected; "
                                 "missed) and transport."),
    "cueapi_cues_parked": "Cues the poller paused because their next run could not be computed.",
    "cueapi_executions_pruned": "Finished executions deleted for being older than the retention period.",
}
HISTOGRAMS = {
    "cueapi_fire_lag_seconds": "Due time to execution created, for scheduled slots.",
    "cueapi_delivery_latency_seconds": "Due time to webhook delivered (2xx), for every delivered execution.",
}

_pending = defaultdict(float)
_lock = threading.Lock()
_last_flush = 0.0


def _labels(labels: dict) -> str:
    return ",".join(f'{key}="{labels[key]}"' for key in sorted(labels))


def parse_labels(labels: str) -> list[tuple[str, str]]:
    """'a="x",b="y"' -> [("a", "x"), ("b", "y")]; label values here never contain , or "."""
    return [(key, value.strip('"')) for key, value in (part.split("=", 1) for part in labels.split(",") if part)]


def count(name: str, amount: float = 1, **labels: str) -> None:
    with _lock:
        _pending[(f"{name}_total", _labels(labels))] += amount


def observe(name: str, seconds: float, **labels: str) -> None:
    seconds = max(seconds, 0.0)
    with _lock:
        for bound in (*LATENCY_BUCKETS, "+Inf"):
            if bound == "+Inf" or seconds <= bound:
                _pending[(f"{name}_bucket", _labels({**labels, "le": _le(bound)}))] += 1
        _pending[(f"{name}_sum", _labels(labels))] += seconds
        _pending[(f"{name}_count", _labels(labels))] += 1


def _le(bound: float | str) -> str:
    return bound if bound == "+Inf" else repr(float(bound))


def flush(force: bool = False) -> None:
    """Write the accumulated deltas. On failure they are kept for the next flush."""
    global _last_flush
    if not force and time.monotonic() - _last_flush < FLUSH_EVERY_SECONDS:
        return
    from cueapi.models import MetricSample

    with _lock:
        deltas = dict(_pending)
        _pending.clear()
    _last_flush = time.monotonic()
    if not deltas:
        return
    try:
        _add_all(MetricSample, sorted(deltas.items()))
    except Exception:
        with _lock:
            for key, delta in deltas.items():
                _pending[key] += delta
        raise


def _add_all(model, deltas: list) -> None:
    """Add every delta in one statement: an upsert that creates a new series or adds to it
    (PostgreSQL and SQLite both have INSERT … ON CONFLICT). Rows in a fixed order, so two
    processes flushing at once wait for each other instead of deadlocking."""
    table = connection.ops.quote_name(model._meta.db_table)
    rows = ", ".join(["(%s, %s, %s)"] * len(deltas))
    params = [value for (name, labels), delta in deltas for value in (name, labels, delta)]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} (name, labels, value) VALUES {rows} "
                       f"ON CONFLICT (name, labels) DO UPDATE SET value = {table}.value + excluded.value", params)


def discard_pending() -> None:
    """Forget unflushed events (tests start from a clean slate)."""
    with _lock:
        _pending.clear()
