from functools import partial

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from cueapi.admin_helpers import ReadOnlyPagesMixin, short_id
from cueapi.errors import AppError
from cues.admin import CueAdmin
from executions.models import Execution, Worker
from executions.firing import cue_fire, execution_replay
from executions.outcomes import execution_verify
from executions.selectors import Verdict, execution_payload, with_verdict
from executions.workers import worker_heartbeat_status


@admin.action(description="Fire selected cues now", permissions=["change"])
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


class FixedValuesFilter(admin.SimpleListFilter):
    """A filter over a known set of values: Django's default for a plain CharField asks the
    table for its DISTINCT values, a full scan of every execution on each page view."""

    values = ()
    null_label = None  # a name for "no value", when that means something

    def lookups(self, request, model_admin):
        return [(value, value) for value in (*([self.null_label] if self.null_label else []), *self.values)]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value == self.null_label:
            return queryset.filter(**{f"{self.parameter_name}__isnull": True})
        return queryset.filter(**{self.parameter_name: value})


class OutcomeStateFilter(FixedValuesFilter):
    title = parameter_name = "outcome_state"
    values = Execution.OutcomeState.values


class VerdictFilter(admin.SimpleListFilter):
    """Did the job work: by outcome when the handler reported one, else by delivery."""

    title = parameter_name = "verdict"

    def lookups(self, request, model_admin):
        return Verdict.choices

    def queryset(self, request, queryset):
        # The changelist's queryset already carries the annotation (ExecutionAdmin.get_queryset).
        return queryset.filter(verdict=self.value()) if self.value() else queryset


class TriggeredByFilter(FixedValuesFilter):
    title = parameter_name = "triggered_by"
    null_label = "scheduled"  # the poller fired it
    values = ("manual_fire", "replay")


@admin.register(Execution)
class ExecutionAdmin(ReadOnlyPagesMixin, admin.ModelAdmin):
    list_display = ["execution_id", "cue_name", "task", "verdict", "status", "outcome_state", "attempts", "http_status",
                    "scheduled_for", "triggered_by", "why"]
    list_filter = [VerdictFilter, "status", OutcomeStateFilter, "cue__callback_transport", TriggeredByFilter]
    search_fields = ["id", "cue__id", "cue__name", "claimed_by_worker", "error_message"]
    list_select_related = ["cue"]
    raw_id_fields = ["cue"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    show_full_result_count = False  # a big table: no COUNT(*) on every page
    actions = ["replay", "verify", "reject"]
    # The execution's story, in order: when, delivery, outcome, evidence.
    fieldsets = [
        ("Timeline", {"fields": ["timeline"]}),
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
        return ["timeline", *(field.name for field in Execution._meta.fields)]

    def get_queryset(self, request):
        return with_verdict(super().get_queryset(request))

    @admin.display(description="verdict", ordering="verdict")
    def verdict(self, execution):
        return Verdict(execution.verdict).label

    @admin.display(description="task")
    def task(self, execution):
        # What cueapi-worker matches its handlers on; "-" for a worker execution no worker claims.
        return execution_payload(execution).get("task") or "-"

    @admin.display(description="id", ordering="id")
    def execution_id(self, execution):
        return short_id(execution.pk)

    @admin.display(description="cue", ordering="cue__name")
    def cue_name(self, execution):
        return execution.cue.name

    @admin.display(description="why")
    def why(self, execution):
        # A handler's own error when it reported a failure behind a 2xx.
        return Truncator(execution.error_message or execution.outcome_error or "").chars(80)

    @admin.display(description="timeline")
    def timeline(self, execution):
        """The execution's story in time order: due, created, claims and attempts, delivery,
        outcome, verification and the alerts it raised (two queries: attempts, alerts)."""
        events = timeline_events(execution)
        rows = format_html_join(
            "", '<tr><td class="nowrap">{}</td><td><strong>{}</strong></td><td>{}</td></tr>',
            ((when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC" if when else "", what, detail)
             for when, what, detail in events))
        return format_html('<table class="timeline"><thead><tr><th>when</th><th>event</th><th>detail</th></tr>'
                           "</thead><tbody>{}</tbody></table>", rows)

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


# Other apps' events on an execution's timeline, each `(execution) -> [(when, event, detail)]`:
# the alerts app sits above this one, so it adds its own from alerts/admin.py.
TIMELINE_SOURCES = []


def timeline_events(execution):
    """[(when, event, detail)], sorted; `detail` may be HTML made with format_html."""
    events = [(execution.scheduled_for, "due", execution.triggered_by or "schedule"),
              (execution.created_at, "created",
               f"{(execution.created_at - execution.scheduled_for).total_seconds():+.3f} s from due")]
    if execution.claimed_at:
        events.append((execution.claimed_at, "claimed", f"by worker {execution.claimed_by_worker}"))
    for attempt in execution.delivery_attempts.all():
        parts = [attempt.transport]
        if attempt.http_status is not None:
            parts.append(f"HTTP {attempt.http_status}")
        if attempt.duration_ms is not None:
            parts.append(f"{attempt.duration_ms} ms")
        if attempt.worker_id:
            parts.append(f"worker {attempt.worker_id}")
        if attempt.error:
            parts.append(Truncator(attempt.error).chars(300))
        events.append((attempt.finished_at, f"attempt {attempt.attempt}: {attempt.result}", " · ".join(parts)))
    if execution.next_retry and execution.status in ("retrying", "retry_ready"):
        events.append((execution.next_retry, "next retry", f"attempt {execution.attempts + 1}"))
    if execution.outcome_recorded_at:
        verdict = "success" if execution.outcome_success else "failure"
        text = execution.outcome_result if execution.outcome_success else execution.outcome_error
        evidence = [f"{label} {value}" for label, value in (("external_id", execution.evidence_external_id),
                                                             ("result_url", execution.evidence_result_url),
                                                             ("summary", execution.evidence_summary)) if value]
        detail = " · ".join([verdict, Truncator(text or "").chars(300), *evidence]).strip(" ·")
        events.append((execution.outcome_recorded_at, "outcome reported", detail))
    elif execution.outcome_deadline_at:
        events.append((execution.outcome_deadline_at, "outcome due by", f"{execution.outcome_deadline_seconds} s "
                                                                       "after delivery"))
    for source in TIMELINE_SOURCES:
        events.extend(source(execution))
    events.sort(key=lambda event: event[0])
    events.append((None, "now", " · ".join(filter(None, [execution.status, execution.outcome_state,
                                                          execution.evidence_validation_state and
                                                          f"evidence {execution.evidence_validation_state}"]))))
    return events


@admin.register(Worker)
class WorkerAdmin(ReadOnlyPagesMixin, admin.ModelAdmin):
    list_display = ["worker_id", "user", "heartbeat_status", "last_heartbeat", "handlers", "created_at"]
    search_fields = ["worker_id", "user__email"]
    ordering = ["-last_heartbeat"]
    readonly_fields = ["worker_id", "user", "handlers", "last_heartbeat", "created_at"]  # the worker reports these
    list_select_related = ["user"]
    raw_id_fields = ["user"]

    @admin.display(description="status")
    def heartbeat_status(self, worker):
        return worker_heartbeat_status(worker.last_heartbeat, timezone.now())
