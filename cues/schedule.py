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
from functools import cache, lru_cache, wraps
from zoneinfo import ZoneInfo, available_timezones

from croniter import croniter

UTC = timezone.utc
MAX_CRON_LENGTH = 100  # the column's width
CATCH_UP_MAX_FIRED = 100
# Missed slots recorded per planning: with the cap on fired ones, a planning costs at most a
# few hundred croniter steps however long the engine was down and however often the cron fires.
MISSED_MAX_RECORDED = 100
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
    """The schedule can't be computed; the one error schedule math raises."""


def _one_error_type(function):
    """Whatever goes wrong in schedule math on stored data (a zone the installed tzdata no
    longer has, a croniter error after an upgrade, an overflow near year 9999) comes out as
    ScheduleError, so callers handle one type."""
    @wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ScheduleError:
            raise
        except Exception as exc:  # noqa: BLE001 - turned into the one type callers handle
            raise ScheduleError(f"schedule math failed: {type(exc).__name__}") from exc
    return wrapper


@cache
def _zone_names():
    return {name.lower(): name for name in available_timezones()}


def get_zone(name):
    """The ZoneInfo for an IANA name (any letter case, as the reference's pytz allows)."""
    canonical = _zone_names().get(name.lower()) if isinstance(name, str) else None
    if canonical is None:
        raise ScheduleError(f"Unknown timezone: '{name}'")
    try:
        return ZoneInfo(canonical)
    except (ValueError, OSError):  # listed, but its tzdata file is gone or broken
        raise ScheduleError(f"Unknown timezone: '{name}'") from None


@lru_cache(maxsize=4096)
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


def _field_values(values, size):
    return list(range(size)) if values == ["*"] else sorted({int(v) for v in values})


def _has_adjacent(values, size):
    present = set(_field_values(values, size))
    return any((v + 1) % size in present for v in present)


def min_interval_seconds(expr):
    """The shortest time between two consecutive firings of the cron, in seconds: exact from
    the seconds (six-field crons, the last field), minutes and hours fields; a day for crons
    that fire at most once a day. No clock and no walking of slots.

    >>> min_interval_seconds("*/15 * * * *"), min_interval_seconds("* * * * * */10")
    (900, 10)
    """
    fields = croniter(normalize_cron(expr), datetime(2000, 1, 1)).expanded
    levels = [(fields[5] if len(fields) == 6 else [0], 60, 1), (fields[0], 60, 60), (fields[1], 24, 3600)]
    for i, (values, size, unit) in enumerate(levels):
        present = _field_values(values, size)
        if len(present) > 1:
            gaps = [b - a for a, b in zip(present, present[1:])]
            # From the last value round to the first: only when the next field up can fire
            # in two adjacent units (minute 59 -> minute 0 of the next hour that fires).
            if i + 1 == len(levels) or _has_adjacent(*levels[i + 1][:2]):
                gaps.append(size - present[-1] + present[0])
            return min(gaps) * unit
    return 86_400


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


def _fixed_offset_fire(text, zone, moment, forward):
    """The answer in one croniter step when the zone's offset is the same all through
    `moment` ± _MAX_SHIFT and the answer lies in that window (no DST rule can apply), else None.

    This is nearly always: the window walk below costs one step per slot in five hours (18,000
    for a per-second cron), this costs one."""
    offset = (moment - _MAX_SHIFT).astimezone(zone).utcoffset()
    if (moment + _MAX_SHIFT).astimezone(zone).utcoffset() != offset:
        return None
    wall = (moment + offset).replace(tzinfo=None)
    if forward:
        candidate = croniter(text, wall).get_next(datetime)
    else:  # at or before `moment`: croniter's get_prev is strictly before its start
        candidate = croniter(text, wall.replace(microsecond=0) + timedelta(seconds=1)).get_prev(datetime)
    instant = (candidate - offset).replace(tzinfo=UTC)
    in_window = moment - _MAX_SHIFT <= instant <= moment + _MAX_SHIFT
    right_side = instant > moment if forward else instant <= moment
    return instant if in_window and right_side else None


def _nearest_fire(expr, tz_name, moment, forward):
    text = normalize_cron(expr)
    zone = get_zone(tz_name)
    fast = _fixed_offset_fire(text, zone, moment, forward)
    if fast is not None:
        return fast
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


@_one_error_type
def next_fire(expr, tz_name, after):
    """The first instant strictly after `after` at which the cron fires, in UTC."""
    return _nearest_fire(expr, tz_name, after, forward=True)


@_one_error_type
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


@_one_error_type
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
