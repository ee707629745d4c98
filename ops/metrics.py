"""GET /metrics, the reading side of cueapi/metrics.py: the counters the engine processes
flushed to the database, plus the current state (ops/overview.py), read on each scrape."""

import hmac
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from cueapi.errors import error_response
from cueapi.metrics import COUNTERS, HISTOGRAMS, parse_labels
from cueapi.models import MetricSample
from ops import overview


class DatabaseCollector:
    """Reads the flushed counters and the current state on each scrape."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        stored = defaultdict(dict)
        for name, labels, value in MetricSample.objects.values_list("name", "labels", "value"):
            stored[name][labels] = value
        yield from self._counters(stored)
        yield from self._histograms(stored)
        yield from self._state(now)

    def _counters(self, stored: dict) -> Iterator[Metric]:
        for name, documentation in COUNTERS.items():
            family = CounterMetricFamily(name, documentation, labels=_label_names(stored[f"{name}_total"]))
            for labels, value in sorted(stored[f"{name}_total"].items()):
                family.add_metric(_label_values(labels), value)
            yield family

    def _histograms(self, stored: dict) -> Iterator[Metric]:
        for name, documentation in HISTOGRAMS.items():
            family = HistogramMetricFamily(name, documentation)
            buckets = {dict(parse_labels(labels))["le"]: value for labels, value in stored[f"{name}_bucket"].items()}
            if buckets:
                ordered = sorted(buckets.items(), key=lambda item: float(item[0]))
                family.add_metric([], ordered, sum_value=stored[f"{name}_sum"].get("", 0.0))
            yield family

    def _state(self, now: datetime) -> Iterator[Metric]:
        yield _gauge("cueapi_cues", "Cues by status.", "status", overview.cue_counts())
        yield _gauge("cueapi_executions_in_flight", "Executions not finished yet, by status.", "status",
                     overview.in_flight_counts())
        yield _gauge("cueapi_executions_last_24h", "Executions created in the last 24 hours, by delivery status "
                     "(cueapi_execution_verdicts_last_24h: by outcome).", "status",
                     overview.executions_since(now - timedelta(hours=24)))
        yield _gauge("cueapi_execution_verdicts_last_24h",
                     "Executions created in the last 24 hours, by verdict (the handler's outcome when it "
                     "reported one, else the delivery).", "verdict", overview.verdicts_since(now - timedelta(hours=24)))
        yield _gauge("cueapi_executions_waiting_for_outcome", "Delivered executions whose outcome is due.",
                     None, overview.waiting_for_outcome())
        yield _gauge("cueapi_outbox_depth", "Webhook sends waiting for a dispatcher.", None, overview.outbox_depth())
        yield _gauge("cueapi_workers", "Workers by heartbeat state (active, stale, dead: the GET /v1/workers thresholds).",
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


def _gauge(name: str, documentation: str, label: str | None, values: dict | int) -> GaugeMetricFamily:
    if label is None:
        return GaugeMetricFamily(name, documentation, value=values)
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _label_names(series: dict) -> list[str]:
    first = next(iter(series), "")
    return [key for key, _ in parse_labels(first)]


def _label_values(labels: str) -> list[str]:
    return [value for _, value in parse_labels(labels)]


def metrics_view(request: HttpRequest) -> HttpResponse:
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
