"""GET /health and GET /status (SERVER.md §3.1). No auth, not rate-limited.

The keys keep the reference's names: "postgres" is the database (whatever engine), "redis"
is the shared cache (CACHE_URL); `backends` names what actually runs behind them. The engine processes record their last cycle in the cache
(cueapi/heartbeat.py), which is how staleness is seen from here.
"""

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache, caches
from django.db import connection
from django.db.models import Count, Max
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from cueapi.timefmt import ts_iso, ts_z
from cues.models import Cue
from executions.models import DispatchOutbox, Execution, Worker
from ops.overview import engine_state

VERSION = "1.0.0"
POLLER_STALE_SECONDS = 30
STALE_DELIVERING_SECONDS = 300


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means "unreachable"
        return False


def _cache_ok() -> bool:
    try:
        cache.set("health:ping", "1", 10)
        return cache.get("health:ping") == "1"
    except Exception:  # noqa: BLE001
        return False


# Cache backend classes by the names an operator knows them by (CACHE_URL's scheme).
CACHE_BACKEND_NAMES = {
    "DatabaseCache": "database",
    "RedisCache": "redis",
    "LocMemCache": "locmem",
    "FileBasedCache": "file",
    "PyMemcacheCache": "memcached",
    "PyLibMCCache": "memcached",
    "DummyCache": "dummy",
}


def _backends() -> dict[str, str]:
    """What runs behind "postgres" and "redis": e.g. {"database": "sqlite", "cache": "database"}."""
    cache_class = type(caches["default"]).__name__
    return {"database": connection.vendor, "cache": CACHE_BACKEND_NAMES.get(cache_class, cache_class)}


def _poller_state() -> tuple[str, dict]:
    """("ok"|"stale"|"unknown", details dict)."""
    stats = cache.get_many(["poller:last_run", "poller:cues_processed", "poller:cycle_duration_ms"])
    last_run = stats.get("poller:last_run")
    if last_run is None:
        return "unknown", {"status": "unknown"}
    seconds_ago = int(time.time() - datetime.fromisoformat(last_run).timestamp())
    details = {"last_run": last_run, "seconds_ago": seconds_ago}
    for key in ("cues_processed", "cycle_duration_ms"):
        if f"poller:{key}" in stats:
            details["cues_last_cycle" if key == "cues_processed" else key] = stats[f"poller:{key}"]
    return ("stale" if seconds_ago > POLLER_STALE_SECONDS else "ok"), details


def _queue_stats() -> dict[str, int]:
    now = timezone.now()
    return {
        "pending_outbox": DispatchOutbox.objects.filter(dispatched_at__isnull=True).count(),
        "stale_executions": Execution.objects.filter(
            status=Execution.Status.DELIVERING, updated_at__lt=now - timedelta(seconds=STALE_DELIVERING_SECONDS)
        ).count(),
        "pending_retries": Execution.objects.filter(
            status__in=[Execution.Status.RETRYING, Execution.Status.RETRY_READY]
        ).count(),
        "pending_worker_claims": Execution.objects.filter(
            status=Execution.Status.PENDING, cue__callback_transport=Cue.Transport.WORKER
        ).count(),
    }


def _workers() -> tuple[dict, str]:
    """Active workers (all users): ({"active_count", "last_heartbeat"?}, state)."""
    active_since = timezone.now() - timedelta(seconds=settings.CUEAPI_WORKER_ACTIVE_SECONDS)
    found = Worker.objects.filter(last_heartbeat__gt=active_since).aggregate(
        active_count=Count("pk"), last_heartbeat=Max("last_heartbeat"))
    block = {"active_count": found["active_count"]}
    if found["active_count"]:
        block["last_heartbeat"] = ts_z(found["last_heartbeat"])
    return block, "ok" if found["active_count"] else "none"


class HealthApi(APIView):
    """`GET /health` is always 200, as the contract says (a load balancer must not drop the API
    because the engine is late). `GET /health?strict=1` is for a monitor of the whole service:
    the same body plus `engine`, and 503 when degraded or when the poller or the dispatcher
    has not finished a cycle within CUEAPI_ENGINE_STALE_SECONDS."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        body = health_report()
        if request.query_params.get("strict", "").lower() not in ("1", "true", "yes"):
            return Response(body)
        body["engine"] = engine_state(timezone.now())
        stale = any(state["stale"] for state in body["engine"].values())
        return Response(body, status=503 if stale or body["status"] != "healthy" else 200)


class StatusApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        body, code = status_report()
        return Response(body, status=code)


def health_report() -> dict:
    db_ok = _database_ok()
    cache_ok = _cache_ok()
    services = {
        "postgres": "ok" if db_ok else "error",
        "redis": "ok" if cache_ok else "error",
        "poller": "unknown",
        "worker": "unknown",
    }
    body = {"status": "healthy" if db_ok and cache_ok else "degraded", "version": VERSION}
    body["timestamp"] = ts_iso(timezone.now())
    body["services"] = services
    body["backends"] = _backends()
    if cache_ok:
        services["poller"], body["poller"] = _poller_state()
        if services["poller"] == "stale":
            body["status"] = "degraded"
    if db_ok:
        try:
            body["workers"], services["worker"] = _workers()
        except Exception:  # noqa: BLE001
            pass
    try:
        body["queue"] = _queue_stats() if db_ok else {}
    except Exception:  # noqa: BLE001
        body["queue"] = {}
    return body


def status_report() -> tuple[dict, int]:
    if not _database_ok():
        body, code = {"status": "down", "reason": "postgres unreachable"}, 503
    elif not _cache_ok():
        body, code = {"status": "down", "reason": "redis unreachable"}, 503
    elif _poller_state()[0] == "stale":
        body, code = {"status": "degraded", "reason": "poller stale"}, 200
    else:
        body, code = {"status": "healthy"}, 200
    return body, code
