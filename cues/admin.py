from django.contrib import admin, messages

from accounts.audit import Actor
from cueapi.admin_helpers import ReadOnlyPagesMixin
from cueapi.errors import AppError
from cues.models import Cue
from cues.services import cue_update


class CatchUpFilter(admin.SimpleListFilter):
    """Django's choices filter would list the value "all" as a second "All"."""

    title = "catch up"
    parameter_name = "catch_up"

    def lookups(self, request, model_admin):
        return [(Cue.CatchUp.ALL, "all missed slots"), (Cue.CatchUp.LATEST, "latest missed slot"),
                (Cue.CatchUp.NONE, "none")]

    def queryset(self, request, queryset):
        return queryset.filter(catch_up=self.value()) if self.value() else queryset


@admin.register(Cue)
class CueAdmin(ReadOnlyPagesMixin, admin.ModelAdmin):
    list_display = ["name", "id", "user", "status", "callback_transport", "schedule_type",
                    "schedule_cron", "next_run", "last_run", "fired_count", "run_count"]
    list_filter = ["status", "callback_transport", "schedule_type", CatchUpFilter]
    search_fields = ["name", "id", "user__email"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    actions = ["pause", "resume"]  # executions/admin.py adds "fire now"
    # Read-only: the engine owns next_run and the counters, and a schedule or callback edited
    # here would skip the API's validation and next_run computation. Operators act through the
    # actions (pause, resume, fire now); users change cues through the API.
    exclude = ["callback_headers"]  # their values are often the handler's credentials

    def get_readonly_fields(self, request, obj=None):
        return ["callback_header_names", *(f.name for f in Cue._meta.fields if f.name != "callback_headers")]

    @admin.display(description="callback headers")
    def callback_header_names(self, cue):
        return ", ".join(sorted(cue.callback_headers or {})) or "-"

    def has_add_permission(self, request):
        return False

    def _set_status(self, request, queryset, status):
        changed = 0
        for cue in queryset.select_related("user"):
            try:
                cue_update(user=cue.user, cue_id=cue.id, data={"status": status}, actor=Actor.admin(request.user))
                changed += 1
            except AppError as exc:
                self.message_user(request, f"{cue.name}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{changed} cue(s) {status}.")

    @admin.action(description="Pause selected cues", permissions=["change"])
    def pause(self, request, queryset):
        self._set_status(request, queryset, Cue.Status.PAUSED)

    @admin.action(description="Resume selected cues", permissions=["change"])
    def resume(self, request, queryset):
        self._set_status(request, queryset, Cue.Status.ACTIVE)
