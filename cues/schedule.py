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

import copy
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache, lru_cache, wraps
from zoneinfo import ZoneInfo, available_timezones

from croniter import croniter

UTC = timezone.utc
MAX_CRON_LENGTH = 100  # the column's width
CATCH_UP_MAX_FIRED = 100
# Missed slots recorded per planning (the oldest); missed_not_recorded says when there were more.
MISSED_MAX_RECORDED = 100
ON_TIME_GRACE = timedelta(seconds=60)

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


def normalize_cron(expr: str) -> str:
    """Aliases expanded, whitespace collapsed; ScheduleError if croniter rejects it."""
    return _parse(expr)[0]


def _parse(expr):
    """(normalized text, a parsed croniter to copy); ScheduleError if croniter rejects it."""
    if not isinstance(expr, str) or not expr.strip():
        raise ScheduleError("Cron expression is required for recurring schedules")
    if len(expr) > MAX_CRON_LENGTH:
        raise ScheduleError("Invalid cron expression")
    return _parse_text(" ".join(expr.split()))


@lru_cache(maxsize=1024)
def _parse_text(text):
    """Cached: parsing costs more than the steps of a whole plan."""
    text = ALIASES.get(text.lower(), text)
    if len(text.split(" ")) not in (5, 6):
        raise ScheduleError("Invalid cron expression")
    try:
        cron = croniter(text, datetime(2000, 1, 1))
        # Also catches expressions that parse but never fire (`0 0 30 2 *`).
        cron.get_next(datetime)
    except (ValueError, KeyError, TypeError, OverflowError):
        raise ScheduleError("Invalid cron expression") from None
    return text, cron


def min_interval_seconds(expr: str) -> int:
    """The shortest wall-clock time between two firings, computed from the cron's fields.

    A cron fires at every time of day in hours x minutes x seconds (0 for 5 fields) on each
    day it matches. Two consecutive firings first differ at one level (second, minute,
    hour or day); their gap is that level's smallest step minus how far the finer levels
    wind back from their last value to their first (`* * * * * 10,50`: :50 -> :10 of the
    next minute is 60 - 40 = 20 s). A day change counts as one day, as if the cron matched
    two days in a row.
    """
    fields = _parse(expr)[1].expanded
    seconds = fields[5] if len(fields) == 6 else [0]
    # (values, how many there can be, seconds each); the last level is a change of day.
    levels = [(seconds, 60, 1), (fields[0], 60, 60), (fields[1], 24, 3600), ([0, 1], 2, 86400)]
    shortest, wound_back = None, 0
    for values, size, unit in levels:
        values = sorted(range(size) if values == ["*"] else set(values))
        steps = [b - a for a, b in zip(values, values[1:])]
        if steps:
            gap = min(steps) * unit - wound_back
            shortest = gap if shortest is None else min(shortest, gap)
        wound_back += (values[-1] - values[0]) * unit
    return shortest


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


def _clock_change(wall, zone):
    """The wall-time range [start, end) a clock change skips or repeats, if `wall` is in one."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return None
    length = abs(second - first)
    change = _transition(min(first, second), max(first, second), zone)
    wall_after_change = change.astimezone(zone).replace(tzinfo=None)
    if second < first:  # skipped (spring): the wall clock jumps to wall_after_change
        return wall_after_change - length, wall_after_change
    return wall_after_change, wall_after_change + length  # repeated (autumn)


# A step lands in a clock change at most once per direction before it is jumped over.
_MAX_STEPS = 4


class _Schedule:
    """One cron in one zone. Each fire costs a few croniter steps, however often it fires.

    Wall time and real time run in the same order except where a clock change skips or
    repeats wall times; those cases are handled by jumping over the change, never by
    walking through it slot by slot.
    """

    def __init__(self, expr, tz_name):
        self.text, parsed = _parse(expr)
        self.zone = get_zone(tz_name)
        self.interval_style = _is_interval_style(self.text)
        # Our own copy, repositioned at each step. Deep: croniter rewrites its nth-weekday
        # table in place on first use, and the parsed one is shared by every thread.
        self._cron = copy.deepcopy(parsed)

    def _step(self, wall, forward):
        """The matching wall time strictly after (or before) `wall`."""
        self._cron.set_current(wall, force=True)
        return self._cron.get_next(datetime) if forward else self._cron.get_prev(datetime)

    def _instants(self, wall):
        return _instants(wall, self.zone, self.interval_style)

    def next_after(self, moment: datetime) -> datetime:
        local = moment.astimezone(self.zone)
        wall = local.replace(tzinfo=None)
        wall_candidate = self._step(wall, forward=True)
        for _ in range(_MAX_STEPS):
            later = [instant for instant in self._instants(wall_candidate) if instant > moment]
            if later:
                best = later[0]
                break
            # In a skipped range (interval jobs), or a repeated one already passed (fixed-time jobs).
            _, end = _clock_change(wall_candidate, self.zone)
            wall_candidate = self._step(end - _TICK, forward=True)
        else:
            raise ScheduleError("No next fire time found")
        repeated = _clock_change(wall, self.zone)
        if repeated and local.fold == 0 and self.interval_style:
            # The wall clock will run through the repeated range again: interval jobs fire there too.
            start, end = repeated
            again = self._step(start - _TICK, forward=True)
            if again < end:
                best = min(best, again.replace(tzinfo=self.zone, fold=1).astimezone(UTC))
        return best

    def previous_at_or_before(self, moment: datetime) -> datetime:
        local = moment.astimezone(self.zone)
        wall = local.replace(tzinfo=None)
        wall_candidate = self._step(wall + _TICK, forward=False)
        for _ in range(_MAX_STEPS):
            earlier = [instant for instant in self._instants(wall_candidate) if instant <= moment]
            if earlier:
                best = earlier[-1]
                break
            start, _ = _clock_change(wall_candidate, self.zone)  # a skipped range (interval jobs)
            wall_candidate = self._step(start, forward=False)
        else:
            raise ScheduleError("No previous fire time found")
        repeated = _clock_change(wall, self.zone)
        if repeated and local.fold == 1:
            # Later wall times of the repeated range already ran, in its first pass.
            start, end = repeated
            first_pass = self._step(end, forward=False)
            if first_pass >= start:
                best = max(best, first_pass.replace(tzinfo=self.zone, fold=0).astimezone(UTC))
        return best

    def fires_between(self, after, until, limit):
        found = []
        moment = after
        while True:
            moment = self.next_after(moment)
            if moment > until:
                return found, False
            if len(found) == limit:
                return found, True
            found.append(moment)

    def latest_fires(self, after, until, limit):
        found = []
        moment = until
        while len(found) < limit:
            moment = self.previous_at_or_before(moment)
            if moment <= after:
                break
            found.append(moment)
            moment -= _TICK
        return found[::-1]


_TICK = timedelta(microseconds=1)


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


@_one_error_type
def next_fire(expr: str, tz_name: str, after: datetime) -> datetime:
    """The first instant strictly after `after` at which the cron fires, in UTC."""
    return _Schedule(expr, tz_name).next_after(after)


@_one_error_type
def previous_fire(expr: str, tz_name: str, at_or_before: datetime) -> datetime:
    """The last instant at or before `at_or_before` at which the cron fires, in UTC."""
    return _Schedule(expr, tz_name).previous_at_or_before(at_or_before)


@_one_error_type
def fires_between(expr: str, tz_name: str, after: datetime, until: datetime, limit: int):
    """Up to `limit` fire instants in (after, until], oldest first, and whether more exist."""
    return _Schedule(expr, tz_name).fires_between(after, until, limit)


@_one_error_type
def latest_fires(expr: str, tz_name: str, after: datetime, until: datetime, limit: int) -> list:
    """Up to `limit` of the most recent fire instants in (after, until], oldest first."""
    return _Schedule(expr, tz_name).latest_fires(after, until, limit)


@dataclass
class CatchUp:
    """What to do with a recurring cue whose `next_run` is due (DESIGN.md §3.13)."""

    fire: list = field(default_factory=list)  # slots to fire now, oldest first
    missed: list = field(default_factory=list)  # slots to record as `missed`
    missed_not_recorded: bool = False  # more slots were missed than MISSED_MAX_RECORDED
    next_run: datetime | None = None  # the first slot after `now`


@_one_error_type
def plan_catch_up(*, expr: str, tz_name: str, due: datetime, now: datetime, policy: str) -> CatchUp:
    """Decide which due slots fire and which are recorded as missed.

    `due` is the cue's stored next_run (<= now); later slots up to `now` were missed while
    the engine was not running. The latest slot, if under ON_TIME_GRACE late, is on time
    under every policy: normal operation is "fire the one due slot". At most
    CATCH_UP_MAX_FIRED slots fire and MISSED_MAX_RECORDED are recorded (the oldest first);
    `missed_not_recorded` says some were left out of the record. The cost is a few croniter
    steps per slot returned, whatever the time since `due`.
    """
    schedule = _Schedule(expr, tz_name)
    if policy == "all":
        just_before_due = due - _TICK
        fire = schedule.latest_fires(just_before_due, now, CATCH_UP_MAX_FIRED)
    else:
        latest = max(due, schedule.previous_at_or_before(now))
        on_time = policy != "none" or now - latest <= ON_TIME_GRACE
        fire = [latest] if on_time else []
    first_fired = fire[0] if fire else None
    candidates = [due] if due != first_fired else []
    later, more = schedule.fires_between(due, first_fired or now, MISSED_MAX_RECORDED)
    missed = [slot for slot in candidates + later if first_fired is None or slot < first_fired]
    return CatchUp(
        fire=fire,
        missed=missed[:MISSED_MAX_RECORDED],
        missed_not_recorded=more or len(missed) > MISSED_MAX_RECORDED,
        next_run=schedule.next_after(now),
    )


def jitter_offset(cue_id: str, slot: datetime, jitter_seconds: int) -> timedelta:
    """A cue's delay for one slot, in [0, jitter_seconds] whole seconds: a pure function of
    (cue id, slot), so every poller and every API answer computes the same instant."""
    if not jitter_seconds:
        return timedelta(0)
    digest = hashlib.sha256(f"{cue_id}|{slot.astimezone(UTC).isoformat()}".encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % (jitter_seconds + 1))


@_one_error_type
def next_bounded_slot(expr: str, tz_name: str, after: datetime, *, start_at: datetime | None = None,
                      end_at: datetime | None = None) -> datetime | None:
    """The first slot strictly after `after` and not before `start_at`; None once it would be
    after `end_at` (both bounds inclusive)."""
    if start_at is not None and after < start_at:
        after = start_at - _TICK
    slot = _Schedule(expr, tz_name).next_after(after)
    return None if end_at is not None and slot > end_at else slot
