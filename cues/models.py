from django.conf import settings
from django.db import models

from cueapi.ids import new_cue_id
from cues.schedule import jitter_offset, next_bounded_slot


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

    class Overlap(models.TextChoices):
        """What a slot does when it comes due while an execution of the cue is running."""

        ALLOW = "allow"  # fire anyway
        SKIP = "skip"  # record it as missed
        BUFFER_ONE = "buffer_one"  # one waits and fires when the running one ends; more are skipped

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
    # A recurring cue's window (inclusive): no slot before start_at; after end_at it completes.
    schedule_start_at = models.DateTimeField(null=True, blank=True)
    schedule_end_at = models.DateTimeField(null=True, blank=True)
    # Each slot is delivered up to this many seconds late (cues/schedule.jitter_offset).
    jitter_seconds = models.PositiveIntegerField(default=0)
    overlap = models.CharField(max_length=12, choices=Overlap, default=Overlap.ALLOW)
    # buffer_one: the slot that came due while an execution ran; fired when that one ends.
    overlap_buffered_slot = models.DateTimeField(null=True, blank=True)
    callback_url = models.TextField(null=True, blank=True)
    callback_method = models.CharField(max_length=10, default="POST")
    callback_transport = models.CharField(max_length=10, choices=Transport, default=Transport.WEBHOOK)
    callback_headers = models.JSONField(default=dict, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    retry_max_attempts = models.PositiveSmallIntegerField(default=3)
    retry_backoff_minutes = models.JSONField(default=default_backoff_minutes)
    next_run = models.DateTimeField(null=True, blank=True)
    # The schedule slot next_run delivers (next_run is it plus the jitter); see `due_slot`.
    next_slot = models.DateTimeField(null=True, blank=True)
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
    # This cue's webhook timeout in seconds; None = CUEAPI_WEBHOOK_TIMEOUT_SECONDS.
    webhook_timeout_seconds = models.PositiveSmallIntegerField(null=True, blank=True)
    # Keys every outcome of this cue must carry in `assertions` (verification.required_assertions);
    # a fire's `exit_criteria` overrides it for that execution.
    required_assertions = models.JSONField(null=True, blank=True)
    # The id of another cue of the same owner, fired once per successful execution of this one.
    # A plain id, not a foreign key: when the target is deleted, the source keeps the id and its
    # next success says why nothing fired.
    on_success_fire = models.CharField(max_length=20, null=True, blank=True)
    # Why this cue is paused: the server's reason (its schedule could not be computed) or the
    # note of a pause sent through the API or the admin; cleared on resume.
    pause_note = models.CharField(max_length=500, null=True, blank=True)
    # A timed pause: the poller resumes the cue at this instant (executions/poller.py).
    paused_until = models.DateTimeField(null=True, blank=True)
    # At most this many of its webhooks in flight at once, across all dispatchers (the rest wait
    # in the outbox); None = no cap of its own (`delivery.max_in_flight`).
    max_in_flight = models.PositiveSmallIntegerField(null=True, blank=True)
    # Checks on `POST /v1/cues/{id}/fire` only (the schedule fires with the cue's payload):
    # every fire must bring a payload_override, and the payload it delivers must have these
    # top-level keys (None: no such check).
    require_payload_override = models.BooleanField(default=False)
    required_payload_keys = models.JSONField(null=True, blank=True, default=None)
    # When and where this cue's alerts go (the `alerts` object; README "Getting alerted"). The
    # defaults are the server's rule before they existed: an alert after 3 failures in a row.
    alert_failure_threshold = models.PositiveSmallIntegerField(default=3)
    alert_recovery_threshold = models.PositiveSmallIntegerField(default=1)
    alert_repeat_minutes = models.PositiveIntegerField(null=True, blank=True)
    alert_notify_recovery = models.BooleanField(default=True)
    # Until then alerts are recorded (muted) but not sent.
    alert_muted_until = models.DateTimeField(null=True, blank=True)
    # Alert channel ids (plain ids: channels belong to the alerts app); None = all of the user's.
    alert_channels = models.JSONField(null=True, blank=True, default=None)
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
            # The poller's sweep of buffered slots (overlap: buffer_one) reads only these rows.
            models.Index(fields=["overlap_buffered_slot"], name="ix_cues_buffered_slot",
                         condition=models.Q(overlap_buffered_slot__isnull=False)),
            # The poller's sweep of timed pauses (and its next wake-up) reads only these rows.
            models.Index(fields=["paused_until"], name="ix_cues_paused_until",
                         condition=models.Q(paused_until__isnull=False)),
            # The dispatcher asks "is any cue capped?" on every claim: a probe of this index.
            models.Index(fields=["max_in_flight"], name="ix_cues_max_in_flight",
                         condition=models.Q(max_in_flight__isnull=False)),
        ]

    def __str__(self):
        return f"{self.name} ({self.id})"

    def upcoming(self, after):
        """(slot, run) of this recurring cue's first slot after `after` within its window, `run`
        being when it is delivered (the slot plus its jitter); (None, None) past the window."""
        slot = next_bounded_slot(self.schedule_cron, self.schedule_timezone, after,
                                 start_at=self.schedule_start_at, end_at=self.schedule_end_at)
        if slot is None:
            return None, None
        return slot, slot + jitter_offset(self.pk, slot, self.jitter_seconds)

    def due_slot(self):
        """The schedule slot the stored next_run stands for: next_slot when next_run is exactly
        its jittered instant, else next_run itself (no jitter, or a next_run set another way)."""
        slot = self.next_slot
        if slot is not None and self.next_run is not None and self.jitter_seconds \
                and slot + jitter_offset(self.pk, slot, self.jitter_seconds) == self.next_run:
            return slot
        return self.next_run

    def webhook_timeout(self) -> float:
        """Seconds one webhook request of this cue may take (connect, send and answer)."""
        if self.webhook_timeout_seconds is not None:
            return self.webhook_timeout_seconds
        return settings.CUEAPI_WEBHOOK_TIMEOUT_SECONDS

    def outcome_deadline(self) -> int:
        """Seconds a delivered webhook execution may take to report its outcome; 0 = none.

        The cue's `outcome_deadline_seconds` when set (0 turns it off); otherwise
        CUEAPI_DEFAULT_OUTCOME_DEADLINE_SECONDS for cues that ask for verification (they expect
        an outcome), and none for plain webhooks, which need not report one.
        """
        if self.outcome_deadline_seconds is not None:
            return self.outcome_deadline_seconds
        if self.verification_mode not in (None, "none"):
            return settings.CUEAPI_DEFAULT_OUTCOME_DEADLINE_SECONDS
        return 0
