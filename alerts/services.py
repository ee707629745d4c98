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
from alerts import messages, streaks
from alerts.models import Alert, AlertChannel, Notification
from cueapi.timefmt import ts_iso
from cues.models import Cue
from executions.models import Execution

DEDUP_WINDOW = timedelta(minutes=5)
EMAILS_PER_HOUR = 10
DASHBOARD_URL = "https://dashboard.cueapi.ai"


def alert_raise(*, user: User, alert_type: str, message: str, cue_id: str | None = None,
                execution_id: uuid.UUID | None = None, metadata: dict | None = None,
                now: datetime | None = None, cue: Cue | None = None, severity: str = Alert.Severity.WARNING,
                dedup: bool = True) -> Alert | None:
    """Create an alert unless the same one was raised in the last 5 minutes (`dedup=False`:
    the caller's guarded update already decided, as for repeats); queue it to its channels.
    With the `cue`, its alert settings apply: muted (recorded, never sent) or sent to the
    cue's channels. Returns the alert, or None when deduplicated."""
    now = now or timezone.now()
    cue_id = cue.pk if cue is not None else cue_id
    if dedup:
        recent = Alert.objects.filter(user=user, alert_type=alert_type, created_at__gte=now - DEDUP_WINDOW)
        recent = recent.filter(execution_id=execution_id) if execution_id else recent.filter(cue_id=cue_id)
        if recent.exists():
            return None
    if cue is not None:
        cue = with_alert_settings(cue)
    muted = cue is not None and cue.alert_muted_until is not None and now < cue.alert_muted_until
    alert = Alert.objects.create(user=user, alert_type=alert_type, message=message, cue_id=cue_id,
                                 execution_id=execution_id, metadata=metadata, severity=severity, muted=muted)
    if not muted:
        _queue_alert(alert, user=user, cue=cue, now=now)
    return alert


ALERT_SETTINGS = ["alert_failure_threshold", "alert_recovery_threshold", "alert_repeat_minutes",
                  "alert_notify_recovery", "alert_muted_until", "alert_channels"]


def with_alert_settings(cue: Cue) -> Cue:
    """The cue with its alert settings as stored now: the engine's copy may predate a PATCH
    (a mute set a minute ago must hold)."""
    stored = Cue.objects.filter(pk=cue.pk).values(*ALERT_SETTINGS).first()
    for field, value in (stored or {}).items():
        setattr(cue, field, value)
    return cue


def _queue_alert(alert: Alert, *, user: User, cue: Cue | None, now: datetime) -> None:
    """One notification per channel: the cue's channels, or (None) all of the user's, with the
    account's alert_webhook_url and email as before channels existed."""
    channels = AlertChannel.objects.filter(user=user).order_by("created_at", "id")
    chosen = cue.alert_channels if cue is not None else None
    cue_name = cue.name if cue is not None else None
    if chosen is not None:
        channels = channels.filter(pk__in=chosen)
    else:
        if user.alert_webhook_url:
            user_get_alert_webhook_secret(user=user)  # created on first need, kept from then on
            _queue(user=user, alert=alert, kind=Notification.Kind.ALERT_WEBHOOK, url=user.alert_webhook_url,
                   body=messages.webhook_body(alert), now=now)
        # The account's email says what an email channel says (the cue, the alert, the last
        # error, the admin link).
        subject, text = messages.email(alert, cue_name)
        _queue_email(user=user, alert=alert, subject=subject, text=text, now=now)
    for channel in channels:
        Notification.objects.create(**channel_notification(alert, channel, cue_name=cue_name), alert=alert,
                                    available_at=now)


def channel_notification(alert: Alert, channel: AlertChannel, *, cue_name: str | None) -> dict:
    """The fields of the notification that tells `channel` about `alert`."""
    fields = {"user_id": channel.user_id, "channel": channel}
    if channel.kind == AlertChannel.Kind.EMAIL:
        subject, text = messages.email(alert, cue_name)
        return {**fields, "kind": Notification.Kind.EMAIL, "recipient": channel.email, "subject": subject,
                "body": text}
    if channel.kind == AlertChannel.Kind.WEBHOOK:
        user_get_alert_webhook_secret(user=channel.user)
        return {**fields, "kind": Notification.Kind.ALERT_WEBHOOK, "url": channel.url,
                "body": messages.webhook_body(alert)}
    render = messages.slack_body if channel.kind == AlertChannel.Kind.SLACK else messages.discord_body
    return {**fields, "kind": channel.kind, "url": channel.url, "body": render(alert, cue_name)}


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
    """The cue's on_failure actions, then the failure streak (alerts/streaks.py); when the
    failure paused the cue because its endpoint answered 410 Gone, first one alert saying so."""
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
        alert_raise(user=user, alert_type=Alert.Type.CONSECUTIVE_FAILURES, cue=cue,
                    execution_id=execution.id, now=now,
                    message=(f"Cue '{cue.name}' ({cue.id}) was paused: its callback URL answered 410 Gone. "
                             f"Fix the callback and resume the cue. Last error: {last_error or '-'}"),
                    metadata={"reason": "endpoint_gone", "http_status": 410})
    # Still a failure of the streak; its own alert, were this the threshold, is the one above
    # (deduplicated: same type, same execution).
    if execution.status != Execution.Status.MISSED:  # never ran (nobody claimed it): no streak
        streaks.streak_failed(cue=cue, execution_id=execution.id, error=last_error, now=now)


def on_outcome_recorded(*, execution_id: uuid.UUID, cue: Cue, state: str, now: datetime, **_) -> None:
    if state == "verification_failed":  # a failure of the cue's job too (the handler said success)
        streaks.streak_failed(cue=cue, execution_id=execution_id, now=now,
                              error=f"required evidence missing (verification mode {cue.verification_mode})")
        alert_raise(user=cue.user, alert_type=Alert.Type.VERIFICATION_FAILED, cue=cue,
                    execution_id=execution_id, now=now,
                    message=(f"Cue '{cue.name}' ({cue.id}): execution {execution_id} reported success but failed "
                             f"verification. Last error: required evidence missing "
                             f"(verification mode {cue.verification_mode})."),
                    metadata={"outcome_state": "verification_failed", "transport": cue.callback_transport})


def on_outcome_timed_out(*, execution: Execution, cue: Cue, now: datetime, **_) -> None:
    seconds = execution.outcome_deadline_seconds
    alert_raise(user=cue.user, alert_type=Alert.Type.OUTCOME_TIMEOUT, cue=cue, execution_id=execution.id,
                now=now, message=(f"Cue '{cue.name}' ({cue.id}): execution {execution.id} was delivered but "
                                  f"reported no outcome within {seconds}s. Last error: {execution.error_message}"),
                metadata={"outcome_deadline_seconds": seconds, "transport": cue.callback_transport})


def on_verification_rejected(*, execution_id: uuid.UUID, cue: Cue, reason: str | None, now: datetime, **_) -> None:
    """The owner failed the evidence: a failed outcome for the streak (no alert of its own, as
    before)."""
    streaks.streak_failed(cue=cue, execution_id=execution_id, now=now,
                          error=f"verification rejected: {reason}" if reason else "verification rejected")


def on_executions_succeeded(*, succeeded: list, now: datetime, **_) -> None:
    streaks.streaks_succeeded(succeeded=succeeded, now=now)


MISSED_REASONS = {"catch_up": "the scheduler was not running at that time (catch-up policy: {policy})",
                  "overlap": "an execution of the cue was still running (overlap policy: {policy})"}


def on_slots_missed(*, cue: Cue, slots: list, reason: str, now: datetime, **_) -> None:
    """Missed slots are never silent: one `missed` alert per cue per poller pass (deduplicated
    for 5 minutes per cue, like the others)."""
    policy = cue.catch_up if reason == "catch_up" else cue.overlap
    count = len(slots)
    runs = "1 scheduled run" if count == 1 else f"{count} scheduled runs"
    span = ts_iso(slots[0]) if count == 1 else f"{ts_iso(slots[0])} to {ts_iso(slots[-1])}"
    alert_raise(user=cue.user, alert_type=Alert.Type.MISSED, cue=cue, now=now,
                message=f"Cue '{cue.name}' ({cue.id}) missed {runs} ({span}): "
                        f"{MISSED_REASONS[reason].format(policy=policy)}.",
                metadata={"missed": count, "reason": reason, "first_slot": ts_iso(slots[0]),
                          "last_slot": ts_iso(slots[-1])})
