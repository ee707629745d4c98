"""Prometheus metrics: engine events counted in each process and flushed to the database,
plus the current state read at scrape time (cueapi/overview.py).

`count()` and `observe()` are cheap (a dict update under a lock); `flush()` writes the
accumulated deltas with `UPDATE … SET value = value + delta`, so any number of poller and
dispatcher processes, in any number of containers, add up correctly. The engine loop flushes
after its cycles, at most once a second, and once more when it stops.
"""

import hmac
import threading
import time
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from cueapi import overview
from cueapi.errors import error_response

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
    "cueapi_cues_parked": "Cues the poller paused because their next run could not be computed.",
}
HISTOGRAMS = {
    "cueapi_fire_lag_seconds": "Due time to execution created, for scheduled slots.",
    "cueapi_delivery_latency_seconds": "Due time to webhook delivered (2xx), for every delivered execution.",
}

_pending = defaultdict(float)
_lock = threading.Lock()
_last_flush = 0.0


def _labels(labels):
    return ",".join(f'{key}="{labels[key]}"' for key in sorted(labels))


def count(name, amount=1, **labels):
    with _lock:
        _pending[(f"{name}_total", _labels(labels))] += amount


def observe(name, seconds, **labels):
    seconds = max(seconds, 0.0)
    with _lock:
        for bound in (*LATENCY_BUCKETS, "+Inf"):
            if bound == "+Inf" or seconds <= bound:
                _pending[(f"{name}_bucket", _labels({**labels, "le": _le(bound)}))] += 1
        _pending[(f"{name}_sum", _labels(labels))] += seconds
        _pending[(f"{name}_count", _labels(labels))] += 1


def _le(bound):
    return bound if bound == "+Inf" else repr(float(bound))


def flush(force=False):
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
        # One transaction (one commit, which matters on SQLite); rows in a fixed order, so
        # two processes flushing at once wait for each other instead of deadlocking.
        with transaction.atomic():
            for (name, labels), delta in sorted(deltas.items()):
                _add(MetricSample, name, labels, delta)
    except Exception:
        with _lock:
            for key, delta in deltas.items():
                _pending[key] += delta
        raise


def _add(model, name, labels, delta):
    series = model.objects.filter(name=name, labels=labels)
    if series.update(value=F("value") + delta):
        return
    try:
        with transaction.atomic():
            model.objects.create(name=name, labels=labels, value=delta)
    except IntegrityError:  # another process created the series meanwhile
        series.update(value=F("value") + delta)


def discard_pending():
    """Forget unflushed events (tests start from a clean slate)."""
    with _lock:
        _pending.clear()


class DatabaseCollector:
    """Reads the flushed counters and the current state on each scrape."""

    def collect(self):
        from cueapi.models import MetricSample

        now = timezone.now()
        stored = defaultdict(dict)
        for name, labels, value in MetricSample.objects.values_list("name", "labels", "value"):
            stored[name][labels] = value
        yield from self._counters(stored)
        yield from self._histograms(stored)
        yield from self._state(now)

    def _counters(self, stored):
        for name, documentation in COUNTERS.items():
            family = CounterMetricFamily(name, documentation, labels=_label_names(stored[f"{name}_total"]))
            for labels, value in sorted(stored[f"{name}_total"].items()):
                family.add_metric(_label_values(labels), value)
            yield family

    def _histograms(self, stored):
        for name, documentation in HISTOGRAMS.items():
            family = HistogramMetricFamily(name, documentation)
            buckets = {dict(_parse(labels))["le"]: value for labels, value in stored[f"{name}_bucket"].items()}
            if buckets:
                ordered = sorted(buckets.items(), key=lambda item: float(item[0]))
                family.add_metric([], ordered, sum_value=stored[f"{name}_sum"].get("", 0.0))
            yield family

    def _state(self, now):
        yield _gauge("cueapi_cues", "Cues by status.", "status", overview.cue_counts())
        yield _gauge("cueapi_executions_in_flight", "Executions not finished yet, by status.", "status",
                     overview.in_flight_counts())
        yield _gauge("cueapi_executions_last_24h", "Executions created in the last 24 hours, by status.", "status",
                     overview.executions_since(now - timedelta(hours=24)))
        yield _gauge("cueapi_executions_waiting_for_outcome", "Delivered executions whose outcome is due.",
                     None, overview.waiting_for_outcome())
        yield _gauge("cueapi_outbox_depth", "Webhook sends waiting for a dispatcher.", None, overview.outbox_depth())
        yield _gauge("cueapi_workers", "Workers by heartbeat state (active < 180 s < stale < 900 s < dead).",
                     "state", overview.worker_counts(now))
        alerts = CounterMetricFamily("cueapi_alerts", "Alerts raised, by type.", labels=["type"])
        for alert_type, n in sorted(overview.alert_counts().items()):
            alerts.add_metric([alert_type], n)
        yield alerts
        age = GaugeMetricFamily("cueapi_engine_last_cycle_age_seconds",
                                "Seconds since each engine process finished a cycle (absent: never seen).",
                                labels=["process"])
        for process, state in overview.engine_state(now).items():
            if state["seconds_ago"] is not None:
                age.add_metric([process], state["seconds_ago"])
        yield age


def _gauge(name, documentation, label, values):
    if label is None:
        return GaugeMetricFamily(name, documentation, value=values)
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _parse(labels):
    """'a="x",b="y"' -> [("a", "x"), ("b", "y")]; label values here never contain , or "."""
    return [(key, value.strip('"')) for key, value in (part.split("=", 1) for part in labels.split(",") if part)]


def _label_names(series):
    first = next(iter(series), "")
    return [key for key, _ in _parse(first)]


def _label_values(labels):
    return [value for _, value in _parse(labels)]


def metrics_view(request):
    """GET /metrics: Bearer CUEAPI_METRICS_TOKEN. Without a configured token the endpoint is
    off (404): the numbers describe every user's traffic."""
    token = settings.CUEAPI_METRICS_TOKEN
    if not token:
        return error_response("http_error", "Not Found", 404)
    if request.method not in ("GET", "HEAD"):
        return error_response("http_error", "Method Not Allowed", 405, headers={"Allow": "GET, HEAD"})
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return error_response("invalid_metrics_token", "Send 'Authorization: Bearer <CUEAPI_METRICS_TOKEN>'", 401)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
