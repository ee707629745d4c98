import functools
import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.validators import MinValueValidator
from django.db import models

from cueapi import ratelimit
from cueapi.authentication import forget_user_keys
from cueapi.ids import new_key_id, new_webhook_secret
from cueapi.rows import RowLoader, fetch
from cueapi.scopes import SCOPES


# A cue or monthly execution limit of 0 means no limit (the default on a self-hosted server).
NO_LIMIT = 0


def limit_reached(*, used: int, limit: int) -> bool:
    """Whether `used` leaves no room under `limit` (never, when the limit is NO_LIMIT)."""
    return limit != NO_LIMIT and used >= limit


def cue_limit_message(limit: int) -> str:
    return (f"Active cue limit of {limit} reached (paused cues count too). Delete cues you no longer "
            "need, or raise the user's active_cue_limit in the admin (0 = no limit).")


def monthly_execution_limit_message(limit: int) -> str:
    return (f"Monthly execution limit of {limit} reached for this UTC month. Raise the user's "
            "monthly_execution_limit in the admin (0 = no limit).")


def default_cue_limit():
    return settings.CUEAPI_DEFAULT_CUE_LIMIT


def default_monthly_execution_limit():
    return settings.CUEAPI_DEFAULT_MONTHLY_EXECUTION_LIMIT


def default_rate_limit_per_minute():
    return settings.CUEAPI_DEFAULT_RATE_LIMIT_PER_MINUTE


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email, password=None, **fields):
        user = self.model(email=self.normalize_email(email), **fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()  # API users log in with keys, not passwords
        user.save(using=self._db)
        return user

    def create_superuser(self, email, password=None, **fields):
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)

    # What cueapi.authentication (a layer below, which knows the user model only through
    # get_user_model()) asks about keys.
    def api_key(self, key_hash):
        """The ApiKey with this hash, its active user loaded, or None: one indexed query, written
        by hand (every request runs it; see cueapi.rows)."""
        rows = fetch(_api_key_sql(), [key_hash, True])
        return _api_key_from_row(rows[0]) if rows else None

    def api_key_counting_hit(self, key_hash, *, bucket, default_limit):
        """api_key() and the request's rate-limit hit in `bucket` in one statement (see
        cueapi.ratelimit.hit_with_lookup): (the key or None, the limiter's Decision). The
        limit is the key's user's rate_limit_per_minute, or `default_limit` for no key."""
        row, decision = ratelimit.hit_with_lookup(
            _api_key_sql(), [key_hash, True], limit_column="rate_limit_per_minute", bucket=bucket,
            default_limit=default_limit)
        return (_api_key_from_row(row) if row is not None else None), decision

    def api_key_hashes(self, user_id):
        return list(ApiKey.objects.filter(user_id=user_id).values_list("key_hash", flat=True))


class User(AbstractBaseUser, PermissionsMixin):
    """An API user (owns cues) and, with is_staff, an operator of the admin dashboard."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=255, unique=True)
    # The prefix of the account's primary key (its hash is in ApiKey, primary=True).
    api_key_prefix = models.CharField(max_length=12, blank=True, editable=False)
    # Only set where the contract allows revealing the key again (SERVER.md §1.6).
    api_key_encrypted = models.CharField(max_length=256, null=True, blank=True, editable=False)
    # Carried in every session JWT; regenerating the API key bumps it, which ends every session
    # issued before (a stolen session must not outlive the key rotation meant to shut it out).
    session_version = models.PositiveIntegerField(default=0, editable=False)
    plan = models.CharField(max_length=20, default="free")
    active_cue_limit = models.PositiveIntegerField(
        default=default_cue_limit, help_text="Active and paused cues this user may have; 0 = no limit.")
    monthly_execution_limit = models.PositiveIntegerField(
        default=default_monthly_execution_limit,
        help_text="Scheduled executions per UTC month; 0 = no limit.")
    rate_limit_per_minute = models.PositiveIntegerField(
        default=default_rate_limit_per_minute, validators=[MinValueValidator(1)],
        help_text="API requests per minute per key (at least 1).")
    execution_retention_days = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Days finished executions are kept; empty = CUEAPI_EXECUTION_RETENTION_DAYS; 0 = forever.")
    webhook_secret = models.CharField(max_length=80, default=new_webhook_secret, editable=False)
    alert_webhook_url = models.CharField(max_length=2048, null=True, blank=True)
    alert_webhook_secret = models.CharField(max_length=64, null=True, blank=True, editable=False)
    # A secret replaced by a regenerate with `grace_seconds`: kept (stored as the current one)
    # to sign alongside the new one until the time given, never shown again.
    previous_webhook_secret = models.CharField(max_length=80, null=True, blank=True, editable=False)
    previous_webhook_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    previous_alert_webhook_secret = models.CharField(max_length=64, null=True, blank=True, editable=False)
    previous_alert_webhook_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    class Meta:
        db_table = "users"

    def __str__(self):
        return self.email

    def previous_webhook_secret_at(self, now) -> str | None:
        """The replaced webhook secret while its grace period runs at `now`, else None."""
        return _in_grace(self.previous_webhook_secret, self.previous_webhook_secret_expires_at, now)

    def previous_alert_webhook_secret_at(self, now) -> str | None:
        """The replaced alert-webhook secret while its grace period runs at `now`, else None."""
        return _in_grace(self.previous_alert_webhook_secret, self.previous_alert_webhook_secret_expires_at, now)

    def save(self, *args, **kwargs):
        super().save(*args, **kwargs)
        # The auth cache holds a copy of this row: drop it so limits edited in the admin
        # (or anywhere) apply to the very next request.
        forget_user_keys(self.pk)


MAX_KEYS_PER_USER = 20


class ApiKey(models.Model):
    """An API key, stored as its SHA-256 (the key itself is shown once). Every user has one
    `primary` key, the `full` key that register returns and `POST /v1/auth/key/regenerate`
    replaces; named keys (`POST /v1/auth/keys`) come and go beside it. Authentication is one
    query on the unique `key_hash` index, joined to the user."""

    id = models.CharField(primary_key=True, max_length=20, default=new_key_id, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=20, choices=[(s, s) for s in SCOPES])
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False)
    primary = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Written at most once a minute per key (a guarded UPDATE), never on every request.
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "api_keys"
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["user"], condition=models.Q(primary=True),
                                    name="one_primary_key_per_user"),
        ]

    def __str__(self):
        return f"{self.name} ({self.prefix}…, {self.scope})"

    def mark_used(self, *, now, unless_since):
        """Set last_used_at = now unless it is already after `unless_since`: a guarded UPDATE,
        so concurrent requests (or processes) holding a stale copy write it once."""
        ApiKey.objects.filter(pk=self.pk).filter(
            models.Q(last_used_at__isnull=True) | models.Q(last_used_at__lt=unless_since)
        ).update(last_used_at=now)
        self.last_used_at = now


class AuditEntry(models.Model):
    """A change to a user's cues, keys or secrets: who, when, what (never a secret)."""

    class Action(models.TextChoices):
        CUE_CREATED = "cue.created"
        CUE_UPDATED = "cue.updated"
        CUE_PAUSED = "cue.paused"
        CUE_RESUMED = "cue.resumed"
        CUE_DELETED = "cue.deleted"
        KEY_CREATED = "key.created"
        KEY_REVOKED = "key.revoked"
        WEBHOOK_SECRET_REGENERATED = "webhook_secret.regenerated"
        ALERT_WEBHOOK_SECRET_REGENERATED = "alert_webhook_secret.regenerated"
        API_KEY_REGENERATED = "api_key.regenerated"

    class ActorType(models.TextChoices):
        KEY = "key"
        SESSION = "session"
        ADMIN = "admin"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="audit_entries")
    at = models.DateTimeField()
    action = models.CharField(max_length=40, choices=Action)
    actor_type = models.CharField(max_length=10, choices=ActorType)
    actor_id = models.CharField(max_length=255)
    target_id = models.CharField(max_length=64, blank=True)
    changes = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "audit_entries"
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["user", "-at", "-id"], name="audit_user_at"),
            models.Index(fields=["user", "target_id", "-at"], name="audit_user_target_at"),
        ]

    def __str__(self):
        return f"{self.action} {self.target_id} by {self.actor_type}:{self.actor_id}"


def _in_grace(secret, expires_at, now):
    return secret if secret and expires_at is not None and now < expires_at else None


class UsageMonthly(models.Model):
    """Executions created per user per UTC calendar month (DESIGN.md §3.11)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="usage_months")
    month_start = models.DateField()
    execution_count = models.PositiveIntegerField(default=0)

    class Meta:
        db_table = "usage_monthly"
        constraints = [
            models.UniqueConstraint(fields=["user", "month_start"], name="unique_user_month")
        ]

    def __str__(self):
        return f"{self.user_id} {self.month_start:%Y-%m}: {self.execution_count}"


class DeviceCode(models.Model):
    """A terminal's login in progress (SERVER.md §3.3): pending -> email_sent -> approved ->
    claimed, or expired. The new user's key waits here encrypted, never in plaintext."""

    class Status(models.TextChoices):
        PENDING = "pending"
        EMAIL_SENT = "email_sent"
        APPROVED = "approved"
        EXPIRED = "expired"
        CLAIMED = "claimed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    device_code = models.CharField(max_length=128, unique=True)
    email = models.CharField(max_length=255, null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status, default=Status.PENDING)
    api_key_encrypted = models.CharField(max_length=256, null=True, blank=True)
    verification_token = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    session_token = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, null=True, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "device_codes"

    def __str__(self):
        return f"{self.device_code} ({self.status})"


# The authentication query (UserManager.api_key), built on first use.
_API_KEY_ROWS = RowLoader(ApiKey)
_USER_ROWS = RowLoader(User)


def _api_key_from_row(row):
    key = _API_KEY_ROWS.load(row)
    key.user = _USER_ROWS.load(row, len(_API_KEY_ROWS))
    return key


@functools.cache
def _api_key_sql():
    return (f"SELECT {_API_KEY_ROWS.columns('k')}, {_USER_ROWS.columns('u')} "
            f"FROM {ApiKey._meta.db_table} k JOIN {User._meta.db_table} u ON u.id = k.user_id "
            "WHERE k.key_hash = %s AND u.is_active = %s")
