from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.template.response import TemplateResponse

from accounts.audit import Actor
from accounts.models import ApiKey, AuditEntry, UsageMonthly, User
from accounts.services import api_key_revoke, user_regenerate_api_key
from cueapi.errors import AppError


class UserCreationForm(forms.ModelForm):
    """Add an operator (staff) or an API user from the admin; keys are regenerated below."""

    password = forms.CharField(widget=forms.PasswordInput, required=False,
                               help_text="Only needed for admin logins; API users use keys.")

    class Meta:
        model = User
        fields = ["email"]

    def save(self, commit=True):
        user = super().save(commit=False)
        if self.cleaned_data["password"]:
            user.set_password(self.cleaned_data["password"])
        else:
            user.set_unusable_password()
        if commit:
            user.save()
        return user


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = UserCreationForm
    add_fieldsets = ((None, {"fields": ("email", "password")}),)
    ordering = ["-created_at"]
    list_display = ["email", "plan", "api_key_prefix", "active_cue_limit",
                    "monthly_execution_limit", "rate_limit_per_minute", "is_staff", "created_at"]
    list_filter = ["plan", "is_staff", "is_active"]
    search_fields = ["email", "api_key_prefix", "id"]
    readonly_fields = ["id", "api_key_prefix", "has_webhook_secret", "created_at", "updated_at",
                       "last_login"]
    fieldsets = (
        (None, {"fields": ("id", "email", "password")}),
        ("API access", {"fields": ("api_key_prefix", "has_webhook_secret", "alert_webhook_url")}),
        ("Plan and limits", {"fields": ("plan", "active_cue_limit", "monthly_execution_limit",
                                        "rate_limit_per_minute", "execution_retention_days")}),
        ("Admin permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups",
                                          "user_permissions")}),
        ("Dates", {"fields": ("last_login", "created_at", "updated_at")}),
    )
    actions = ["regenerate_api_key"]

    @admin.display(boolean=True, description="webhook secret set")
    def has_webhook_secret(self, obj):
        # The secret itself is never shown here.
        return bool(obj.webhook_secret)

    @admin.action(description="Regenerate API key (the old key stops working)", permissions=["change"])
    def regenerate_api_key(self, request, queryset):
        # Asks first (like "delete selected"): the users' current keys stop working at once.
        # Confirmed, it shows each new key once, to hand over; the old one answers `key_rotated`.
        if request.POST.get("post") != "yes":
            return TemplateResponse(request, "admin/accounts/user/regenerate_key_confirmation.html", {
                **self.admin_site.each_context(request),
                "title": "Regenerate API keys?",
                "users": queryset,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                "opts": self.model._meta,
            })
        for user in queryset:
            key = user_regenerate_api_key(user=user, actor=Actor.admin(request.user))
            self.message_user(request, f"New API key for {user.email}: {key}", messages.WARNING)
        return None


@admin.register(UsageMonthly)
class UsageMonthlyAdmin(admin.ModelAdmin):
    list_display = ["user", "month_start", "execution_count"]
    list_filter = ["month_start"]
    search_fields = ["user__email"]
    raw_id_fields = ["user"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Named keys and each user's primary key: prefix, scope, last use; never the key."""

    list_display = ["prefix", "name", "user", "scope", "primary", "last_used_at", "created_at"]
    list_filter = ["scope", "primary"]
    search_fields = ["prefix", "name", "id", "user__email"]
    list_select_related = ["user"]
    fields = readonly_fields = ["id", "user", "name", "scope", "prefix", "primary", "created_at", "last_used_at"]
    ordering = ["-created_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # keys are made through the API, where the key is shown once

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)  # actions need it

    def has_delete_permission(self, request, obj=None):
        return False  # revoking goes through the action (audited, cache dropped)

    @admin.action(description="Revoke selected keys (they stop working at once)", permissions=["change"])
    def revoke(self, request, queryset):
        revoked = 0
        for key in queryset.select_related("user"):
            try:
                api_key_revoke(user=key.user, key_id=key.pk, actor=Actor.admin(request.user))
                revoked += 1
            except AppError as exc:
                self.message_user(request, f"{key}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{revoked} key(s) revoked.")


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit trail, read-only."""

    list_display = ["at", "action", "user", "actor_type", "actor_id", "target_id"]
    list_filter = ["action", "actor_type"]
    search_fields = ["target_id", "actor_id", "user__email"]
    list_select_related = ["user"]
    fields = readonly_fields = ["at", "user", "action", "actor_type", "actor_id", "target_id", "changes"]
    ordering = ["-at", "-id"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
