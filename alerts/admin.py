from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from alerts.models import Alert, Notification
from cueapi.admin_helpers import ReadOnlyPagesMixin, short_id
from executions.admin import TIMELINE_SOURCES


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "alert_type", "user", "cue_id", "execution_link", "message"]
    list_filter = ["alert_type", "severity", "acknowledged"]
    search_fields = ["cue_id", "execution_id", "user__email", "message"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    readonly_fields = ["id", "user", "cue_id", "execution_link", "alert_type", "severity", "message",
                       "metadata", "created_at"]
    fields = readonly_fields + ["acknowledged"]

    @admin.display(description="execution")
    def execution_link(self, alert):
        if not alert.execution_id:
            return "-"
        url = reverse("admin:executions_execution_change", args=[alert.execution_id])
        return format_html('<a href="{}">{}</a>', url, short_id(alert.execution_id))

    def has_add_permission(self, request):
        return False


def alert_timeline_events(execution):
    """The alerts an execution raised, for its timeline in the execution admin."""
    events = []
    for alert in Alert.objects.filter(execution_id=execution.pk).order_by("created_at"):
        link = reverse("admin:alerts_alert_change", args=[alert.pk])
        events.append((alert.created_at, format_html('alert: <a href="{}">{}</a>', link, alert.alert_type),
                       alert.message))
    return events


TIMELINE_SOURCES.append(alert_timeline_events)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyPagesMixin, admin.ModelAdmin):
    list_display = ["created_at", "kind", "user", "url", "recipient", "attempts", "sent_at", "failed_at", "last_error"]
    list_filter = ["kind", ("sent_at", admin.EmptyFieldListFilter), ("failed_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__email", "url", "recipient"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request):
        return False
