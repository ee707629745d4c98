"""Reads about a user's account: /v1/auth/me and /v1/usage.

Cues and executions are counted through `apps.get_model`: accounts sits below those apps
and must not import them (DESIGN.md §1, dependencies point one way).
"""

import calendar
import datetime

from django.apps import apps
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import NO_LIMIT, ApiKey, AuditEntry, UsageMonthly, User, limit_reached
from accounts.services import month_start

CUES_COUNTED_FOR_LIMIT = ("active", "paused")


def _cue_model():
    return apps.get_model("cues", "Cue")


def user_active_cue_count(*, user: User) -> int:
    """Cues with status `active` (what /v1/auth/me reports)."""
    return _cue_model().objects.filter(user=user, status="active").count()


def user_limited_cue_count(*, user: User) -> int:
    """Cues that count against `active_cue_limit`: active and paused."""
    return _cue_model().objects.filter(user=user, status__in=CUES_COUNTED_FOR_LIMIT).count()


def user_executions_this_month(*, user: User, moment: datetime.datetime | None = None) -> int:
    row = UsageMonthly.objects.filter(user=user, month_start=month_start(moment)).first()
    return row.execution_count if row else 0


def user_api_keys(*, user: User) -> list[ApiKey]:
    return list(ApiKey.objects.filter(user=user).order_by("created_at", "pk"))


def audit_entries(*, user: User, limit: int, offset: int, since: datetime.datetime | None = None,
                  cue_id: str | None = None) -> tuple[list[AuditEntry], int]:
    """A page of the user's audit entries, newest first, and how many match in all."""
    entries = AuditEntry.objects.filter(user=user)
    if since is not None:
        entries = entries.filter(at__gte=since)
    if cue_id is not None:
        entries = entries.filter(target_id=cue_id)
    return list(entries.order_by("-at", "-id")[offset:offset + limit]), entries.count()


def _percent(used: int, limit: int, digits: int | None = None) -> int | float:
    if limit <= 0:
        return 0
    return round(used / limit * 100, digits) if digits is not None else round(used / limit * 100)


def _remaining(used: int, limit: int) -> int | None:
    return None if limit == NO_LIMIT else max(0, limit - used)


def user_usage(*, user: User, rate_limit_current_usage: int, moment: datetime.datetime | None = None) -> dict:
    """The body of GET /v1/usage (SERVER.md §3.7)."""
    now = moment or timezone.now()
    start = month_start(now)
    today = now.astimezone(datetime.timezone.utc).date()
    start_instant = datetime.datetime.combine(start, datetime.time(), tzinfo=datetime.timezone.utc)
    days_in_month = calendar.monthrange(start.year, start.month)[1]
    end = start.replace(day=days_in_month)

    cues_used = user_limited_cue_count(user=user)
    cue_limit = user.active_cue_limit
    executions_used = user_executions_this_month(user=user, moment=now)
    execution_limit = user.monthly_execution_limit
    days_elapsed = max(1, (today - start).days + 1)
    projected = round(executions_used / days_elapsed * days_in_month)

    Execution = apps.get_model("executions", "Execution")
    outcomes = Execution.objects.filter(cue__user=user, created_at__gte=start_instant).aggregate(
        reported=Count("id", filter=Q(outcome_recorded_at__isnull=False)),
        succeeded=Count("id", filter=Q(outcome_recorded_at__isnull=False, outcome_success=True)),
        failed_reported=Count(
            "id", filter=Q(outcome_recorded_at__isnull=False, outcome_success=False)
        ),
        failed_unreported=Count(
            "id", filter=Q(outcome_recorded_at__isnull=True, status__in=["failed", "missed"])
        ),
    )
    return {
        "plan": user.plan,
        "billing_period": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "days_remaining": max(0, (end - today).days),
        },
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        # A limit of 0 is no limit: `limit` stays 0 (an int, as the clients parse it),
        # `unlimited` says so, and `remaining` is null (no number would be true).
        "cues": {
            "used": cues_used,
            "active": cues_used,
            "limit": cue_limit,
            "unlimited": cue_limit == NO_LIMIT,
            "remaining": _remaining(cues_used, cue_limit),
            "percent_used": _percent(cues_used, cue_limit),
        },
        "executions": {
            "used": executions_used,
            "limit": execution_limit,
            "unlimited": execution_limit == NO_LIMIT,
            "remaining": _remaining(executions_used, execution_limit),
            "percent_used": _percent(executions_used, execution_limit),
            "percentage": float(_percent(executions_used, execution_limit, 1)),
            "projected_month_end": projected,
            "will_exceed_limit": limit_reached(used=projected, limit=execution_limit),
        },
        "outcomes": {
            "reported": outcomes["reported"],
            "succeeded": outcomes["succeeded"],
            "failed": outcomes["failed_reported"] + outcomes["failed_unreported"],
        },
        "rate_limit": {
            "requests_per_minute": user.rate_limit_per_minute,
            # The `cueapi` CLI reads `limit` (CLIENTS.md §9.11); the SDK ignores extra keys.
            "limit": user.rate_limit_per_minute,
            "current_usage": rate_limit_current_usage,
        },
        "upgrade_url": "https://dashboard.cueapi.ai/billing",
    }
