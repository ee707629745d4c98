from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.utils import timezone

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


class PausedUntilLaterFilter(admin.SimpleListFilter):
    """Cues in a timed pause: paused, with a paused_until still ahead."""

    title = "timed pause"
    parameter_name = "paused_until"

    def lookups(self, request, model_admin):
        return [("later", "paused until later")]

    def queryset(self, request, queryset):
        if self.value() == "later":
            return queryset.filter(status=Cue.Status.PAUSED, paused_until__gt=timezone.now())
        return queryset


class PauseWithNoteForm(forms.Form):
    pause_note = forms.CharField(label="Note", max_length=500, widget=forms.Textarea(attrs={"rows": 3}),
                                 help_text="Shown in the cue's API responses and here until it is resumed.")
    paused_until = forms.DateTimeField(label="Paused until (UTC)", required=False,
                                       help_text="Optional, e.g. 2026-12-24 09:00. The cue resumes by itself "
                                                 "then; empty: until resumed by hand.")

    def clean_paused_until(self):
        until = self.cleaned_data["paused_until"]
        if until is not None and until <= timezone.now():
            raise forms.ValidationError("This time is in the past; give a later one, or leave it empty.")
        return until


@admin.register(Cue)
class CueAdmin(ReadOnlyPagesMixin, admin.ModelAdmin):
    list_display = ["name", "id", "user", "status", "callback_transport", "schedule_type",
                    "schedule_cron", "next_run", "last_run", "fired_count", "run_count"]
    list_filter = ["status", PausedUntilLaterFilter, "callback_transport", "schedule_type", CatchUpFilter]
    search_fields = ["name", "id", "user__email"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    actions = ["pause", "pause_with_note", "resume"]  # executions/admin.py adds "fire now"
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

    def _set_status(self, request, queryset, status, **pause):
        """Through cue_update, as the API's PATCH: the same rules and errors."""
        changed = 0
        for cue in queryset.select_related("user"):
            try:
                cue_update(user=cue.user, cue_id=cue.id, data={"status": status, **pause},
                           actor=Actor.admin(request.user))
                changed += 1
            except AppError as exc:
                self.message_user(request, f"{cue.name}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{changed} cue(s) {status}.")

    @admin.action(description="Pause selected cues", permissions=["change"])
    def pause(self, request, queryset):
        self._set_status(request, queryset, Cue.Status.PAUSED)

    @admin.action(description="Pause selected cues with a note…", permissions=["change"])
    def pause_with_note(self, request, queryset):
        """Asks for the note (and an optional end) first, like "delete selected" asks to confirm."""
        form = PauseWithNoteForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            self._set_status(request, queryset, Cue.Status.PAUSED, **form.cleaned_data)
            return None
        return TemplateResponse(request, "admin/cues/cue/pause_with_note.html", {
            **self.admin_site.each_context(request),
            "title": "Pause cues with a note",
            "cues": queryset,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": self.model._meta,
        })

    @admin.action(description="Resume selected cues", permissions=["change"])
    def resume(self, request, queryset):
        self._set_status(request, queryset, Cue.Status.ACTIVE)
