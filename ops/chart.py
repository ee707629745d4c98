"""The admin overview's chart: executions per hour (last 24 h) and per day (last 7 days), split
by outcome, drawn as inline SVG by the template from the geometry computed here (no script, so
the Content-Security-Policy holds)."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from django.db.models import Count
from django.db.models.functions import TruncHour
from django.urls import reverse

from executions.models import Execution
from executions.selectors import Verdict, with_verdict

OUTCOMES = ("success", "failure", "other")  # bottom to top in each bar
WIDTH, HEIGHT = 720, 150  # the drawing, in SVG units (it scales to the page's width)
LEFT, BOTTOM, TOP = 36, 18, 8  # room for the axis labels
BAR_FILL = 0.8  # share of its slot a bar covers; the rest is the gap


# The chart's three colours, from the one verdict rule (executions.selectors.Verdict).
CHART_OUTCOME = {Verdict.SUCCEEDED: "success", Verdict.DELIVERED: "success", Verdict.FAILED: "failure"}


def execution_outcome_counts(*, since: datetime) -> dict[datetime, dict[str, int]]:
    """{hour (UTC): {"success": n, "failure": n, "other": n}} for the executions created since
    `since`, by their verdict: succeeded or delivered with no outcome asked is a success, failed
    is a failure, the rest (in flight, missed, waiting for an outcome or a verification) other."""
    rows = (with_verdict(Execution.objects.filter(created_at__gte=since)).order_by()
            .values_list(TruncHour("created_at", tzinfo=timezone.utc), "verdict").annotate(n=Count("pk")))
    counts: dict[datetime, dict[str, int]] = {}
    for hour, verdict, n in rows:
        counts.setdefault(hour, dict.fromkeys(OUTCOMES, 0))[CHART_OUTCOME.get(verdict, "other")] += n
    return counts


@dataclass
class Segment:
    outcome: str
    count: int
    y: float
    height: float


@dataclass
class Bar:
    x: float
    width: float
    title: str  # the tooltip: the bucket and its counts
    url: str  # the executions of this bucket in the admin list
    segments: list[Segment]
    label: str = ""  # under the axis, on some bars only

    @property
    def center(self) -> float:
        return round(self.x + self.width / 2, 2)


@dataclass
class Chart:
    title: str
    bars: list[Bar]
    totals: dict[str, int]
    top: int  # the count at the top of the axis
    width: int = WIDTH
    height: int = HEIGHT
    axis: dict = field(default_factory=dict)  # coordinates of the axis lines and labels


def overview_charts(now: datetime) -> list["Chart"]:
    """Per hour over the last 24 hours and per day (UTC) over the last 7 days, the current hour
    and day (partial) last; one query."""
    this_hour = now.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    hours = [this_hour - timedelta(hours=23 - i) for i in range(24)]
    today = this_hour.replace(hour=0)
    days = [today - timedelta(days=6 - i) for i in range(7)]
    per_hour = execution_outcome_counts(since=days[0])
    per_day: dict[datetime, dict[str, int]] = {}
    for hour, counts in per_hour.items():
        day = per_day.setdefault(hour.replace(hour=0), dict.fromkeys(OUTCOMES, 0))
        for outcome, n in counts.items():
            day[outcome] += n
    return [
        _chart("Executions per hour, last 24 h", hours, timedelta(hours=1), per_hour,
               label=lambda start: start.strftime("%H:00") if start.hour % 3 == 0 else "",
               name=lambda start: start.strftime("%Y-%m-%d %H:00 UTC")),
        _chart("Executions per day, last 7 days", days, timedelta(days=1), per_day,
               label=lambda start: start.strftime("%a %d"), name=lambda start: start.strftime("%Y-%m-%d")),
    ]


def _chart(title, starts, step, counts, *, label, name) -> Chart:
    empty = dict.fromkeys(OUTCOMES, 0)
    top = max([sum(counts.get(start, empty).values()) for start in starts] + [1])
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT) / len(starts)
    changelist = reverse("admin:executions_execution_changelist")
    bars = []
    for i, start in enumerate(starts):
        bucket = counts.get(start, empty)
        segments, base = [], HEIGHT - BOTTOM
        for outcome in OUTCOMES:
            height = bucket[outcome] / top * plot_height
            base -= height
            segments.append(Segment(outcome, bucket[outcome], round(base, 2), round(height, 2)))
        query = urlencode({"created_at__gte": start.isoformat(),
                           "created_at__lt": (start + step).isoformat()})
        bars.append(Bar(
            x=round(LEFT + i * slot + slot * (1 - BAR_FILL) / 2, 2), width=round(slot * BAR_FILL, 2),
            title=f"{name(start)}: " + ", ".join(f"{bucket[o]} {o}" for o in OUTCOMES),
            url=f"{changelist}?{query}", segments=segments, label=label(start)))
    totals = {outcome: sum(counts.get(start, empty)[outcome] for start in starts) for outcome in OUTCOMES}
    axis = {"x0": LEFT, "x1": WIDTH, "y_top": TOP, "y_base": HEIGHT - BOTTOM,
            "plot_height": plot_height, "label_y": HEIGHT - 4,
            "value_x": LEFT - 4}
    return Chart(title=title, bars=bars, totals=totals, top=top, axis=axis)
