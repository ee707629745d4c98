import uuid

from django.conf import settings
from django.db import models

from cues.models import Cue


class Execution(models.Model):
    """One firing of a cue: its delivery (`status`, attempts) and its outcome (`outcome_state`).

    Every change of either is one function of executions/lifecycle.py; nothing else writes them.
    """

    class Status(models.TextChoices):
        """Where the delivery stands. Transitions (all in executions/lifecycle.py):

        ============  =============================================  ====================
        state         event (lifecycle function)                     next state
        ============  =============================================  ====================
        (new)         fired: schedule, fire, replay (`fired`)         pending
        (new)         slot skipped by catch-up (`slots_fired`)        missed
        (new)         over the monthly limit (`slots_fired`)          failed
        pending,      claimed by a dispatcher (`webhook_claimed`)     delivering
        retry_ready   or a worker (`worker_claimed`)
        delivering    webhook answered 2xx (`webhook_delivered`)      success
        delivering    attempt failed, attempts left (`attempt_failed`) retrying
        delivering    attempt failed, none left / gave up             failed
        delivering    worker lease lapsed (`lease_expired`)           as attempt failed
        retrying      its retry time came (`retry_released`)          retry_ready
        pending       worker cue, unclaimed 15 min (`unclaimed`)      missed
        success       outcome deadline passed (`outcome_timed_out`)   outcome_timeout
        any           worker outcome, none yet (`outcome_recorded`)   success / failed
        ============  =============================================  ====================

        success, failed, missed and outcome_timeout end the delivery (a worker's late outcome
        still lands, and a success may time out waiting for its outcome); `replayed` makes a
        new execution.
        The outcome (OutcomeState) moves independently: see `outcome_recorded`,
        `verification_requested` and `outcome_verified`.
        """

        PENDING = "pending"
        DELIVERING = "delivering"
        SUCCESS = "success"
        FAILED = "failed"
        RETRYING = "retrying"
        RETRY_READY = "retry_ready"
        MISSED = "missed"
        PENDING_OUTCOME = "pending_outcome"
        OUTCOME_TIMEOUT = "outcome_timeout"

    class OutcomeState(models.TextChoices):
        """What the handler said happened, checked against the cue's verification mode."""

        REPORTED_SUCCESS = "reported_success"  # success, no verification asked
        REPORTED_FAILURE = "reported_failure"
        VERIFICATION_PENDING = "verification_pending"  # manual mode, or marked for review
        VERIFIED_SUCCESS = "verified_success"
        VERIFICATION_FAILED = "verification_failed"

    # A dispatcher or a worker may take these.
    CLAIMABLE = (Status.PENDING, Status.RETRY_READY)
    # No delivery in progress: these may be replayed.
    ENDED = (Status.SUCCESS, Status.FAILED, Status.MISSED, Status.OUTCOME_TIMEOUT)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    cue = models.ForeignKey(Cue, on_delete=models.CASCADE, related_name="executions")
    scheduled_for = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status, default=Status.PENDING)
    http_status = models.IntegerField(null=True, blank=True)
    response_body = models.TextField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_retry = models.DateTimeField(null=True, blank=True)
    error_message = models.TextField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_by_worker = models.CharField(max_length=255, null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    last_heartbeat_at = models.DateTimeField(null=True, blank=True)
    outcome_success = models.BooleanField(null=True, blank=True)
    outcome_result = models.TextField(null=True, blank=True)
    outcome_error = models.TextField(null=True, blank=True)
    outcome_metadata = models.JSONField(null=True, blank=True)
    outcome_recorded_at = models.DateTimeField(null=True, blank=True)
    outcome_deadline_seconds = models.PositiveIntegerField(null=True, blank=True)
    outcome_deadline_at = models.DateTimeField(null=True, blank=True)
    outcome_state = models.CharField(max_length=30, choices=OutcomeState, null=True, blank=True)
    triggered_by = models.CharField(max_length=50, null=True, blank=True)
    # The payload this execution delivers when a fire overrode the cue's (None: the cue's).
    payload = models.JSONField(null=True, blank=True)
    # Keys its outcome must carry in `assertions` (a fire's `exit_criteria`; [] opts out);
    # None: the cue's `required_assertions` apply.
    required_assertions = models.JSONField(null=True, blank=True)
    outcome_assertions = models.JSONField(null=True, blank=True)
    # The execution this one replays (POST .../replay).
    replayed_from = models.UUIDField(null=True, blank=True)
    # For an execution fired by another cue's success (`on_success_fire`): the source execution
    # (a replay counts as the execution it replays). Unique: a success fires its chain once.
    chained_from = models.UUIDField(null=True, blank=True, unique=True)
    # On a source execution: what its success did to the cue's `on_success_fire` target
    # ({"cue_id", "execution_id", "fired", "reason"}), so its detail says why nothing fired.
    on_success_fire = models.JSONField(null=True, blank=True)
    # Evidence columns are as wide as the API accepts (DESIGN.md §3.8).
    evidence_external_id = models.CharField(max_length=500, null=True, blank=True)
    evidence_result_url = models.TextField(null=True, blank=True)
    evidence_result_ref = models.CharField(max_length=500, null=True, blank=True)
    evidence_result_type = models.CharField(max_length=100, null=True, blank=True)
    evidence_summary = models.TextField(null=True, blank=True)
    evidence_validation_state = models.CharField(max_length=20, null=True, blank=True)
    evidence_produced_at = models.DateTimeField(null=True, blank=True)
    evidence_artifacts = models.JSONField(null=True, blank=True)
    evidence_metadata = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "executions"
        constraints = [
            # A scheduled slot fires at most once, whatever runs (DESIGN.md §2).
            models.UniqueConstraint(fields=["cue", "scheduled_for"], name="idx_executions_dedup"),
        ]
        indexes = [
            models.Index(fields=["cue", "created_at"], name="ix_executions_cue_created"),
            models.Index(fields=["status", "next_retry"], name="ix_executions_status_retry"),
            models.Index(fields=["status", "updated_at"], name="ix_executions_status_updated"),
            models.Index(fields=["created_at"], name="ix_executions_created"),
            # Delivered, outcome not in yet: the poller's outcome-timeout sweep and the
            # dashboard's "waiting for an outcome" read only these rows, not every success.
            models.Index(fields=["outcome_deadline_at"], name="ix_executions_awaiting_outcome",
                         condition=models.Q(status="success", outcome_recorded_at__isnull=True)),
            # Claimed by a worker, lease running: the poller's lease sweep and its next-due
            # lookup read only these rows, not every delivery in flight (bench/idle.py).
            models.Index(fields=["lease_expires_at"], name="ix_executions_leased",
                         condition=models.Q(status="delivering")),
            # Fired, not claimed yet: the poller's sweep for worker executions nobody claimed
            # in 15 minutes is a range scan here instead of a join over every pending row.
            models.Index(fields=["scheduled_for"], name="ix_executions_pending",
                         condition=models.Q(status="pending")),
        ]

    def __str__(self):
        return f"{self.cue_id} @ {self.scheduled_for:%Y-%m-%d %H:%M:%S} ({self.status})"


class Worker(models.Model):
    """A cueapi-worker daemon, known by the heartbeats it sends (SERVER.md §3.6)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="workers")
    worker_id = models.CharField(max_length=255)
    handlers = models.JSONField(null=True, blank=True)
    last_heartbeat = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "workers"
        constraints = [
            models.UniqueConstraint(fields=["user", "worker_id"], name="unique_user_worker"),
        ]
        indexes = [models.Index(fields=["user", "last_heartbeat"], name="ix_workers_user_heartbeat")]

    def __str__(self):
        return f"{self.worker_id} ({self.user_id})"


class DispatchOutbox(models.Model):
    """A webhook send waiting for a dispatcher (the transactional outbox, DESIGN.md §2).

    Written in the same transaction as the execution (or its retry), so nothing is lost
    between "decided to send" and "sent". A dispatcher claims a row by setting
    `locked_until` and a fresh `lock_token`; a dispatcher that dies lets the lock lapse and
    another one takes the row. Only the holder of the current token may record the result.
    """

    class TaskType(models.TextChoices):
        DELIVER = "deliver"
        RETRY = "retry"

    id = models.BigAutoField(primary_key=True)
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="outbox_rows")
    task_type = models.CharField(max_length=20, choices=TaskType, default=TaskType.DELIVER)
    available_at = models.DateTimeField()  # not sent before (a fire's send_at)
    locked_until = models.DateTimeField(null=True, blank=True)
    lock_token = models.UUIDField(null=True, blank=True)
    dispatch_attempts = models.PositiveIntegerField(default=0)
    last_dispatch_error = models.TextField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "dispatch_outbox"
        indexes = [
            # The dispatcher's claim: pending rows by due time.
            models.Index(
                fields=["available_at"],
                name="ix_outbox_pending",
                condition=models.Q(dispatched_at__isnull=True),
            ),
            models.Index(fields=["dispatched_at"], name="ix_outbox_dispatched"),
        ]

    def __str__(self):
        return f"{self.task_type} {self.execution_id} @ {self.available_at:%Y-%m-%d %H:%M:%S}"


class DeliveryAttempt(models.Model):
    """One try at reaching the handler: a webhook request, or a worker claim that ended (its
    outcome arrived, or its lease lapsed). The execution row keeps only the latest attempt;
    these rows are its history, shown on the admin's execution timeline."""

    class Result(models.TextChoices):
        DELIVERED = "delivered"
        FAILED = "failed"
        LEASE_EXPIRED = "lease_expired"

    id = models.BigAutoField(primary_key=True)
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="delivery_attempts")
    attempt = models.PositiveIntegerField()
    transport = models.CharField(max_length=20)
    result = models.CharField(max_length=20, choices=Result)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    http_status = models.IntegerField(null=True, blank=True)
    error = models.TextField(null=True, blank=True)
    worker_id = models.CharField(max_length=255, null=True, blank=True)
    # The time the receiver asked us not to retry before (its 429/503 `Retry-After`), if it did.
    retry_after = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "delivery_attempts"
        ordering = ["execution", "attempt", "id"]
        indexes = [models.Index(fields=["execution", "attempt"], name="ix_attempts_execution")]

    def __str__(self):
        return f"attempt {self.attempt} of {self.execution_id}: {self.result}"


class FireIdempotencyKey(models.Model):
    """An `idempotency_key` a fire came with: the same key on the same cue within 24 h
    answers with this execution instead of making another one. The unique (cue, key) is
    what makes two fires racing with one key create one execution; the row is written in
    the execution's transaction. Rows older than the window are pruned by the poller."""

    id = models.BigAutoField(primary_key=True)
    cue = models.ForeignKey(Cue, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=256)
    # sha256 of the request body in canonical JSON: the same key with another body is a 409.
    body_sha256 = models.CharField(max_length=64)
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField()

    class Meta:
        db_table = "fire_idempotency_keys"
        constraints = [
            models.UniqueConstraint(fields=["cue", "key"], name="unique_fire_idempotency_key"),
        ]
        indexes = [models.Index(fields=["created_at"], name="ix_fire_idem_created")]

    def __str__(self):
        return f"{self.key} on {self.cue_id} -> {self.execution_id}"
