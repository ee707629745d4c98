"""Schedule math as pure functions: no ORM, no clock. Callers pass every instant.

Cron expressions are evaluated on the cue's wall clock (IANA zone) with croniter, and each
matching wall time is turned into real instants by the DST rules of DESIGN.md §3.14:

* Interval-style jobs (hour field `*`, e.g. `*/15 * * * *`, `@hourly`) follow real elapsed
  time: a wall time that occurs twice (autumn) fires twice, one that never occurs (spring)
  does not fire. No gap, no duplicate in real time.
* Fixed-time jobs (a specific hour, e.g. `30 2 * * *`) run once per matching day: in an
  autumn overlap at the first occurrence only; in a spring gap at the first valid instant
  after the gap (the moment of the transition).

>>> from datetime import datetime, timezone as tz
>>> next_fire("30 2 * * *", "America/New_York", datetime(2026, 3, 7, 12, tzinfo=tz.utc))
datetime.datetime(2026, 3, 8, 7, 0, tzinfo=datetime.timezone.utc)
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from croniter import croniter

UTC = timezone.utc
MAX_CRON_LENGTH = 100  # the column's width
CATCH_UP_MAX_FIRED = 100
MISSED_MAX_RECORDED = 1000
ON_TIME_GRACE = timedelta(seconds=60)
# Wall clocks move by at most this much at a transition (2 h historically, e.g. Antarctica).
_MAX_SHIFT = timedelta(hours=2, minutes=30)
_MAX_CANDIDATES = 100_000

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class ScheduleError(ValueError):
    pass


@cache
def _zone_names():
    return {name.lower(): name for name in available_timezones()}


def get_zone(name):
    """The ZoneInfo for an IANA name (any letter case, as the reference's pytz allows)."""
    canonical = _zone_names().get(name.lower()) if isinstance(name, str) else None
    if canonical is None:
        raise ScheduleError(f"Unknown timezone: '{name}'")
    return ZoneInfo(canonical)


def normalize_cron(expr):
    """Aliases expanded, whitespace collapsed; ScheduleError if croniter rejects it."""
    if not isinstance(expr, str) or not expr.strip():
        raise ScheduleError("Cron expression is required for recurring schedules")
    text = " ".join(expr.split())
    text = ALIASES.get(text.lower(), text)
    fields = text.split(" ")
    if len(expr) > MAX_CRON_LENGTH or len(fields) not in (5, 6):
        raise ScheduleError("Invalid cron expression")
    try:
        # Also catches expressions that parse but never fire (`0 0 30 2 *`).
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except (ValueError, KeyError, TypeError, OverflowError):
        raise ScheduleError("Invalid cron expression") from None
    return text


def _is_interval_style(normalized):
    """Hour field `*`: the job follows real elapsed time across DST changes."""
    return normalized.split(" ")[1] in ("*", "*/1")


def _instants(wall, zone, interval_style):
    """The real instants (UTC) at which wall-clock time `wall` fires, per the DST rules."""
    first = wall.replace(tzinfo=zone, fold=0)
    second = wall.replace(tzinfo=zone, fold=1)
    first_utc, second_utc = first.astimezone(UTC), second.astimezone(UTC)
    exists = first_utc.astimezone(zone).replace(tzinfo=None) == wall
    if not exists:  # in a spring-forward gap
        if interval_style:
            return []
        return [_transition(second_utc, first_utc, zone)]
    if first_utc != second_utc and interval_style:  # an autumn overlap
        return [first_utc, second_utc]
    return [first_utc]


def _transition(before, after, zone):
    """The instant in (before, after] at which the zone's offset changes, to the second."""
    offset = before.astimezone(zone).utcoffset()
    low, high = before, after
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def _nearest_fire(expr, tz_name, moment, forward):
    text = normalize_cron(expr)
    zone = get_zone(tz_name)
    interval_style = _is_interval_style(text)
    wall_moment = moment.astimezone(zone).replace(tzinfo=None)
    shift = _MAX_SHIFT if forward else -_MAX_SHIFT
    candidates = croniter(text, wall_moment - shift)
    step = candidates.get_next if forward else candidates.get_prev
    best = best_wall = None
    for _ in range(_MAX_CANDIDATES):
        wall = step(datetime)
        if best_wall is not None and (wall > best_wall + shift if forward else wall < best_wall + shift):
            break
        for instant in _instants(wall, zone, interval_style):
            if forward and instant > moment and (best is None or instant < best):
                best, best_wall = instant, wall
            if not forward and instant <= moment and (best is None or instant > best):
                best, best_wall = instant, wall
    if best is None:
        raise ScheduleError("Invalid cron expression")
    return best


def next_fire(expr, tz_name, after):
    """The first instant strictly after `after` at which the cron fires, in UTC."""
    return _nearest_fire(expr, tz_name, after, forward=True)


def previous_fire(expr, tz_name, at_or_before):
    """The last instant at or before `at_or_before` at which the cron fires, in UTC."""
    return _nearest_fire(expr, tz_name, at_or_before, forward=False)


def fires_between(expr, tz_name, after, until, limit):
    """Up to `limit` fire instants in (after, until], oldest first, and whether more exist."""
    found = []
    moment = after
    while True:
        moment = next_fire(expr, tz_name, moment)
        if moment > until:
            return found, False
        if len(found) == limit:
            return found, True
        found.append(moment)


def latest_fires(expr, tz_name, after, until, limit):
    """Up to `limit` of the most recent fire instants in (after, until], oldest first."""
    found = []
    moment = until
    while len(found) < limit:
        moment = previous_fire(expr, tz_name, moment)
        if moment <= after:
            break
        found.append(moment)
        moment -= timedelta(microseconds=1)
    return found[::-1]


@dataclass
class CatchUp:
    """What to do with a recurring cue whose `next_run` is due (DESIGN.md §3.13)."""

    fire: list = field(default_factory=list)  # slots to fire now, oldest first
    missed: list = field(default_factory=list)  # slots to record as `missed`
    missed_not_recorded: bool = False  # more slots were missed than MISSED_MAX_RECORDED
    next_run: datetime | None = None  # the first slot after `now`


def plan_catch_up(*, expr, tz_name, due, now, policy):
    """Decide which due slots fire and which are recorded as missed.

    `due` is the cue's stored next_run (<= now); later slots up to `now` were missed while
    the engine was not running. The latest slot, if under ON_TIME_GRACE late, is on time
    under every policy: normal operation is "fire the one due slot". At most
    CATCH_UP_MAX_FIRED slots fire and MISSED_MAX_RECORDED are recorded (the oldest first);
    `missed_not_recorded` says some were left out of the record.
    """
    if policy == "all":
        just_before_due = due - timedelta(microseconds=1)
        fire = latest_fires(expr, tz_name, just_before_due, now, CATCH_UP_MAX_FIRED)
    else:
        latest = max(due, previous_fire(expr, tz_name, now))
        on_time = policy != "none" or now - latest <= ON_TIME_GRACE
        fire = [latest] if on_time else []
    first_fired = fire[0] if fire else None
    candidates = [due] if due != first_fired else []
    later, more = fires_between(expr, tz_name, due, first_fired or now, MISSED_MAX_RECORDED)
    missed = [slot for slot in candidates + later if first_fired is None or slot < first_fired]
    return CatchUp(
        fire=fire,
        missed=missed[:MISSED_MAX_RECORDED],
        missed_not_recorded=more or len(missed) > MISSED_MAX_RECORDED,
        next_run=next_fire(expr, tz_name, now),
    )
