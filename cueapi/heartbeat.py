"""The engine processes' heartbeat: after each cycle, run_poller and run_dispatcher record
when it ended (and a few numbers about it) in the shared cache, under `<process>:<name>`.
`/health` and the operators' overview (ops/) read these keys to tell a stale engine."""

from django.core.cache import cache
from django.utils import timezone

from cueapi.timefmt import ts_iso

HEARTBEAT_TTL_SECONDS = 120


def engine_heartbeat(process: str, **stats: int | float) -> None:
    """Called by run_poller / run_dispatcher after each cycle."""
    values = {f"{process}:last_run": ts_iso(timezone.now())}
    values.update({f"{process}:{name}": value for name, value in stats.items()})
    cache.set_many(values, timeout=HEARTBEAT_TTL_SECONDS)
