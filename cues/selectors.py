import re
from datetime import datetime

from accounts.models import User
from cueapi.errors import AppError
from cues.models import Cue

# Wider than the ids we issue (cue_ + 12), narrow enough that nothing odd (a NUL byte, which
# PostgreSQL refuses outright) ever reaches the database.
CUE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,20}")


def cue_get(*, user: User, cue_id: str, for_update: bool = False) -> Cue:
    """The caller's cue, or 404 `cue_not_found` (also for someone else's or a malformed id)."""
    if not CUE_ID_PATTERN.fullmatch(cue_id):
        raise AppError("cue_not_found", "Cue not found", 404)
    queryset = Cue.objects.select_for_update(no_key=True) if for_update else Cue.objects
    cue = queryset.filter(user=user, pk=cue_id).first()
    if cue is None:
        raise AppError("cue_not_found", "Cue not found", 404)
    return cue


def cue_list(*, user: User, status: str | None = None, limit: int, offset: int) -> tuple[list[Cue], int]:
    """(page of cues newest first, total)."""
    queryset = Cue.objects.filter(user=user)
    if status:
        queryset = queryset.filter(status=status)
    total = queryset.count()
    return list(queryset.order_by("-created_at", "-id")[offset : offset + limit]), total


def cue_executions(*, cue: Cue, limit: int, offset: int) -> tuple[list, int]:
    """(page of the cue's executions newest first, total)."""
    queryset = cue.executions.all()
    total = queryset.count()
    return list(queryset.order_by("-created_at", "-id")[offset : offset + limit]), total


def user_has_active_worker(*, user: User, since: datetime) -> bool:
    return user.workers.filter(last_heartbeat__gte=since).exists()

