import re
from datetime import datetime

from django.db import connection

from accounts.models import User
from cueapi.errors import AppError
from cueapi.rows import RowLoader, fetch, fetch_page
from cues.models import Cue

# Wider than the ids we issue (cue_ + 12), narrow enough that nothing odd (a NUL byte, which
# PostgreSQL refuses outright) ever reaches the database.
CUE_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,20}")
# A cue is read by hand-written SQL on the API's hot paths (see cueapi.rows).
CUE_ROWS = RowLoader(Cue)


def cue_not_found() -> AppError:
    return AppError("cue_not_found", "Cue not found", 404)


def cue_get(*, user: User, cue_id: str, for_update: bool = False) -> Cue:
    """The caller's cue, or 404 `cue_not_found` (also for someone else's or a malformed id)."""
    if not CUE_ID_PATTERN.fullmatch(cue_id):
        raise cue_not_found()
    sql = f"SELECT {CUE_ROWS.columns('cues')} FROM cues WHERE user_id = %s AND id = %s"
    if for_update and connection.features.has_select_for_no_key_update:
        sql += " FOR NO KEY UPDATE"
    rows = fetch(sql, [CUE_ROWS.param("user", user.pk), cue_id])
    if not rows:
        raise cue_not_found()
    return CUE_ROWS.load(rows[0])


def cue_list(*, user: User, status: str | None = None, limit: int, offset: int) -> tuple[list[Cue], int]:
    """(page of cues newest first, total)."""
    where, params = "user_id = %s", [CUE_ROWS.param("user", user.pk)]
    if status:
        where, params = where + " AND status = %s", [*params, status]
    page, (total,) = fetch_page(CUE_ROWS.columns("cues"), f"FROM cues WHERE {where}", params,
                                aggregates=["COUNT(*)"], order_by="created_at DESC, id DESC",
                                limit=limit, offset=offset)
    return [CUE_ROWS.load(row) for row in page], total


def cue_executions(*, cue: Cue, limit: int, offset: int) -> tuple[list, int]:
    """(page of the cue's executions newest first, total)."""
    queryset = cue.executions.all()
    total = queryset.count()
    return list(queryset.order_by("-created_at", "-id")[offset : offset + limit]), total


def user_has_active_worker(*, user: User, since: datetime) -> bool:
    return user.workers.filter(last_heartbeat__gte=since).exists()

