import uuid

from django.conf import settings
from django.db import models

from cueapi.ids import new_alert_channel_id
from cues.models import Cue


class Alert(models.Model):
    """Something a user must know: a streak of failures, failed verification, no outcome."""

    class Type(models.TextChoices):
        CONSECUTIVE_FAILURES = "consecutive_failures"
        VERIFICATION_FAILED = "verification_failed"
        OUTCOME_TIMEOUT = "outcome_timeout"
        RECOVERED = "recovered"
        MISSED = "missed"

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alerts")
    # Plain ids, not foreign keys: an alert outlives the cue or execution it is about.
    cue_id = models.CharField(max_length=20, null=True, blank=True)
    execution_id = models.UUIDField(null=True, blank=True)
    alert_type = models.CharField(max_length=50, choices=Type)
    severity = models.CharField(max_length=20, choices=Severity, default=Severity.WARNING)
    message = models.TextField()
    metadata = models.JSONField(null=True, blank=True)
    acknowledged = models.BooleanField(default=False)
    # Raised while its cue's alerts were muted: recorded, never sent.
    muted = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "alerts"
        indexes = [
            models.Index(fields=["user", "created_at"], name="ix_alerts_user_created"),
            models.Index(fields=["execution_id"], name="ix_alerts_execution_id"),
            # The dashboard's "alerts in the last 24 h", across users.
            models.Index(fields=["created_at"], name="ix_alerts_created"),
        ]

    def __str__(self):
        return f"{self.alert_type}: {self.message}"


class AlertChannel(models.Model):
    """Where a user's alerts go besides the account's email and `alert_webhook_url`."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook"  # signed JSON, as the alert webhook
        SLACK = "slack"  # a Slack incoming webhook
        DISCORD = "discord"  # a Discord webhook
        EMAIL = "email"

    id = models.CharField(max_length=20, primary_key=True, default=new_alert_channel_id, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="alert_channels")
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=10, choices=Kind)
    url = models.TextField(null=True, blank=True)  # webhook, slack, discord
    email = models.EmailField(null=True, blank=True)  # email
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "alert_channels"
        indexes = [models.Index(fields=["user", "created_at"], name="ix_alert_channels_user")]

    def __str__(self):
        return f"{self.name} ({self.kind}, {self.id})"


class AlertStreak(models.Model):
    """A cue's current run of failed outcomes, for its alert rules (alerts/streaks.py).

    Before the alert (`alerted_at` null), `failures` counts failures in a row and a success
    resets it. Once alerted, `failures` keeps counting the streak, `successes` counts
    successes in a row, and the streak ends (recovered) when they reach the cue's
    recovery_threshold. Repeats go out every `alert_repeat_minutes` after `last_alert_at`."""

    cue = models.OneToOneField(Cue, primary_key=True, on_delete=models.CASCADE, related_name="alert_streak")
    failures = models.PositiveIntegerField(default=0)
    successes = models.PositiveIntegerField(default=0)
    since = models.DateTimeField(null=True, blank=True)  # the streak's first failure
    alerted_at = models.DateTimeField(null=True, blank=True)
    last_alert_at = models.DateTimeField(null=True, blank=True)  # the alert or its latest repeat
    repeats = models.PositiveIntegerField(default=0)
    last_execution_id = models.UUIDField(null=True, blank=True)  # the latest failure
    last_error = models.TextField(null=True, blank=True)
    # The latest success counted: an execution delivered (2xx, no outcome expected) that later
    # reports a successful outcome too is one success, not two.
    last_success_id = models.UUIDField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "alert_streaks"
        indexes = [models.Index(fields=["alerted_at"], name="ix_alert_streaks_open",
                                condition=models.Q(alerted_at__isnull=False))]

    def __str__(self):
        return f"{self.cue_id}: {self.failures} failures"


class Notification(models.Model):
    """One outbound message about a failure or an alert — a signed webhook or an email — sent
    by the dispatcher with retries, never by the request or the loop that raised it."""

    class Kind(models.TextChoices):
        ALERT_WEBHOOK = "alert_webhook"
        FAILURE_WEBHOOK = "failure_webhook"
        EMAIL = "email"
        SLACK = "slack"
        DISCORD = "discord"

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, null=True, blank=True, related_name="notifications")
    # The alert channel it goes to (None: the account's email or alert_webhook_url, or an
    # on_failure action); a deleted channel's history stays.
    channel = models.ForeignKey(AlertChannel, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="notifications")
    kind = models.CharField(max_length=20, choices=Kind)
    url = models.TextField(null=True, blank=True)  # webhooks
    recipient = models.CharField(max_length=255, null=True, blank=True)  # emails
    subject = models.CharField(max_length=255, null=True, blank=True)
    body = models.TextField()  # the exact bytes POSTed, or the email's text
    attempts = models.PositiveIntegerField(default=0)
    available_at = models.DateTimeField()
    locked_until = models.DateTimeField(null=True, blank=True)
    lock_token = models.UUIDField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "notifications"
        indexes = [
            models.Index(fields=["available_at"], name="ix_notifications_due",
                         condition=models.Q(sent_at__isnull=True, failed_at__isnull=True)),
        ]

    def __str__(self):
        return f"{self.kind} to {self.url or self.recipient}"


class NotificationAttempt(models.Model):
    """One try at sending a notification, kept for the admin: when, how it went, and why not."""

    id = models.BigAutoField(primary_key=True)
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="attempt_log")
    attempt = models.PositiveIntegerField()
    at = models.DateTimeField()
    delivered = models.BooleanField()
    http_status = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(null=True, blank=True)

    class Meta:
        db_table = "notification_attempts"
        indexes = [models.Index(fields=["notification", "attempt"], name="ix_notification_attempts")]

    def __str__(self):
        return f"attempt {self.attempt} of notification {self.notification_id}"

