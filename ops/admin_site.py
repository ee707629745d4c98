"""The operators' dashboard: Django admin with an overview on its home page."""

from datetime import timedelta

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from executions.selectors import Verdict
from ops import chart, overview


class CueAdminSite(admin.AdminSite):
    site_header = "CueAPI operations"
    site_title = "CueAPI"
    index_title = "Overview"
    index_template = "admin/cueapi_index.html"
    # The model list down the left of every page costs a list ~250 px of its width: at 1400 px
    # the execution list's last column (why it failed) fell off the screen. "Home" has it all.
    enable_nav_sidebar = False

    def index(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        now = timezone.now()
        facts = overview.collect(now)
        day_ago = (now - timedelta(hours=24)).strftime("%Y-%m-%d %H:%M:%S")
        context = {
            "overview": facts,
            "verdict_rows": _verdict_rows(facts["verdicts_24h"]),
            "engine_rows": [_engine_row(name, state) for name, state in facts["engine"].items()],
            "recent_failures": facts["recent_failures"],
            "since_24h": day_ago,
            "charts": chart.overview_charts(now),
            **(extra_context or {}),
        }
        return super().index(request, context)


def _verdict_rows(counts: dict[str, int]) -> list[tuple[str, str, int]]:
    """(verdict, label, count) in Verdict's order, those with executions only."""
    return [(verdict.value, verdict.label, counts[verdict]) for verdict in Verdict if counts.get(verdict)]


def _engine_row(name: str, state: dict) -> dict:
    age = state["seconds_ago"]
    health = "never seen" if age is None else "stale" if state["stale"] else "ok"
    return {"name": name, "health": health, "seconds_ago": None if age is None else round(age, 1),
            "cycle_duration_ms": state["cycle_duration_ms"]}
