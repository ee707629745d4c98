"""Alert channels: create, change, delete, test (README "Getting alerted")."""

import re
import uuid
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from alerts import delivery
from alerts.models import Alert, AlertChannel, Notification
from alerts.services import channel_notification
from cueapi.errors import AppError, RequestValidationError
from cues.services import check_callback_url

URL_KINDS = (AlertChannel.Kind.WEBHOOK, AlertChannel.Kind.SLACK, AlertChannel.Kind.DISCORD)
CHANNEL_ID_PATTERN = re.compile(r"ach_[a-z0-9]{12}")
MAX_CHANNELS = 50
TEST_MESSAGE = ("This is a test alert from CueAPI for the channel '{name}' ({id}). "
                "If you can read it, this channel's alerts reach you.")


def unknown_channel_ids(user_id, ids: list[str]) -> list[str]:
    """Those of `ids` that are not the user's channels (cues check their `alerts.channels`)."""
    mine = set(AlertChannel.objects.filter(user_id=user_id, pk__in=ids).values_list("pk", flat=True))
    return [i for i in ids if i not in mine]


def channel_get(*, user: User, channel_id: str) -> AlertChannel:
    """The caller's channel, or 404 `alert_channel_not_found` (someone else's too)."""
    channel = None
    if CHANNEL_ID_PATTERN.fullmatch(channel_id or ""):
        channel = AlertChannel.objects.filter(user=user, pk=channel_id).first()
    if channel is None:
        raise AppError("alert_channel_not_found", "Alert channel not found", 404)
    return channel


def _check(channel: AlertChannel) -> None:
    """Each kind has its address (422 at the field), and a URL passes the callbacks' SSRF
    checks (400 `invalid_callback_url`); it is checked again when sent."""
    if channel.kind in URL_KINDS:
        if not channel.url:
            raise RequestValidationError([("body.url", f"A {channel.kind} channel needs a url")])
        if channel.email:
            raise RequestValidationError([("body.email", f"A {channel.kind} channel has a url, not an email")])
        check_callback_url(channel.url)
    else:
        if not channel.email:
            raise RequestValidationError([("body.email", "An email channel needs an email address")])
        if channel.url:
            raise RequestValidationError([("body.url", "An email channel has an email, not a url")])


def channel_create(*, user: User, data: dict) -> AlertChannel:
    channel = AlertChannel(user=user, name=data["name"], kind=data["kind"], url=data.get("url"),
                           email=data.get("email"))
    _check(channel)
    with transaction.atomic():
        if AlertChannel.objects.filter(user=user).count() >= MAX_CHANNELS:
            raise AppError("alert_channel_limit_exceeded", f"At most {MAX_CHANNELS} alert channels per account", 403)
        channel.save(force_insert=True)
    return channel


def channel_update(*, user: User, channel_id: str, data: dict) -> AlertChannel:
    """Only what is sent changes; the kind can't."""
    channel = channel_get(user=user, channel_id=channel_id)
    if "kind" in data and data["kind"] != channel.kind:
        raise RequestValidationError([("body.kind", "The kind of a channel can't change; create a new channel")])
    for field in ("name", "url", "email"):
        if field in data:
            setattr(channel, field, data[field])
    _check(channel)
    channel.save(update_fields=["name", "url", "email", "updated_at"])
    return channel


def channel_delete(*, user: User, channel_id: str) -> None:
    """Its pending notifications are not sent any more; sent ones stay in the history. Cues
    that list it keep the id, which then sends nowhere."""
    channel = channel_get(user=user, channel_id=channel_id)
    with transaction.atomic():
        Notification.objects.filter(channel=channel, sent_at__isnull=True, failed_at__isnull=True).update(
            failed_at=timezone.now(), last_error="The alert channel was deleted")
        channel.delete()


def channel_test(*, user: User, channel_id: str, now: datetime | None = None) -> dict:
    """Send a test alert to the channel now, once (no retry), through the dispatcher's sender
    and its checks; the attempt is recorded like any other. Returns the result."""
    now = now or timezone.now()
    channel = channel_get(user=user, channel_id=channel_id)
    alert = Alert(id=uuid.uuid4(), user=user, alert_type="test", severity=Alert.Severity.INFO, created_at=now,
                  message=TEST_MESSAGE.format(name=channel.name, id=channel.id), metadata={"test": True})
    token = uuid.uuid4()
    notification = Notification.objects.create(
        **channel_notification(alert, channel, cue_name=None), available_at=now, lock_token=token,
        locked_until=now + timedelta(seconds=delivery.LEASE_SECONDS))
    error = delivery.send_notification(notification.pk, token, retry=False)
    return {"channel_id": channel.id, "kind": channel.kind, "delivered": error is None, "error": error}
