"""Cue rules: create, update (pause/resume), delete. Views validate shapes; this checks
meaning, in the reference's order (SERVER.md §3.4), and persists nothing on error."""

import json
from collections import Counter
from datetime import date, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.audit import Actor, audit_entry, audit_record, audit_statement
from accounts.models import NO_LIMIT, AuditEntry, User, cue_limit_message, limit_reached
from accounts.selectors import user_limited_cue_count
from cueapi.errors import AppError, RequestValidationError
from cueapi.rows import cascade_delete, db_time, execute, execute_together, fetch, in_list
from cueapi.urlsafety import UnsafeURL, validate_url
from cueapi.validation import contains_nul
from cues import schedule as schedule_math
from cues.models import Cue, default_backoff_minutes, default_on_failure
from cues.representations import NO_ACTIVE_WORKER_WARNING, NO_TASK_WARNING
from cues.selectors import CUE_ID_PATTERN, CUE_ROWS, cue_get, cue_not_found, user_has_active_worker

MAX_PAYLOAD_BYTES = 1_048_576
DEFAULT_RETRY = {"max_attempts": 3, "backoff_minutes": default_backoff_minutes()}


def _duplicate_name(name):
    return AppError("duplicate_cue_name", f"A cue named '{name}' already exists", 409)


def _check_cue_limit(user: User) -> None:
    """403 when the user's active and paused cues fill their active_cue_limit (0 = no limit)."""
    if limit_reached(used=user_limited_cue_count(user=user), limit=user.active_cue_limit):
        raise AppError("cue_limit_exceeded", cue_limit_message(user.active_cue_limit), 403)


def check_callback_url(url, *, prefix=""):
    """400 `invalid_callback_url` for a URL the server won't call (SSRF rules, cueapi/urlsafety):
    callbacks, on_failure webhooks and alert channels alike."""
    try:
        validate_url(url)
    except UnsafeURL as exc:
        raise AppError("invalid_callback_url", f"{prefix}{exc}", 400) from None


def check_payload(payload):
    if contains_nul(payload):
        raise AppError("invalid_payload", "Payload contains null bytes which are not supported", 400)
    if len(json.dumps(payload, ensure_ascii=False).encode()) > MAX_PAYLOAD_BYTES:
        raise AppError("invalid_payload_size", "Payload must be under 1MB", 400)


def _check_timezone(name):
    try:
        schedule_math.get_zone(name)
    except schedule_math.ScheduleError as exc:
        raise AppError("invalid_timezone", str(exc), 422) from None


def resolve_schedule(
    *, schedule_type: str, cron: str | None, at: datetime | None, tz_name: str, now: datetime
) -> tuple[datetime | None, datetime]:
    """(schedule_at, next_run) for a schedule; 400 `invalid_schedule`, 422 if it fires too often."""
    if schedule_type == Cue.ScheduleType.RECURRING:
        try:
            next_run = schedule_math.next_fire(cron, tz_name, now)
        except schedule_math.ScheduleError as exc:
            raise AppError("invalid_schedule", str(exc), 400) from None
        _check_min_interval(cron)
        return None, next_run
    if schedule_type == Cue.ScheduleType.ONCE:
        if at is None:
            raise AppError("invalid_schedule", "Timestamp is required for one-time schedules", 400)
        if at <= now:
            raise AppError("invalid_schedule", "Scheduled time must be in the future", 400)
        return at, at
    raise AppError("invalid_schedule", "Schedule type must be 'once' or 'recurring'", 400)


def _check_min_interval(cron: str) -> None:
    """422 for a schedule that fires more often than the server allows: one user's
    per-second crons must not cost the engine what everyone else's schedules do."""
    interval = schedule_math.min_interval_seconds(cron)
    minimum = settings.CUEAPI_MIN_SCHEDULE_INTERVAL_SECONDS
    if interval >= minimum:
        return
    message = (
        f"This schedule fires as often as every {_seconds(interval)}; the minimum interval on this "
        f"server is {_seconds(minimum)}. Use a schedule that fires at most once every {_seconds(minimum)}"
    )
    if len(schedule_math.normalize_cron(cron).split(" ")) == 6:
        message += " (the 6th field is the seconds: '* * * * * 0' fires once a minute)"
    raise RequestValidationError([("body.schedule.cron", message)])


def _seconds(count: int) -> str:
    return "1 second" if count == 1 else f"{count} seconds"


def _check_on_failure_webhook(on_failure):
    if on_failure and on_failure.get("webhook"):
        check_callback_url(on_failure["webhook"], prefix="on_failure.webhook: ")


def _check_on_success_target(*, user, target_id: str | None, cue_id: str | None = None) -> None:
    """`on_success_fire` names another cue of the same owner (422 on body.on_success_fire)."""
    if target_id is None:
        return
    if target_id == cue_id:
        problem = "A cue can't fire itself on success; name another cue"
    elif not Cue.objects.filter(user=user, pk=target_id).exists():
        problem = f"No cue {target_id} of yours exists; name one of your cues by its id"
    else:
        return
    raise RequestValidationError([("body.on_success_fire", problem)])


# Who knows a user's alert channels: the alerts app, above this one, registers a function
# (user, ids) -> the ids that are not that user's channels (alerts/apps.py).
ALERT_CHANNEL_LOOKUPS = []

ALERT_FIELDS = {"failure_threshold": "alert_failure_threshold", "recovery_threshold": "alert_recovery_threshold",
                "repeat_every_minutes": "alert_repeat_minutes", "notify_recovery": "alert_notify_recovery",
                "muted_until": "alert_muted_until", "channels": "alert_channels"}


def _apply_alert_settings(cue, alerts, *, user) -> set:
    """Set the sent keys of an `alerts` object on the cue; return the fields changed. Channel
    ids must name the user's alert channels (422 on body.alerts.channels)."""
    if "channels" in alerts and alerts["channels"] is not None:
        ids = list(dict.fromkeys(alerts["channels"]))
        unknown = [i for lookup in ALERT_CHANNEL_LOOKUPS for i in lookup(user, ids)]
        if unknown:
            raise RequestValidationError([("body.alerts.channels", f"No alert channel {unknown[0]} of yours exists; "
                                           "list the ids of your alert channels (GET /v1/alert-channels)")])
        alerts = {**alerts, "channels": ids}
    fields = set()
    for key, field in ALERT_FIELDS.items():
        if key in alerts:
            setattr(cue, field, alerts[key])
            fields.add(field)
    return fields


# What any pause clears, whoever pauses: nothing is due, and no slot waits under buffer_one
# (it would fire stale on resume).
PAUSE_CLEARS = ("next_run", "next_slot", "overlap_buffered_slot")


def _next_run_on_resume(cue, now):
    """A resumed cue's next_run (and next_slot): a recurring one's next slot from now (it
    completes if its window is over), a one-time one's time, which if passed fires on the
    next poll (as the reference). A one-time cue that already fired at its time (paused while
    its run went wrong, e.g. by a 410) runs again now: its time's slot is taken, and firing
    there again would be refused as a duplicate, leaving the cue active with nothing due."""
    if cue.schedule_type == Cue.ScheduleType.RECURRING:
        _schedule_next(cue, now)
    else:
        cue.next_run, cue.next_slot = (now if cue.fired_count else cue.schedule_at), None


def _check_pause(*, key: str, value, paused: bool, why_not: str, now: datetime) -> None:
    """A timed pause's fields (paused_until, pause_note) belong to a pause: 422 on `key` when
    the cue won't be paused (`why_not` says why), or when paused_until has already passed."""
    if value is None:
        return
    if not paused:
        raise RequestValidationError([(f"body.{key}", f"{key} belongs to a pause: {why_not}")])
    if key == "paused_until" and value <= now:
        raise RequestValidationError([("body.paused_until", "paused_until is in the past; give a later time, "
                                       "or leave it out to pause until the cue is resumed")])


def _check_pause_update(cue, data, now) -> None:
    """PATCH: paused_until and pause_note go with "status": "paused", or alone on a paused cue."""
    target = data.get("status", cue.status)
    if "status" in data:
        why_not = f'send it with "status": "paused", not "{target}"'
    else:
        why_not = f'this cue is {cue.status}; send "status": "paused" with it'
    for key in ("paused_until", "pause_note"):
        _check_pause(key=key, value=data.get(key), paused=target == Cue.Status.PAUSED, why_not=why_not, now=now)


RESUME_FAILED_NOTE = ("Still paused: its timed pause ended, but its next run can't be computed ({reason}). "
                      "Fix the schedule with PATCH, then set status to active.")


def cue_resume_due(*, cue: Cue, now: datetime) -> bool:
    """End a timed pause that has come (the poller's sweep): the cue resumes as PATCH
    {"status": "active"} resumes it (`_next_run_on_resume`), from paused_until rather than from
    now, so a slot exactly at paused_until runs and slots a late poller finds already passed
    go by the cue's catch-up policy. Guarded on the paused_until read: a pause changed
    meanwhile, or another poller that got there first, makes it a no-op (False)."""
    until = cue.paused_until
    guard = Cue.objects.filter(pk=cue.pk, status=Cue.Status.PAUSED, paused_until=until)
    cue.status = Cue.Status.ACTIVE
    try:
        # Slots come strictly after the instant given: a microsecond earlier keeps one at `until`.
        _next_run_on_resume(cue, until - timedelta(microseconds=1))
    except Exception as exc:  # noqa: BLE001 - the schedule broke while paused: stay paused, say why,
        # stop the timer (else the sweep would meet it again every cycle)
        reason = exc.message if isinstance(exc, AppError) else f"internal error: {type(exc).__name__}"
        return bool(guard.update(paused_until=None, pause_note=RESUME_FAILED_NOTE.format(reason=reason)[:500],
                                 updated_at=now))
    return bool(guard.update(status=cue.status, next_run=cue.next_run, next_slot=cue.next_slot,
                             paused_until=None, pause_note=None, updated_at=now))


# The schedule keys that change when a cue fires; the window's keys and their columns.
TIMING_KEYS = {"type", "cron", "at", "timezone"}
WINDOW_FIELDS = {"start_at": "schedule_start_at", "end_at": "schedule_end_at", "jitter_seconds": "jitter_seconds"}


def _schedule_next(cue, now):
    """Set an active cue's next_run (and the slot it delivers, next_slot) from its schedule:
    a recurring cue's first slot after now within its window, jittered; when the window has
    no slot left, the cue is completed."""
    if cue.schedule_type != Cue.ScheduleType.RECURRING:
        cue.next_run, cue.next_slot = cue.schedule_at, None
        return
    try:
        cue.next_slot, cue.next_run = cue.upcoming(now)
    except schedule_math.ScheduleError as exc:
        raise AppError("invalid_schedule", str(exc), 400) from None
    if cue.next_run is None:
        cue.status = Cue.Status.COMPLETED


def _check_window(cue, now, *, sent):
    """A window (start_at/end_at) and jitter belong to recurring schedules; start_at < end_at,
    and end_at is not past. 422 on the field at fault. A one-time cue drops any it had."""
    if cue.schedule_type != Cue.ScheduleType.RECURRING:
        for key in ("start_at", "end_at"):
            if sent.get(key) is not None:
                raise RequestValidationError([(f"body.schedule.{key}", "Only recurring schedules have a "
                                               "start_at or end_at; remove it or use a cron")])
        if sent.get("jitter_seconds"):
            raise RequestValidationError([("body.schedule.jitter_seconds", "Only recurring schedules have jitter")])
        cue.schedule_start_at = cue.schedule_end_at = None
        cue.jitter_seconds = 0
        return
    start, end = cue.schedule_start_at, cue.schedule_end_at
    if start is not None and end is not None and start >= end:
        raise RequestValidationError([("body.schedule.end_at", "end_at must be later than start_at")])
    if end is not None and end <= now and "end_at" in sent:
        raise RequestValidationError([("body.schedule.end_at", "end_at is in the past; give a later time "
                                       "or leave it out")])
    if start is not None and sent.get("start_at") is not None:
        try:
            cue.upcoming(now)
        except schedule_math.ScheduleError:  # the first slot from start_at is past year 9999
            raise RequestValidationError([("body.schedule.start_at", "No slot of this schedule comes at or after "
                                           "start_at before the year 10000; give an earlier start_at")]) from None


# What an audit entry records of a cue: its settings, not what the engine keeps (next_run,
# counters) nor status (pause and resume are entries of their own).
AUDITED_FIELDS = ("name", "description", "schedule_type", "schedule_cron", "schedule_at", "schedule_timezone",
                  "schedule_start_at", "schedule_end_at", "jitter_seconds", "overlap", "callback_url",
                  "callback_method", "callback_transport", "callback_headers", "payload", "retry_max_attempts",
                  "retry_backoff_minutes", "on_failure", "verification_mode", "required_assertions", "catch_up",
                  "outcome_deadline_seconds", "webhook_timeout_seconds", "on_success_fire",
                  "require_payload_override", "required_payload_keys")


def _url_without_secrets(url):
    """A URL as an audit entry keeps it: no user:password, no query string (tokens live there)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


def _audit_value(field, value):
    if field in ("callback_headers", "payload"):  # values may be credentials: keys only
        return sorted(value) if isinstance(value, dict) else (None if value is None else "[not recorded]")
    if field == "callback_url":
        return _url_without_secrets(value)
    if field == "on_failure" and isinstance(value, dict):
        return {**value, "webhook": _url_without_secrets(value.get("webhook"))} if "webhook" in value else value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def cue_audit_snapshot(cue: Cue) -> dict:
    return {field: _audit_value(field, getattr(cue, field)) for field in AUDITED_FIELDS}


def _audit_changes(before: dict, after: dict) -> dict:
    return {field: {"from": before[field], "to": after[field]} for field in after if before[field] != after[field]}


def cue_create(*, user, data, actor: Actor, now=None):
    """Create a cue from validated input; return (cue, warning).

    Errors come in the reference's order: duplicate name, cue limit, then the content checks.
    The content checks (with the callback URL's DNS lookup) run first, outside any transaction,
    and an error of theirs waits until the name and the limit have been checked. On the way to
    a 201 the unique constraint is what finds a duplicate name, and the owner's row is locked
    (two creates at once must not both pass the limit check) only when there is a cue limit.
    """
    now = now or timezone.now()
    name = data["name"]
    try:
        cue = _new_cue(user=user, data=data, now=now)
    except (AppError, RequestValidationError):
        if Cue.objects.filter(user=user, name=name).exists():
            raise _duplicate_name(name) from None
        _check_cue_limit(user)
        raise
    # The cue and its audit entry commit together: one statement on PostgreSQL (no BEGIN or
    # COMMIT round trips, one WAL flush). Inside a caller's transaction, under a savepoint,
    # which keeps it usable after a duplicate.
    writes = (CUE_ROWS.insert_statement(cue),
              audit_statement(user_id=cue.user_id, actor=actor, action=AuditEntry.Action.CUE_CREATED,
                              target_id=cue.pk, changes={**cue_audit_snapshot(cue), "status": cue.status}, now=now))
    try:
        if user.active_cue_limit == NO_LIMIT:
            execute_together(*writes)
        else:
            with transaction.atomic():
                owner = User.objects.select_for_update(no_key=True).only("pk", "active_cue_limit").get(pk=user.pk)
                if limit_reached(used=user_limited_cue_count(user=owner), limit=owner.active_cue_limit):
                    if Cue.objects.filter(user=owner, name=name).exists():
                        raise _duplicate_name(name)
                    raise AppError("cue_limit_exceeded", cue_limit_message(owner.active_cue_limit), 403)
                execute_together(*writes, savepoint=False)  # this atomic block rolls back on error
    except IntegrityError:  # unique_user_cue_name
        raise _duplicate_name(name) from None
    return cue, cue_worker_warning(cue=cue, now=now)


# Rounds of "create, else update" an upsert may take: a cue deleted between finding it and
# updating it sends the upsert back to create, and a create that loses to a concurrent one
# back to update. Two rounds settle any single interleaving; the third is slack.
UPSERT_ROUNDS = 3


def cue_upsert(*, user, data, changes, actor: Actor, now=None):
    """Create the cue named `data["name"]` (validated create input), or, when the user has
    one by that name, apply `changes` to it through cue_update (PATCH's rules, PATCH's
    errors). Return (cue, warning, created).

    No lock: the unique (user, name) constraint decides. A create that loses to a concurrent
    upsert of the same name gets cue_create's 409 and goes on as an update, so concurrent
    upserts of one name make one cue and every other one updates it.
    """
    now = now or timezone.now()
    for _ in range(UPSERT_ROUNDS):
        existing = Cue.objects.filter(user=user, name=data["name"]).only("pk", "callback_transport").first()
        if existing is None:
            try:
                cue, warning = cue_create(user=user, data=data, actor=actor, now=now)
                return cue, warning, True
            except AppError as exc:
                if exc.code != "duplicate_cue_name":
                    raise
                continue  # created meanwhile: update it
        _check_same_transport(existing, data["transport"])
        try:
            cue, warning = cue_update(user=user, cue_id=existing.pk, data=changes, actor=actor, now=now)
            return cue, warning, False
        except AppError as exc:
            if exc.code != "cue_not_found":
                raise
            # deleted meanwhile: create it
    raise AppError("upsert_conflict", "The cue kept changing under this request; send it again", 409)


def _check_same_transport(cue: Cue, transport: str) -> None:
    """A cue's transport is fixed: its executions are either sent or claimed (PATCH can't
    change it either)."""
    if cue.callback_transport != transport:
        raise RequestValidationError([(
            "body.transport",
            f"The transport of an existing cue can't change: '{cue.name}' is a {cue.callback_transport} cue "
            f"and this body makes a {transport} cue (an absent transport means webhook). Send "
            f'"transport": "{cue.callback_transport}", or delete the cue and create it again.',
        )])


def _new_cue(*, user, data, now):
    """The unsaved cue for validated input, after the content checks in the reference's order."""
    transport = data.get("transport") or Cue.Transport.WEBHOOK
    callback = data.get("callback") or {}
    sched = data["schedule"]
    tz_name = sched.get("timezone", "UTC")
    payload = data.get("payload")
    payload = {} if payload is None else payload

    if transport == Cue.Transport.WEBHOOK:
        check_callback_url(callback["url"])
    check_payload(payload)
    _check_timezone(tz_name)
    schedule_at, _ = resolve_schedule(
        schedule_type=sched["type"], cron=sched.get("cron"), at=sched.get("at"),
        tz_name=tz_name, now=now,
    )
    on_failure = {**default_on_failure(), **(data.get("on_failure") or {})}
    _check_on_failure_webhook(on_failure)
    retry = {**DEFAULT_RETRY, **(data.get("retry") or {})}
    verification = data.get("verification")
    delivery = data.get("delivery") or {}
    _check_on_success_target(user=user, target_id=data.get("on_success_fire"))
    # Create has no status: a paused_until makes the new cue paused until then.
    paused_until = data.get("paused_until")
    _check_pause(key="paused_until", value=paused_until, paused=True, why_not="", now=now)
    _check_pause(key="pause_note", value=data.get("pause_note"), paused=paused_until is not None, now=now,
                 why_not="a new cue is paused only with a paused_until; send one, or pause the cue with PATCH")

    cue = Cue(
        user=user,
        name=data["name"],
        description=data.get("description"),
        schedule_type=sched["type"],
        schedule_cron=sched.get("cron") or None,
        schedule_at=schedule_at,
        schedule_timezone=tz_name,
        callback_url=callback.get("url"),
        callback_method=callback.get("method") or "POST",
        callback_transport=transport,
        callback_headers=callback.get("headers") or {},
        payload=payload,
        retry_max_attempts=retry["max_attempts"],
        retry_backoff_minutes=retry["backoff_minutes"],
        schedule_start_at=sched.get("start_at"),
        schedule_end_at=sched.get("end_at"),
        jitter_seconds=sched.get("jitter_seconds") or 0,
        overlap=data.get("overlap") or Cue.Overlap.ALLOW,
        on_failure=on_failure,
        # Never configured -> NULL (the API shows `verification: null`).
        verification_mode=None if verification is None else verification.get("mode", "none"),
        required_assertions=(verification or {}).get("required_assertions"),
        catch_up=data.get("catch_up") or Cue.CatchUp.LATEST,
        outcome_deadline_seconds=delivery.get("outcome_deadline_seconds"),
        webhook_timeout_seconds=delivery.get("timeout_seconds"),
        max_in_flight=delivery.get("max_in_flight"),
        on_success_fire=data.get("on_success_fire"),
        require_payload_override=bool(data.get("require_payload_override")),
        required_payload_keys=_unique(data.get("required_payload_keys")),
    )
    _apply_alert_settings(cue, data.get("alerts") or {}, user=user.pk)
    _check_window(cue, now, sent=sched)
    _schedule_next(cue, now)
    if paused_until is not None:
        cue.status, cue.next_run, cue.next_slot = Cue.Status.PAUSED, None, None
        cue.paused_until, cue.pause_note = paused_until, data.get("pause_note")
    return cue


def _unique(keys: list[str] | None) -> list[str] | None:
    """The required payload keys without repeats, in the order given."""
    return None if keys is None else list(dict.fromkeys(keys))


def cue_worker_warning(*, cue: Cue, now: datetime) -> str | None:
    """Why a worker cue may never run, for the response's `warning` (None if nothing to say).
    cueapi-worker claims only executions whose payload.task names one of its handlers."""
    if cue.callback_transport != Cue.Transport.WORKER:
        return None
    warnings = []
    task = (cue.payload or {}).get("task")
    if not (isinstance(task, str) and task.strip()):
        warnings.append(NO_TASK_WARNING)
    since = now - timedelta(seconds=settings.CUEAPI_WORKER_ACTIVE_SECONDS)
    if not user_has_active_worker(user=cue.user, since=since):
        warnings.append(NO_ACTIVE_WORKER_WARNING)
    return " ".join(warnings) or None


@transaction.atomic
def cue_update(*, user, cue_id, data, actor: Actor, now=None):
    """PATCH: only what is sent changes (DESIGN.md §3.4), checked in the reference's order;
    return (cue, warning) as cue_create does.

    The row is locked for the change, so the poller's next_run update can't interleave. The
    audit gets `cue.updated` for changed settings and `cue.paused`/`cue.resumed` for a status
    change (both when a PATCH does both); a PATCH that changes nothing records nothing.
    """
    now = now or timezone.now()
    cue = cue_get(user=user, cue_id=cue_id, for_update=True)
    before, status_before = cue_audit_snapshot(cue), cue.status
    fields = set()

    if "name" in data and data["name"] != cue.name:
        if Cue.objects.filter(user_id=cue.user_id, name=data["name"]).exclude(pk=cue.pk).exists():
            raise _duplicate_name(data["name"])
        cue.name = data["name"]
        fields.add("name")
    if "description" in data:
        cue.description = data["description"]
        fields.add("description")
    if "callback" in data:
        callback = data["callback"]
        if "url" in callback:
            if cue.callback_transport == Cue.Transport.WEBHOOK:
                check_callback_url(callback["url"])
            cue.callback_url = callback["url"]
        if "method" in callback:
            cue.callback_method = callback["method"]
        if "headers" in callback:
            cue.callback_headers = callback["headers"] or {}
        fields.update(["callback_url", "callback_method", "callback_headers"])
    if "payload" in data:
        check_payload(data["payload"])
        cue.payload = data["payload"]
        fields.add("payload")
    if "retry" in data:
        retry = data["retry"]
        cue.retry_max_attempts = retry.get("max_attempts", cue.retry_max_attempts)
        cue.retry_backoff_minutes = retry.get("backoff_minutes", cue.retry_backoff_minutes)
        fields.update(["retry_max_attempts", "retry_backoff_minutes"])
    if "verification" in data:
        verification = data["verification"]
        cue.verification_mode = verification.get("mode", cue.verification_mode or "none")
        if "required_assertions" in verification:
            cue.required_assertions = verification["required_assertions"]
        fields.update(["verification_mode", "required_assertions"])
    if "on_failure" in data:
        on_failure = {**default_on_failure(), **(cue.on_failure or {}), **data["on_failure"]}
        _check_on_failure_webhook(on_failure)
        cue.on_failure = on_failure
        fields.add("on_failure")
    if "catch_up" in data:
        cue.catch_up = data["catch_up"]
        fields.add("catch_up")
    delivery = data.get("delivery") or {}
    if "outcome_deadline_seconds" in delivery:
        cue.outcome_deadline_seconds = delivery["outcome_deadline_seconds"]
        fields.add("outcome_deadline_seconds")
    if "timeout_seconds" in delivery:
        cue.webhook_timeout_seconds = delivery["timeout_seconds"]
        fields.add("webhook_timeout_seconds")
    if "max_in_flight" in delivery:
        cue.max_in_flight = delivery["max_in_flight"]
        fields.add("max_in_flight")
    if "on_success_fire" in data:
        _check_on_success_target(user=cue.user_id, target_id=data["on_success_fire"], cue_id=cue.pk)
        cue.on_success_fire = data["on_success_fire"]
        fields.add("on_success_fire")
    if "overlap" in data:
        cue.overlap = data["overlap"]
        fields.add("overlap")
        if cue.overlap != Cue.Overlap.BUFFER_ONE:
            cue.overlap_buffered_slot = None  # nothing waits under the other policies
            fields.add("overlap_buffered_slot")
    if "require_payload_override" in data:
        cue.require_payload_override = data["require_payload_override"]
        fields.add("require_payload_override")
    if "required_payload_keys" in data:  # null clears it
        cue.required_payload_keys = _unique(data["required_payload_keys"])
        fields.add("required_payload_keys")
    if "alerts" in data:
        fields |= _apply_alert_settings(cue, data["alerts"], user=cue.user_id)
    if "schedule" in data:
        sched = data["schedule"]
        if TIMING_KEYS & set(sched):
            # Without `type`, the cue's own type (and what it doesn't send) is kept.
            schedule_type = sched.get("type", cue.schedule_type)
            kept = "type" not in sched
            cron = sched.get("cron", cue.schedule_cron if kept else None)
            tz_name = sched.get("timezone", cue.schedule_timezone)
            _check_timezone(tz_name)
            cue.schedule_at, _ = resolve_schedule(
                schedule_type=schedule_type, cron=cron, tz_name=tz_name, now=now,
                at=sched.get("at", cue.schedule_at if kept else None))
            cue.schedule_type = schedule_type
            cue.schedule_cron = cron if schedule_type == Cue.ScheduleType.RECURRING else None
            cue.schedule_timezone = tz_name
        for key, field in WINDOW_FIELDS.items():
            if key in sched:
                setattr(cue, field, sched[key] if sched[key] is not None or key != "jitter_seconds" else 0)
        _check_window(cue, now, sent=sched)
        if cue.status == Cue.Status.ACTIVE:  # a paused cue keeps no next_run; resuming computes it
            _schedule_next(cue, now)
        fields.update(["schedule_type", "schedule_cron", "schedule_at", "schedule_timezone", "next_run", "next_slot",
                       "status", *WINDOW_FIELDS.values()])
    _check_pause_update(cue, data, now)
    if "status" in data and data["status"] != cue.status:
        if cue.status not in (Cue.Status.ACTIVE, Cue.Status.PAUSED):
            # A completed/failed cue coming back counts against the limit again.
            user = User.objects.select_for_update(no_key=True).get(pk=cue.user_id)
            _check_cue_limit(user)
        cue.status = data["status"]
        if cue.status == Cue.Status.ACTIVE:
            _next_run_on_resume(cue, now)
        else:
            for field in PAUSE_CLEARS:
                setattr(cue, field, None)
        # The pause's own fields, or none: a resume and a plain pause clear them (and with
        # them the server's reason for an earlier pause).
        cue.paused_until, cue.pause_note = data.get("paused_until"), data.get("pause_note")
        fields.update(["status", *PAUSE_CLEARS, "paused_until", "pause_note"])
    elif cue.status == Cue.Status.PAUSED:
        # Already paused. "status": "paused" again is a new pause: it takes the paused_until
        # and pause_note sent, null for what is not (a plain pause has neither, as on an
        # active cue). Without a status, only what is sent changes.
        for key in ("paused_until", "pause_note"):
            if "status" in data or key in data:
                setattr(cue, key, data.get(key))
                fields.add(key)

    try:
        with transaction.atomic():
            cue.save(update_fields=[*fields, "updated_at"])
            _audit_update(cue, before, status_before, actor=actor, now=now)
    except IntegrityError:
        raise _duplicate_name(cue.name) from None
    return cue, cue_worker_warning(cue=cue, now=now)


def _audit_update(cue, before, status_before, *, actor, now):
    changes = _audit_changes(before, cue_audit_snapshot(cue))
    if changes:
        audit_record(user_id=cue.user_id, actor=actor, action=AuditEntry.Action.CUE_UPDATED, target_id=cue.pk,
                     changes=changes, now=now)
    if cue.status != status_before and cue.status in (Cue.Status.ACTIVE, Cue.Status.PAUSED):
        action = AuditEntry.Action.CUE_RESUMED if cue.status == Cue.Status.ACTIVE else AuditEntry.Action.CUE_PAUSED
        audit_record(user_id=cue.user_id, actor=actor, action=action, target_id=cue.pk,
                     changes={"status": {"from": status_before, "to": cue.status}}, now=now)


def cue_delete(*, user: User, cue_id: str, actor: Actor) -> None:
    """Delete the user's cue; its executions (with their outbox rows and attempts), fire keys and
    alert streak go with it, as the model's CASCADEs say. 404 `cue_not_found` for an unknown
    or someone else's id. One statement on PostgreSQL (cueapi.rows.cascade_delete)."""
    if not CUE_ID_PATTERN.fullmatch(cue_id):
        raise cue_not_found()
    with transaction.atomic():
        deleted = cascade_delete(Cue, "id = %s AND user_id = %s", [cue_id, CUE_ROWS.param("user", user.pk)],
                                 returning=["name"])
        if not deleted:
            raise cue_not_found()
        audit_record(user_id=user.pk, actor=actor, action=AuditEntry.Action.CUE_DELETED, target_id=cue_id,
                     changes={"name": deleted[0][0]})


def cue_bulk_delete(*, user: User, ids: list[str], actor: Actor) -> tuple[list[str], list[str]]:
    """Delete those of `ids` that are the user's cues, all in one transaction, and return
    (deleted, skipped), both in the order of `ids`.

    Unknown, malformed and other users' ids are all just skipped (nothing tells them apart);
    an id sent twice is deleted once, then skipped. The cost does not grow with the number of
    ids: one SELECT of the caller's matching ids, then one QuerySet.delete(), whose collector
    cascades exactly as cue_delete's Model.delete() does (executions, their outbox rows and
    delivery attempts), a statement per table."""
    # A malformed id can't be a cue; filtering it here keeps odd strings (NUL) from the database.
    candidates = {cue_id for cue_id in ids if CUE_ID_PATTERN.fullmatch(cue_id)}
    with transaction.atomic():
        names = dict(Cue.objects.filter(user=user, pk__in=candidates).values_list("pk", "name"))
        owned = set(names)
        if owned:
            Cue.objects.filter(user=user, pk__in=owned).delete()
            now = timezone.now()
            AuditEntry.objects.bulk_create([
                audit_entry(user_id=user.pk, actor=actor, action=AuditEntry.Action.CUE_DELETED, target_id=cue_id,
                            changes={"name": name}, now=now)
                for cue_id, name in names.items()])
    deleted, skipped = [], []
    for cue_id in ids:
        if cue_id in owned:
            deleted.append(cue_id)
            owned.discard(cue_id)  # a repeat of it is skipped
        else:
            skipped.append(cue_id)
    return deleted, skipped


def cue_record_run(*, cue: Cue, now: datetime, finished: bool, ran: bool = True,
                   once_status: str | None = None, pause: bool = False) -> None:
    """The one UPDATE of a cue after one of its executions moved (executions/lifecycle.py):
    run_count when an attempt ran; last_run when the execution is finished; a one-time cue's
    final status; the pause asked for by `on_failure.pause`."""
    statement = cue_record_run_statement(cue=cue, now=now, finished=finished, ran=ran, once_status=once_status,
                                         pause=pause)
    if statement:
        execute(*statement)


def cue_record_run_statement(*, cue: Cue, now: datetime, finished: bool, ran: bool = True,
                             once_status: str | None = None, pause: bool = False,
                             condition: str = "") -> tuple[str, list] | None:
    """cue_record_run's UPDATE as (sql, params), or None when it changes nothing; `condition`
    is ANDed to its WHERE (a guard's, for rows.execute_guarded)."""
    # Hand-written (see cueapi.rows): it runs for every outcome a worker reports. Every
    # right-hand side reads the row as it was before this UPDATE.
    sets, params = (["run_count = run_count + 1"] if ran else []), []
    if finished:
        sets.append("last_run = %s")
        params.append(db_time(now))
    new_status = once_status if cue.schedule_type == Cue.ScheduleType.ONCE else None
    if pause:
        new_status = Cue.Status.PAUSED
        for field in PAUSE_CLEARS:
            column = Cue._meta.get_field(field).column
            sets.append(f"{column} = CASE WHEN status = %s THEN NULL ELSE {column} END")
            params.append(Cue.Status.ACTIVE)
    if new_status:
        # Only an active cue changes status: a cue paused by hand meanwhile stays paused.
        sets.append("status = CASE WHEN status = %s THEN %s ELSE status END")
        params += [Cue.Status.ACTIVE, new_status]
    if not sets:
        return None
    return (f"UPDATE cues SET {', '.join(sets)} WHERE id = %s" + (f" AND {condition}" if condition else ""),
            [*params, cue.pk])


# cue_runs_recorded's statements, hand-written: they run for every batch the dispatcher records.
LOCK_CUES_SQL = "SELECT id FROM cues WHERE id IN {ids} ORDER BY id FOR NO KEY UPDATE"
# Only an active one-time cue changes status: a cue paused by hand meanwhile stays paused.
CUE_RUNS_SQL = ("UPDATE cues SET run_count = run_count + %s, last_run = %s,"
                " status = CASE WHEN schedule_type = %s AND status = %s THEN %s ELSE status END WHERE id IN {ids}")


def cue_runs_recorded(*, cue_ids: list, now: datetime, once_status: str) -> None:
    """cue_record_run(finished=True) for a batch of finished executions (`cue_ids` may repeat a
    cue): one UPDATE per distinct number of runs. On PostgreSQL the cues are locked in id
    order first, so two dispatchers recording overlapping batches can't deadlock."""
    runs = Counter(cue_ids)
    if connection.vendor == "postgresql":
        fetch(LOCK_CUES_SQL.format(ids=in_list(runs)), list(runs))
    by_runs = {}
    for cue_id, count in runs.items():
        by_runs.setdefault(count, []).append(cue_id)
    for count, ids in by_runs.items():
        execute(CUE_RUNS_SQL.format(ids=in_list(ids)),
                [count, db_time(now), Cue.ScheduleType.ONCE, Cue.Status.ACTIVE, once_status, *ids])


def cue_park(*, cue_id: str, due: datetime, reason: str, now: datetime) -> bool:
    """Pause an active cue whose schedule can't be computed any more (a time zone the
    installed tzdata no longer has, a cron that no longer parses), with a note saying why:
    retrying can't help, and left due it would be picked up again on every cycle. Guarded on
    the `next_run` the poller read. The owner fixes the schedule and resumes it."""
    return bool(Cue.objects.filter(pk=cue_id, status=Cue.Status.ACTIVE, next_run=due).update(
        status=Cue.Status.PAUSED, **dict.fromkeys(PAUSE_CLEARS), pause_note=reason[:500], updated_at=now))


def cue_pause_with_note(*, cue_id: str, note: str, now: datetime) -> bool:
    """Pause an active cue for a reason of the server's (its endpoint answered 410 Gone), with
    a note saying why, until its owner resumes it (which clears the note). Only an active cue
    pauses, or one in a timed pause, which becomes indefinite (resuming by itself, it would send
    to the gone endpoint again); returns whether this call paused it."""
    pausable = Q(status=Cue.Status.ACTIVE) | Q(status=Cue.Status.PAUSED, paused_until__isnull=False)
    return bool(Cue.objects.filter(pausable, pk=cue_id).update(
        status=Cue.Status.PAUSED, **dict.fromkeys(PAUSE_CLEARS), paused_until=None, pause_note=note[:500],
        updated_at=now))
