"""A cue's failure streak and its alerts: threshold, repeats, recovery (README "Getting alerted").

State lives in one AlertStreak row per cue (alerts/models.py has the rules). Failures and
successes come from the execution lifecycle's signals, inside the transaction that recorded
the outcome; the row is locked while it changes (SQLite serialises writers), so two outcomes of
one cue recorded at once count twice and alert once. Repeats are time-driven: the poller's
sweep `send_due_repeats`, whose guarded UPDATE lets one poller send each repeat.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F

from alerts import services
from alerts.models import Alert, AlertStreak
from cueapi.rows import fetch, in_list
from cueapi.timefmt import ts_iso
from cues.models import Cue
from executions.models import Execution
from executions.selectors import Verdict, with_verdict

CLEARED = dict(failures=0, successes=0, since=None, alerted_at=None, last_alert_at=None, repeats=0,
               last_execution_id=None, last_error=None, last_success_id=None)


def _locked(cue_id: str, *, create: bool) -> AlertStreak | None:
    if create:
        AlertStreak.objects.get_or_create(cue_id=cue_id)
    return AlertStreak.objects.select_for_update().filter(cue_id=cue_id).first()


def failing_message(cue: Cue, failures: int, error: str | None) -> str:
    return f"Cue '{cue.name}' ({cue.id}) has {failures} consecutive failed executions. Last error: {error or '-'}"


def streak_failed(*, cue: Cue, execution_id, error: str | None, now: datetime) -> Alert | None:
    """A failed outcome of `cue`. The failure that reaches the cue's failure_threshold raises
    `consecutive_failures`, once per streak."""
    with transaction.atomic():
        cue = services.with_alert_settings(cue)
        streak = _locked(cue.pk, create=True)
        streak.failures += 1
        streak.successes = 0
        streak.since = streak.since or now
        if streak.last_success_id is not None and str(streak.last_success_id) == str(execution_id):
            # This execution's 2xx (no outcome expected) was counted as a success and ended the
            # count; its reported failure puts the run of failures back, as their verdicts say.
            failures, first = _failed_in_a_row(cue.pk)
            if failures > streak.failures:
                streak.failures, streak.since = failures, min(streak.since, first)
            streak.last_success_id = None
        streak.last_execution_id, streak.last_error = execution_id, (error or "")[:500] or None
        opened = streak.alerted_at is None and streak.failures >= cue.alert_failure_threshold
        if opened:
            streak.alerted_at = streak.last_alert_at = now
            streak.repeats = 0
        streak.save()
        if not opened:
            return None
        return services.alert_raise(
            user=cue.user, alert_type=Alert.Type.CONSECUTIVE_FAILURES, cue=cue, execution_id=execution_id, now=now,
            message=failing_message(cue, streak.failures, error), metadata={"consecutive_failures": streak.failures})


def _failed_in_a_row(cue_id: str) -> tuple[int, datetime | None]:
    """How many of the cue's latest finished executions failed in a row, by their verdict (at
    most 100, the highest threshold), and when the earliest of them was scheduled."""
    rows = (with_verdict(Execution.objects.filter(cue_id=cue_id))
            .exclude(verdict__in=[Verdict.IN_PROGRESS, Verdict.MISSED])
            .order_by("-created_at", "-scheduled_for").values_list("verdict", "scheduled_for")[:100])
    count, first = 0, None
    for verdict, scheduled_for in rows:
        if verdict != Verdict.FAILED:
            break
        count, first = count + 1, scheduled_for
    return count, first


def streaks_succeeded(*, succeeded: list, now: datetime) -> list[Alert]:
    """Good verdicts, as (cue_id, execution_id) pairs. Before the alert a success ends the
    streak; after it, recovery_threshold successes in a row do, with a `recovered` alert
    (unless notify_recovery is off). Cues with no failures cost one query for the batch."""
    by_cue = {}
    for cue_id, execution_id in succeeded:
        by_cue.setdefault(cue_id, {})[execution_id] = None  # distinct, in order
    # Hand-written (see cueapi.rows): every reported success asks it.
    failing = fetch(f"SELECT cue_id FROM {AlertStreak._meta.db_table} WHERE cue_id IN {in_list(by_cue)} "
                    "AND failures > 0 ORDER BY cue_id", list(by_cue))
    raised = []
    for (cue_id,) in failing:
        with transaction.atomic():
            streak = _locked(cue_id, create=False)
            if streak is None or not streak.failures:
                continue
            executions = [e for e in by_cue[cue_id] if e != streak.last_success_id]
            if not executions:  # this success was counted already
                continue
            count, execution_id = len(executions), executions[-1]
            if streak.alerted_at is None:  # not alerted yet: the failures weren't in a row
                AlertStreak.objects.filter(pk=cue_id).update(**{**CLEARED, "last_success_id": execution_id},
                                                             updated_at=now)
                continue
            cue = Cue.objects.select_related("user").get(pk=cue_id)
            if streak.successes + count < cue.alert_recovery_threshold:
                AlertStreak.objects.filter(pk=cue_id).update(successes=F("successes") + count,
                                                             last_success_id=execution_id, updated_at=now)
                continue
            AlertStreak.objects.filter(pk=cue_id).update(**{**CLEARED, "last_success_id": execution_id},
                                                         updated_at=now)
            if cue.alert_notify_recovery:
                alert = _recovered(cue, streak, execution_id, now)
                if alert is not None:
                    raised.append(alert)
    return raised


def _recovered(cue: Cue, streak: AlertStreak, execution_id, now: datetime) -> Alert | None:
    seconds = max(0, int((now - streak.since).total_seconds()))
    return services.alert_raise(
        user=cue.user, alert_type=Alert.Type.RECOVERED, cue=cue, execution_id=execution_id, now=now,
        severity=Alert.Severity.INFO,
        message=(f"Cue '{cue.name}' ({cue.id}) recovered after {streak.failures} failed executions "
                 f"(failing for {_duration(seconds)} since {ts_iso(streak.since)}). "
                 f"Last error: {streak.last_error or '-'}"),
        metadata={"failures": streak.failures, "failing_since": ts_iso(streak.since), "failing_seconds": seconds})


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h {seconds % 3600 // 60}m"


def send_due_repeats(*, now: datetime) -> int:
    """The poller's sweep: an alerted streak of an active cue with `repeat_every_minutes`
    repeats its alert when that long has passed since the last one. Returns how many were
    raised."""
    open_streaks = (AlertStreak.objects.filter(alerted_at__isnull=False, cue__alert_repeat_minutes__isnull=False,
                                               cue__status=Cue.Status.ACTIVE)
                    .select_related("cue__user").order_by("last_alert_at"))
    return sum(repeat_if_due(streak=streak, now=now) for streak in open_streaks)


def repeat_if_due(*, streak: AlertStreak, now: datetime) -> bool:
    """Repeat the streak's alert (metadata: `repeat` k, the streak's length, since when it
    fails) if it is due, judged on the row as read. A guarded UPDATE on `last_alert_at` decides,
    so of two pollers that read the same row, one sends the repeat."""
    cue = streak.cue
    if streak.last_alert_at + timedelta(minutes=cue.alert_repeat_minutes) > now:
        return False
    with transaction.atomic():
        won = AlertStreak.objects.filter(pk=cue.pk, alerted_at=streak.alerted_at,
                                         last_alert_at=streak.last_alert_at).update(
            last_alert_at=now, repeats=F("repeats") + 1, updated_at=now)
        if not won:
            return False
        repeat = streak.repeats + 1
        services.alert_raise(
            user=cue.user, alert_type=Alert.Type.CONSECUTIVE_FAILURES, cue=cue,
            execution_id=streak.last_execution_id, now=now, dedup=False,
            message=f"{failing_message(cue, streak.failures, streak.last_error)} Failing since "
                    f"{ts_iso(streak.since)} (reminder {repeat}).",
            metadata={"consecutive_failures": streak.failures, "repeat": repeat,
                      "failing_since": ts_iso(streak.since)})
    return True
