from django.contrib import admin, messages

from cueapi.errors import AppError
from cues.admin import CueAdmin
from executions.models import Execution, Worker
from executions.services import cue_fire


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

    def get_readonly_fields(self, request, obj=None):
        # Executions are the engine's record: operators read them, actions change them.
        return [field.name for field in Execution._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ["worker_id", "user", "last_heartbeat", "handlers", "created_at"]
    search_fields = ["worker_id", "user__email"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
