from functools import partial

from django.contrib import admin, messages
from django.utils import timezone

from cueapi.errors import AppError
from cues.admin import CueAdmin
from executions.models import Execution, Worker
from executions.services import cue_fire, execution_replay, execution_verify, worker_heartbeat_status


@admin.action(description="Fire selected cues now")
def fire_now(modeladmin, request, queryset):
    for cue in queryset.select_related("user"):
        try:
            execution, _ = cue_fire(user=cue.user, cue_id=cue.id)
        except AppError as exc:
            modeladmin.message_user(request, f"{cue.name}: {exc.message}", messages.ERROR)
        else:
            modeladmin.message_user(request, f"{cue.name}: execution {execution.id} created.")


# Firing creates executions, which cues must not import (dependencies point one way), so the
# action joins the cue admin from here.
CueAdmin.actions = [*CueAdmin.actions, fire_now]


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ["id", "cue", "status", "outcome_state", "attempts", "http_status",
                    "scheduled_for", "triggered_by", "created_at"]
    list_filter = ["status", "outcome_state", "cue__callback_transport", "triggered_by"]
    search_fields = ["id", "cue__id", "cue__name", "claimed_by_worker"]
    list_select_related = ["cue"]
    raw_id_fields = ["cue"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    show_full_result_count = False  # a big table: no COUNT(*) on every page
    actions = ["replay", "verify", "reject"]
    # The execution's story, in order: when, delivery, outcome, evidence.
    fieldsets = [
        ("Schedule", {"fields": ["id", "cue", "scheduled_for", "triggered_by", "created_at", "updated_at"]}),
        ("Delivery", {"fields": ["status", "attempts", "started_at", "last_attempt_at", "delivered_at",
                                 "next_retry", "http_status", "error_message", "response_body"]}),
        ("Worker", {"fields": ["claimed_by_worker", "claimed_at", "lease_expires_at", "last_heartbeat_at"]}),
        ("Outcome", {"fields": ["outcome_state", "outcome_success", "outcome_result", "outcome_error",
                                "outcome_metadata", "outcome_recorded_at"]}),
        ("Evidence", {"fields": ["evidence_validation_state", "evidence_external_id", "evidence_result_url",
                                 "evidence_result_ref", "evidence_result_type", "evidence_summary",
                                 "evidence_artifacts", "evidence_metadata", "evidence_produced_at"]}),
        ("Payload override", {"fields": ["payload"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # Executions are the engine's record: operators read them, actions change them.
        return [field.name for field in Execution._meta.fields]

    def has_add_permission(self, request):
        return False

    def _each(self, request, queryset, action, done):
        for execution in queryset.select_related("cue__user"):
            try:
                action(user=execution.cue.user, execution_id=str(execution.id))
            except AppError as exc:
                self.message_user(request, f"{execution.id}: {exc.message}", messages.ERROR)
            else:
                self.message_user(request, f"{execution.id}: {done}.")

    @admin.action(description="Replay selected executions", permissions=["change"])
    def replay(self, request, queryset):
        self._each(request, queryset, execution_replay, "replayed")

    @admin.action(description="Verify selected outcomes", permissions=["change"])
    def verify(self, request, queryset):
        self._each(request, queryset, execution_verify, "verified")

    @admin.action(description="Reject selected outcomes (verification failed)", permissions=["change"])
    def reject(self, request, queryset):
        self._each(request, queryset, partial(execution_verify, valid=False, reason="rejected by an operator"),
                   "rejected")


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["worker_id", "user", "heartbeat_status", "last_heartbeat", "handlers", "created_at"]
    search_fields = ["worker_id", "user__email"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]

    @admin.display(description="status")
    def heartbeat_status(self, worker):
        return worker_heartbeat_status(worker.last_heartbeat, timezone.now())
