"""Account rules: registration, keys and secrets, profile changes, usage counting."""

import datetime
import uuid

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from email_validator import EmailNotValidError, validate_email

from accounts.audit import Actor, audit_record
from accounts.models import MAX_KEYS_PER_USER, ApiKey, AuditEntry, UsageMonthly, User
from cueapi.authentication import forget_api_key, forget_user_keys, mark_key_rotated
from cueapi.errors import AppError, RequestValidationError
from cueapi.scopes import FULL
from cueapi.ids import (
    KEY_ID_PATTERN,
    api_key_hash,
    api_key_prefix,
    new_alert_webhook_secret,
    new_api_key,
    new_webhook_secret,
)
from cueapi.sessions import encrypt_api_key
from cueapi.urlsafety import UnsafeURL, validate_url


def normalize_email(*, email: str, loc: str = "body.email") -> str:
    """The address as the reference's EmailStr normalises it (domain lower-cased), or 422."""
    try:
        return validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise RequestValidationError(
            [(loc, f"value is not a valid email address: {exc}")]
        ) from None


def user_create(*, email: str) -> tuple[User, str]:
    """Create an API user with a fresh primary (`full`) key; return (user, plaintext key).
    409 if taken.

    The key is also kept encrypted, as after a regeneration: a terminal login (`cueapi login`)
    hands it back, whichever way the account was created."""
    api_key = new_api_key()
    user = User(email=email, api_key_prefix=api_key_prefix(api_key), api_key_encrypted=encrypt_api_key(api_key))
    user.set_unusable_password()
    try:
        with transaction.atomic():
            user.save(force_insert=True)
            ApiKey.objects.create(user=user, name="default", scope=FULL, primary=True,
                                  key_hash=api_key_hash(api_key), prefix=api_key_prefix(api_key))
    except IntegrityError:
        raise AppError("duplicate_email", "Email already registered", 409) from None
    return user, api_key


def user_regenerate_api_key(*, user: User, actor: Actor) -> str:
    """Replace the primary key; the old one stops working at once and answers `key_rotated`,
    and every session token issued before ends (401 `session_revoked`). Named keys stay."""
    api_key = new_api_key()
    new_hash, new_prefix = api_key_hash(api_key), api_key_prefix(api_key)
    with transaction.atomic():
        primary = ApiKey.objects.select_for_update().filter(user=user, primary=True).first()
        old_hash, old_prefix = (primary.key_hash, primary.prefix) if primary else (None, user.api_key_prefix)
        if primary is None:  # not reachable through the API; kept whole for the admin
            primary = ApiKey(user=user, name="default", scope=FULL, primary=True)
        primary.key_hash, primary.prefix, primary.last_used_at = new_hash, new_prefix, None
        primary.save()
        user.api_key_prefix = new_prefix
        user.api_key_encrypted = encrypt_api_key(api_key)
        user.session_version = F("session_version") + 1  # in SQL: two rotations at once both count
        user.save(update_fields=["api_key_prefix", "api_key_encrypted", "session_version", "updated_at"])
        audit_record(user_id=user.pk, actor=actor, action=AuditEntry.Action.API_KEY_REGENERATED,
                     target_id=primary.pk, changes={"prefix": {"from": old_prefix, "to": new_prefix}})
    user.refresh_from_db(fields=["session_version"])
    forget_api_key(old_hash)
    if old_hash:
        mark_key_rotated(old_hash)
    return api_key


def api_key_create(*, user: User, name: str, scope: str, actor: Actor) -> tuple[ApiKey, str]:
    """A named key with `scope`; return (row, plaintext key: shown this once). At most
    MAX_KEYS_PER_USER keys, the primary one included (403 `key_limit_exceeded`)."""
    api_key = new_api_key()
    with transaction.atomic():
        # The owner's row is locked: two creates at once can't both pass the count.
        User.objects.select_for_update(no_key=True).only("pk").get(pk=user.pk)
        if ApiKey.objects.filter(user=user).count() >= MAX_KEYS_PER_USER:
            raise AppError("key_limit_exceeded", f"A user may have at most {MAX_KEYS_PER_USER} API keys "
                           "(the primary key included). Revoke keys you no longer use.", 403)
        key = ApiKey.objects.create(user=user, name=name, scope=scope, key_hash=api_key_hash(api_key),
                                    prefix=api_key_prefix(api_key))
        audit_record(user_id=user.pk, actor=actor, action=AuditEntry.Action.KEY_CREATED, target_id=key.pk,
                     changes={"name": name, "scope": scope, "prefix": key.prefix}, now=key.created_at)
    return key, api_key


def api_key_revoke(*, user: User, key_id: str, actor: Actor) -> None:
    """Delete a named key: it answers 401 from the next request on. The primary key is
    replaced by regenerating it, not revoked (409 `primary_key`)."""
    if not KEY_ID_PATTERN.fullmatch(key_id):  # e.g. a NUL, which PostgreSQL can't even compare
        raise AppError("key_not_found", "API key not found", 404)
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().filter(user=user, pk=key_id).first()
        if key is None:
            raise AppError("key_not_found", "API key not found", 404)
        if key.primary:
            raise AppError("primary_key", "The primary key can't be revoked; replace it with "
                           "POST /v1/auth/key/regenerate.", 409)
        key.delete()
        # A session token doesn't say which key minted it: end them all, as a regeneration does,
        # so a revoked `full` key can't live on through a session it minted.
        User.objects.filter(pk=user.pk).update(session_version=F("session_version") + 1)
        audit_record(user_id=user.pk, actor=actor, action=AuditEntry.Action.KEY_REVOKED, target_id=key_id,
                     changes={"name": key.name, "scope": key.scope, "prefix": key.prefix})
    user.refresh_from_db(fields=["session_version"])
    forget_api_key(key.key_hash)


# The longest grace period a regenerated secret may give the one it replaces (7 days).
SECRET_GRACE_MAX_SECONDS = 604_800


@transaction.atomic
def user_regenerate_webhook_secret(*, user: User, actor: Actor, grace_seconds: int = 0,
                                   now: datetime.datetime | None = None) -> tuple[str, datetime.datetime | None]:
    """A new webhook secret. With `grace_seconds`, the replaced one still signs deliveries
    (beside the new one) until then; without, it dies at once (and so does any secret still
    in a grace period). Returns (new secret, when the replaced one stops signing or None)."""
    secret, expires = _rotate(user, "webhook_secret", new_webhook_secret(), grace_seconds, now)
    audit_record(user_id=user.pk, actor=actor, action=AuditEntry.Action.WEBHOOK_SECRET_REGENERATED,
                 changes={"grace_seconds": grace_seconds})
    return secret, expires


def _rotate(user: User, field: str, secret: str, grace_seconds: int, now) -> tuple[str, datetime.datetime | None]:
    now = now or timezone.now()
    # The row as it is now (the request's user may be a cached copy), locked against a
    # concurrent rotation keeping a secret the other one replaced.
    current = User.objects.select_for_update().values_list(field, flat=True).get(pk=user.pk)
    expires = now + datetime.timedelta(seconds=grace_seconds) if grace_seconds and current else None
    setattr(user, field, secret)
    setattr(user, f"previous_{field}", current if expires else None)
    setattr(user, f"previous_{field}_expires_at", expires)
    user.save(update_fields=[field, f"previous_{field}", f"previous_{field}_expires_at", "updated_at"])
    return secret, expires


def user_get_alert_webhook_secret(*, user: User) -> str:
    """The alert-webhook secret, created on first need (and kept from then on)."""
    if not user.alert_webhook_secret:
        secret = new_alert_webhook_secret()
        # Guarded: two first calls at once must agree on one secret.
        User.objects.filter(pk=user.pk, alert_webhook_secret__isnull=True).update(
            alert_webhook_secret=secret
        )
        user.alert_webhook_secret = (
            User.objects.filter(pk=user.pk).values_list("alert_webhook_secret", flat=True).get()
        )
        forget_user_keys(user.pk)
    return user.alert_webhook_secret


@transaction.atomic
def user_regenerate_alert_webhook_secret(*, user: User, actor: Actor, grace_seconds: int = 0,
                                         now: datetime.datetime | None = None) -> tuple[str, datetime.datetime | None]:
    """user_regenerate_webhook_secret for the alert-webhook secret."""
    secret, expires = _rotate(user, "alert_webhook_secret", new_alert_webhook_secret(), grace_seconds, now)
    audit_record(user_id=user.pk, actor=actor, action=AuditEntry.Action.ALERT_WEBHOOK_SECRET_REGENERATED,
                 changes={"grace_seconds": grace_seconds})
    return secret, expires


def user_update(*, user: User, email: str | None = None, alert_webhook_url: str | None = None) -> User:
    """PATCH /v1/auth/me: only the fields given change. 422 `no_fields` if none."""
    fields = []
    if alert_webhook_url is not None:
        if alert_webhook_url == "":
            user.alert_webhook_url = None
        else:
            try:
                validate_url(alert_webhook_url)
            except UnsafeURL as exc:
                raise AppError("invalid_alert_webhook_url", str(exc), 400) from None
            user.alert_webhook_url = alert_webhook_url
        fields.append("alert_webhook_url")
    if email is not None:
        if User.objects.filter(email=email).exclude(pk=user.pk).exists():
            raise AppError("duplicate_email", "Email already registered", 409)
        user.email = email
        fields.append("email")
    if not fields:
        raise AppError("no_fields", "No fields to update", 422)
    try:
        with transaction.atomic():
            user.save(update_fields=[*fields, "updated_at"])
    except IntegrityError:
        raise AppError("duplicate_email", "Email already registered", 409) from None
    return user


def month_start(moment: datetime.datetime | None = None) -> datetime.date:
    moment = moment or timezone.now()
    return moment.astimezone(datetime.timezone.utc).date().replace(day=1)


def usage_increment(*, user_id: uuid.UUID, count: int = 1, moment: datetime.datetime | None = None) -> None:
    """Count `count` created executions against the user's month (an upsert, race-safe)."""
    start = month_start(moment)
    updated = UsageMonthly.objects.filter(user_id=user_id, month_start=start).update(
        execution_count=F("execution_count") + count
    )
    if updated:
        return
    try:
        with transaction.atomic():
            UsageMonthly.objects.create(user_id=user_id, month_start=start, execution_count=count)
    except IntegrityError:  # another process created the row first
        UsageMonthly.objects.filter(user_id=user_id, month_start=start).update(
            execution_count=F("execution_count") + count
        )
