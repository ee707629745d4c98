from django.conf import settings
from django.db import models

from cueapi.ids import new_cue_id


def default_backoff_minutes():
    return [1, 5, 15]


def default_on_failure():
    return {"email": True, "webhook": None, "pause": False}


class Cue(models.Model):
    """A schedule (cron or one-time) and what to do when it is due (SERVER.md §2)."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"
        COMPLETED = "completed"
        FAILED = "failed"

    class ScheduleType(models.TextChoices):
        ONCE = "once"
        RECURRING = "recurring"

    class Transport(models.TextChoices):
        WEBHOOK = "webhook"
        WORKER = "worker"

    class CatchUp(models.TextChoices):
        ALL = "all"
        LATEST = "latest"
        NONE = "none"

    class VerificationMode(models.TextChoices):
        NONE = "none"
        REQUIRE_EXTERNAL_ID = "require_external_id"
        REQUIRE_RESULT_URL = "require_result_url"
        REQUIRE_ARTIFACTS = "require_artifacts"
        MANUAL = "manual"

    id = models.CharField(max_length=20, primary_key=True, default=new_cue_id, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cues")
    name = models.CharField(max_length=255)
    description = models.TextField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status, default=Status.ACTIVE)
    schedule_type = models.CharField(max_length=10, choices=ScheduleType)
    schedule_cron = models.CharField(max_length=100, null=True, blank=True)
    schedule_at = models.DateTimeField(null=True, blank=True)
    schedule_timezone = models.CharField(max_length=50, default="UTC")
    callback_url = models.TextField(null=True, blank=True)
    callback_method = models.CharField(max_length=10, default="POST")
    callback_transport = models.CharField(max_length=10, choices=Transport, default=Transport.WEBHOOK)
    callback_headers = models.JSONField(default=dict, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    retry_max_attempts = models.PositiveSmallIntegerField(default=3)
    retry_backoff_minutes = models.JSONField(default=default_backoff_minutes)
    next_run = models.DateTimeField(null=True, blank=True)
    last_run = models.DateTimeField(null=True, blank=True)
    run_count = models.PositiveIntegerField(default=0)
    fired_count = models.PositiveIntegerField(default=0)
    on_failure = models.JSONField(default=default_on_failure, null=True, blank=True)
    verification_mode = models.CharField(
        max_length=50, choices=VerificationMode, null=True, blank=True
    )
    # What to do with slots missed while the engine was down (DESIGN.md §3.13).
    catch_up = models.CharField(max_length=10, choices=CatchUp, default=CatchUp.LATEST)
    # Seconds after delivery an outcome is expected by; None = the server default (#7).
    outcome_deadline_seconds = models.PositiveIntegerField(null=True, blank=True)
    # Why the server paused this cue (its schedule could not be computed); cleared on resume.
    pause_note = models.CharField(max_length=500, null=True, blank=True)
    # Checks on `POST /v1/cues/{id}/fire` only (the schedule fires with the cue's payload):
    # every fire must bring a payload_override, and the payload it delivers must have these
    # top-level keys (None: no such check).
    require_payload_override = models.BooleanField(default=False)
    required_payload_keys = models.JSONField(null=True, blank=True, default=None)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "cues"
        constraints = [
            models.UniqueConstraint(fields=["user", "name"], name="unique_user_cue_name"),
        ]
        indexes = [
            # "Which cues are due?" is a range scan on this index.
            models.Index(fields=["status", "next_run"], name="ix_cues_status_next_run"),
            models.Index(fields=["user", "created_at"], name="ix_cues_user_created"),
        ]

    def __str__(self):
        return f"{self.name} ({self.id})"
