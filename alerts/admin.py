from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from alerts import channels
from alerts.models import Alert, AlertChannel, AlertStreak, Notification, NotificationAttempt
from cueapi.admin_helpers import ReadOnlyPagesMixin, short_id
from cues.admin import CueAdmin
from executions.admin import TIMELINE_SOURCES

DELIVERY_FIELDS = ["kind", "channel", "url", "recipient", "attempts", "sent_at", "failed_at", "last_error"]


class NotificationInline(admin.TabularInline):
    """An alert's deliveries, one row per channel: where, how many attempts, and the result."""

    model = Notification
    fields = readonly_fields = DELIVERY_FIELDS
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["created_at", "alert_type", "user", "cue_id", "execution_link", "muted", "delivery", "message"]
    list_filter = ["alert_type", "severity", "muted", "acknowledged"]
    search_fields = ["cue_id", "execution_id", "user__email", "message"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    readonly_fields = ["id", "user", "cue_id", "execution_link", "alert_type", "severity", "message",
                       "metadata", "muted", "created_at"]
    fields = readonly_fields + ["acknowledged"]
    inlines = [NotificationInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("notifications")

    @admin.display(description="delivery")
    def delivery(self, alert):
        """sent / retrying / failed counts of its notifications ("muted" when none were made)."""
        rows = list(alert.notifications.all())
        if not rows:
            return "muted" if alert.muted else "-"
        sent = sum(1 for n in rows if n.sent_at)
        failed = sum(1 for n in rows if n.failed_at)
        pending = len(rows) - sent - failed
        parts = [f"{sent} sent"] + ([f"{pending} pending"] if pending else []) + ([f"{failed} failed"] if failed else [])
        return ", ".join(parts)

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


class NotificationAttemptInline(admin.TabularInline):
    """Every try at sending it, oldest first."""

    model = NotificationAttempt
    fields = readonly_fields = ["attempt", "at", "delivered", "http_status", "duration_ms", "error"]
    ordering = ["attempt", "id"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyPagesMixin, admin.ModelAdmin):
    list_display = ["created_at", "kind", "user", "channel", "url", "recipient", "attempts", "sent_at", "failed_at",
                    "last_error"]
    list_filter = ["kind", ("sent_at", admin.EmptyFieldListFilter), ("failed_at", admin.EmptyFieldListFilter)]
    search_fields = ["user__email", "url", "recipient"]
    list_select_related = ["user", "channel"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    inlines = [NotificationAttemptInline]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in Notification._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    """Every user's channels; `?user__id__exact=<id>` or a search by email shows one user's.
    (Not an inline on the user's page: its form would then need the inline's formset.)"""

    list_display = ["name", "id", "kind", "user", "url", "email", "created_at"]
    list_filter = ["kind"]
    search_fields = ["id", "name", "user__email", "email"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    ordering = ["-created_at"]
    actions = ["send_test"]
    # Users change channels through the API, which checks their URLs; here they are read.
    readonly_fields = ["id", "user", "name", "kind", "url", "email", "created_at", "updated_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    @admin.action(description="Send a test alert to the selected channels", permissions=["change"])
    def send_test(self, request, queryset):
        for channel in queryset.select_related("user"):
            result = channels.channel_test(user=channel.user, channel_id=channel.id)
            if result["delivered"]:
                self.message_user(request, f"{channel.name}: test alert delivered.")
            else:
                self.message_user(request, f"{channel.name}: not delivered ({result['error']}).", messages.ERROR)


class AlertStreakInline(admin.StackedInline):
    """The cue's current failure streak (its alert settings are the cue's own alert_* fields)."""

    model = AlertStreak
    fields = readonly_fields = ["failures", "successes", "since", "alerted_at", "last_alert_at", "repeats",
                                "last_execution_id", "last_error", "updated_at"]
    verbose_name = verbose_name_plural = "current failure streak"
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


CueAdmin.inlines = [*CueAdmin.inlines, AlertStreakInline]
