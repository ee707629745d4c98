"""Alert rules and failure notifications (SERVER.md §4.10, §6; DESIGN.md §3.9).

Run from the signals of executions/signals.py, inside the transaction that changed the
execution: an alert and its notifications exist exactly when the state change does. Nothing
here sends anything: the dispatcher does (alerts/delivery.py), with retries.
"""

import json
import uuid
from datetime import datetime, timedelta

from django.utils import timezone

from accounts.models import User
from accounts.services import user_get_alert_webhook_secret
from alerts.models import Alert, Notification
from cueapi.timefmt import ts_iso
from cues.models import Cue
from executions.models import Execution
from executions.selectors import Verdict, with_verdict

CONSECUTIVE_FAILURES_THRESHOLD = 3
DEDUP_WINDOW = timedelta(minutes=5)
EMAILS_PER_HOUR = 10
DASHBOARD_URL = "https://dashboard.cueapi.ai"


def failure_streak(*, cue_id: str, limit: int) -> int:
    """How many of the cue's latest delivered or failed executions failed in a row (at most
    `limit`), by their verdict (executions/selectors.py): a handler that answers 2xx and
    reports `success: false`, or fails verification, counts as a failure."""
    verdicts = (
        with_verdict(Execution.objects.filter(cue_id=cue_id))
        .exclude(verdict__in=[Verdict.IN_PROGRESS, Verdict.MISSED])
        .order_by("-created_at", "-scheduled_for")
        .values_list("verdict", flat=True)[:limit]
    )
    streak = 0
    for verdict in verdicts:
        if verdict != Verdict.FAILED:
            break
        streak += 1
    return streak


def alert_raise(*, user: User, alert_type: str, message: str, cue_id: str | None = None,
                execution_id: uuid.UUID | None = None, metadata: dict | None = None,
                now: datetime | None = None) -> Alert | None:
    """Create an alert unless the same one was raised in the last 5 minutes; queue its webhook
    and email. Returns the alert, or None when deduplicated."""
    now = now or timezone.now()
    recent = Alert.objects.filter(user=user, alert_type=alert_type, created_at__gte=now - DEDUP_WINDOW)
    recent = recent.filter(execution_id=execution_id) if execution_id else recent.filter(cue_id=cue_id)
    if recent.exists():
        return None
    alert = Alert.objects.create(user=user, alert_type=alert_type, message=message, cue_id=cue_id,
                                 execution_id=execution_id, metadata=metadata)
    if user.alert_webhook_url:
        body = json.dumps({
            "alert_id": str(alert.id), "alert_type": alert_type, "cue_id": cue_id,
            "created_at": ts_iso(alert.created_at), "execution_id": str(execution_id) if execution_id else None,
            "message": message, "metadata": metadata or {}, "severity": alert.severity,
        }, sort_keys=True, default=str)
        user_get_alert_webhook_secret(user=user)  # created on first need, kept from then on
        _queue(user=user, alert=alert, kind=Notification.Kind.ALERT_WEBHOOK, url=user.alert_webhook_url,
               body=body, now=now)
    _queue_email(user=user, alert=alert, subject=f"CueAPI alert: {alert_type.replace('_', ' ')}",
                 text=f"{message}\n\nCue: {cue_id or '-'}\nExecution: {execution_id or '-'}\n"
                      f"Time: {ts_iso(now)}\n", now=now)
    return alert


def _queue(*, user: User, kind: str, body: str, now: datetime, alert: Alert | None = None, url: str | None = None,
           recipient: str | None = None, subject: str | None = None) -> None:
    Notification.objects.create(user=user, alert=alert, kind=kind, url=url, recipient=recipient,
                                subject=subject, body=body, available_at=now)


def _queue_email(*, user: User, subject: str, text: str, now: datetime, alert: Alert | None = None) -> None:
    """An email to the account's address, at most EMAILS_PER_HOUR an hour (no mail floods)."""
    sent_lately = Notification.objects.filter(user=user, kind=Notification.Kind.EMAIL,
                                              created_at__gte=now - timedelta(hours=1)).count()
    if sent_lately >= EMAILS_PER_HOUR:
        return
    _queue(user=user, alert=alert, kind=Notification.Kind.EMAIL, recipient=user.email, subject=subject,
           body=text, now=now)


def on_execution_failed(*, execution: Execution, cue: Cue, now: datetime, reason: str | None,
                        endpoint_gone: bool = False, **_) -> None:
    """The cue's on_failure actions, then the consecutive-failures rule (or, when the failure
    paused the cue because its endpoint answered 410 Gone, one alert saying so instead)."""
    user = cue.user
    on_failure = cue.on_failure or {}
    last_error = (execution.error_message or execution.outcome_error or reason or "")[:500]
    if on_failure.get("webhook"):
        body = json.dumps({
            "event": "cue.failed", "cue_id": cue.id, "cue_name": cue.name, "attempts": execution.attempts,
            "last_http_status": execution.http_status, "last_error": last_error, "failed_at": ts_iso(now),
            "dashboard_url": DASHBOARD_URL,
        }, sort_keys=True)
        _queue(user=user, kind=Notification.Kind.FAILURE_WEBHOOK, url=on_failure["webhook"], body=body, now=now)
    if on_failure.get("email", True):
        _queue_email(
            user=user, subject=f"CueAPI: cue '{cue.name}' failed", now=now,
            text=(f"Your cue '{cue.name}' ({cue.id}) failed.\n\nExecution: {execution.id}\n"
                  f"Scheduled for: {ts_iso(execution.scheduled_for)}\nAttempts: {execution.attempts}\n"
                  f"Last HTTP status: {execution.http_status if execution.http_status is not None else '-'}\n"
                  f"Last error: {last_error or '-'}\nFailed at: {ts_iso(now)}\n"),
        )
    if endpoint_gone:  # raised once: only the failure that paused the cue says so
        alert_raise(user=user, alert_type=Alert.Type.CONSECUTIVE_FAILURES, cue_id=cue.id,
                    execution_id=execution.id, now=now,
                    message=(f"Cue '{cue.name}' ({cue.id}) was paused: its callback URL answered 410 Gone. "
                             f"Fix the callback and resume the cue. Last error: {last_error or '-'}"),
                    metadata={"reason": "endpoint_gone", "http_status": 410,
                              "consecutive_failures": failure_streak(cue_id=cue.id, limit=100)})
        return
    streak = failure_streak(cue_id=cue.id, limit=CONSECUTIVE_FAILURES_THRESHOLD + 1)
    if streak == CONSECUTIVE_FAILURES_THRESHOLD:  # once per streak: the 4th failure is quiet
        alert_raise(user=user, alert_type=Alert.Type.CONSECUTIVE_FAILURES, cue_id=cue.id,
                    execution_id=execution.id, now=now,
                    message=(f"Cue '{cue.name}' ({cue.id}) has {streak} consecutive failed executions. "
                             f"Last error: {last_error or '-'}"),
                    metadata={"consecutive_failures": streak})


def on_outcome_recorded(*, execution_id: uuid.UUID, cue: Cue, state: str, now: datetime, **_) -> None:
    if state == "verification_failed":
        alert_raise(user=cue.user, alert_type=Alert.Type.VERIFICATION_FAILED, cue_id=cue.id,
                    execution_id=execution_id, now=now,
                    message=(f"Cue '{cue.name}' ({cue.id}): execution {execution_id} reported success but failed "
                             f"verification. Last error: required evidence missing "
                             f"(verification mode {cue.verification_mode})."),
                    metadata={"outcome_state": "verification_failed", "transport": cue.callback_transport})


def on_outcome_timed_out(*, execution: Execution, cue: Cue, now: datetime, **_) -> None:
    seconds = execution.outcome_deadline_seconds
    alert_raise(user=cue.user, alert_type=Alert.Type.OUTCOME_TIMEOUT, cue_id=cue.id, execution_id=execution.id,
                now=now, message=(f"Cue '{cue.name}' ({cue.id}): execution {execution.id} was delivered but "
                                  f"reported no outcome within {seconds}s. Last error: {execution.error_message}"),
                metadata={"outcome_deadline_seconds": seconds, "transport": cue.callback_transport})
