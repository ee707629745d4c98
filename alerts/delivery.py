"""Sending notifications (alert webhooks, on_failure webhooks, emails): a dispatcher unit.

Claimed under a lease like outbox rows; retried after 1, 5 and 15 retry units; a webhook is
signed at send time (HMAC-SHA256 over "<timestamp>." + body, as cue webhooks) and goes through
the same SSRF-safe sender.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from alerts.models import Notification, NotificationAttempt
from cueapi.claims import claim_due
from cueapi.logs import log_event
from cueapi.rows import db_time, fetch
from cues.models import default_backoff_minutes
from executions.delivery import USER_AGENT, cueapi_signature, send_webhook, standard_webhooks_signatures

logger = logging.getLogger("cueapi.alerts")

BACKOFF_UNITS = default_backoff_minutes()  # the same steps as a cue's default retry
MAX_ATTEMPTS = len(BACKOFF_UNITS) + 1
WEBHOOK_TIMEOUT_SECONDS = 10
LEASE_SECONDS = 2 * WEBHOOK_TIMEOUT_SECONDS + 5


# Whether any notification is due: the dispatcher asks on every pass of its loop, and almost
# always none is, so the answer is one hand-written statement (no transaction, no ORM) and the
# claim runs only when there is something to claim.
ANY_DUE_SQL = ("SELECT 1 FROM notifications WHERE sent_at IS NULL AND failed_at IS NULL AND available_at <= %s"
               " AND (locked_until IS NULL OR locked_until < %s) LIMIT 1")


def claim_notifications(*, now, limit):
    """Claim up to `limit` due notifications; return callables that send one each."""
    at = db_time(now)
    if not fetch(ANY_DUE_SQL, [at, at]):
        return []
    pending = Notification.objects.filter(sent_at__isnull=True, failed_at__isnull=True)
    ids, token = claim_due(pending, now=now, limit=limit, lease_seconds=LEASE_SECONDS)
    return [lambda pk=pk: send_notification(pk, token) for pk in ids]


def _headers(notification, body):
    """Slack and Discord: their own JSON, unsigned. Webhooks: `X-CueAPI-Signature` with the current
    secret (alert webhooks: the alert-webhook secret; on_failure webhooks: the webhook secret),
    and the Standard Webhooks headers, whose `webhook-signature` also carries a replaced secret's
    signature during its grace period."""
    if notification.kind in (Notification.Kind.SLACK, Notification.Kind.DISCORD):
        return {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    now = timezone.now()
    timestamp = str(int(now.timestamp()))
    user = notification.user
    if notification.kind == Notification.Kind.ALERT_WEBHOOK:
        secret, previous = user.alert_webhook_secret, user.previous_alert_webhook_secret_at(now)
    else:
        secret, previous = user.webhook_secret, user.previous_webhook_secret_at(now)
    # Stable across retries, as Standard Webhooks asks: the receiver's idempotency key.
    message_id = str(notification.alert_id) if notification.alert_id else f"notification_{notification.pk}"
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-CueAPI-Signature": cueapi_signature(secret or "", timestamp, body),
               "X-CueAPI-Timestamp": timestamp, "webhook-id": message_id, "webhook-timestamp": timestamp,
               "webhook-signature": standard_webhooks_signatures(secret or "", previous, message_id, timestamp, body)}
    if notification.alert_id:
        headers.update({"X-CueAPI-Alert-Id": str(notification.alert_id),
                        "X-CueAPI-Alert-Type": notification.alert.alert_type})
    return headers


def send_notification(pk, token, *, retry=True):
    """Send one claimed notification and record the attempt; on failure it is retried with
    backoff (`retry=False`: failed at once, as a channel's test). Returns the error or None."""
    notification = Notification.objects.select_related("user", "alert").filter(pk=pk, lock_token=token).first()
    if notification is None:
        return None
    error, http_status, started = None, None, time.monotonic()
    if notification.kind == Notification.Kind.EMAIL:
        try:
            send_mail(notification.subject, notification.body, settings.DEFAULT_FROM_EMAIL, [notification.recipient])
        except Exception as exc:  # noqa: BLE001 - any mail failure is retried
            error = f"Email failed: {type(exc).__name__}"
    else:
        body = notification.body.encode()
        result = send_webhook(url=notification.url, method="POST", headers=_headers(notification, body), body=body,
                              timeout=WEBHOOK_TIMEOUT_SECONDS)
        error, http_status = (None if result.delivered else result.error), result.http_status
    _record(notification, token, error, retry=retry, http_status=http_status,
            duration_ms=int((time.monotonic() - started) * 1000))
    return error


def _record(notification, token, error, *, retry=True, http_status=None, duration_ms=0):
    """The attempt's result on the notification (guarded on the claim's token) and, when this
    claim still held it, one NotificationAttempt row for the admin's history."""
    now = timezone.now()
    mine = Notification.objects.filter(pk=notification.pk, lock_token=token, sent_at__isnull=True)
    attempts = notification.attempts + 1
    with transaction.atomic():
        if error is None:
            recorded = mine.update(sent_at=now, locked_until=None, attempts=F("attempts") + 1, last_error=None)
            event, level = "notification_sent", logging.INFO
        elif attempts >= MAX_ATTEMPTS or not retry:
            recorded = mine.update(failed_at=now, locked_until=None, attempts=attempts, last_error=error)
            event, level = "notification_failed", logging.WARNING
        else:
            wait = BACKOFF_UNITS[attempts - 1] * settings.CUEAPI_RETRY_UNIT_SECONDS
            recorded = mine.update(available_at=now + timedelta(seconds=wait), locked_until=None, attempts=attempts,
                                   last_error=error)
            event, level = "notification_retrying", logging.INFO
        if recorded:
            NotificationAttempt.objects.create(notification_id=notification.pk, attempt=attempts, at=now,
                                               delivered=error is None, http_status=http_status,
                                               duration_ms=duration_ms, error=error)
    if error is None:
        log_event(logger, event, notification_id=notification.pk, kind=notification.kind)
    else:
        log_event(logger, event, level, notification_id=notification.pk, kind=notification.kind, attempt=attempts,
                  error=error)
