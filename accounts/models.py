import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.validators import MinValueValidator
from django.db import models

from cueapi.authentication import forget_api_key
from cueapi.ids import new_webhook_secret


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


class User(AbstractBaseUser, PermissionsMixin):
    """An API user (owns cues) and, with is_staff, an operator of the admin dashboard."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=255, unique=True)
    api_key_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
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
        forget_api_key(self.api_key_hash)


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
