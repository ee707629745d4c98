"""Response shapes of cues and executions (SERVER.md §3.4 CueResponse, §3.5 ExecutionResponse).

ExecutionResponse lives here, below the executions app, because GET /v1/cues/{id} embeds a
cue's executions and cues must not import executions (dependencies point one way).
"""

from cueapi.timefmt import ts_iso, ts_z

NO_ACTIVE_WORKER_WARNING = "No active workers found. Start a cueapi-worker to process this cue."
NO_TASK_WARNING = (
    "payload.task is not set. cueapi-worker runs the handler named by payload.task (not the cue's "
    "name), so no worker will claim this cue and its executions will be missed. "
    'Set e.g. "payload": {"task": "report"} and a handler named report in worker.yaml.'
)


def cue_to_dict(cue, *, warning=None):
    schedule = {"type": cue.schedule_type, "timezone": cue.schedule_timezone}
    if cue.schedule_cron:
        schedule["cron"] = cue.schedule_cron
    if cue.schedule_at:
        schedule["at"] = ts_iso(cue.schedule_at)
    schedule.update(start_at=ts_z(cue.schedule_start_at), end_at=ts_z(cue.schedule_end_at),
                    jitter_seconds=cue.jitter_seconds)
    return {
        "id": cue.id,
        "name": cue.name,
        "description": cue.description,
        "status": cue.status,
        "pause_note": cue.pause_note,
        "paused_until": ts_z(cue.paused_until),
        "transport": cue.callback_transport,
        "schedule": schedule,
        "callback": {
            "url": cue.callback_url,
            "method": cue.callback_method,
            "headers": cue.callback_headers or {},
        },
        "payload": cue.payload if cue.payload is not None else {},
        "retry": {
            "max_attempts": cue.retry_max_attempts,
            "backoff_minutes": cue.retry_backoff_minutes,
        },
        "next_run": ts_z(cue.next_run),
        "last_run": ts_z(cue.last_run),
        "run_count": cue.run_count,
        "fired_count": cue.fired_count,
        "on_failure": cue.on_failure,
        "verification": _verification(cue),
        "catch_up": cue.catch_up,
        # Both always integers (0: no outcome deadline): the SDK's model declares them `int`.
        "delivery": {"timeout_seconds": max(1, round(cue.webhook_timeout())),
                     "outcome_deadline_seconds": cue.outcome_deadline(), "max_in_flight": cue.max_in_flight},
        "on_success_fire": cue.on_success_fire,
        "overlap": cue.overlap,
        "require_payload_override": bool(cue.require_payload_override),
        "required_payload_keys": cue.required_payload_keys,
        "alerts": alert_settings(cue),
        "warning": warning,
        "created_at": ts_z(cue.created_at),
        "updated_at": ts_z(cue.updated_at),
    }


def alert_settings(cue):
    """The cue's `alerts` object (always present; the defaults are the server's old rule)."""
    return {
        "failure_threshold": cue.alert_failure_threshold,
        "recovery_threshold": cue.alert_recovery_threshold,
        "repeat_every_minutes": cue.alert_repeat_minutes,
        "notify_recovery": cue.alert_notify_recovery,
        "muted_until": ts_z(cue.alert_muted_until),
        "channels": cue.alert_channels,
    }


def _verification(cue):
    """null until verification was configured (as the reference), then the mode and the
    assertion keys every outcome must carry."""
    if cue.verification_mode is None and cue.required_assertions is None:
        return None
    return {"mode": cue.verification_mode or "none", "required_assertions": cue.required_assertions}


def execution_to_dict(execution):
    outcome = None
    if execution.outcome_recorded_at is not None:
        outcome = {
            "success": execution.outcome_success,
            "result": execution.outcome_result,
            "error": execution.outcome_error,
            "metadata": execution.outcome_metadata,
            "assertions": execution.outcome_assertions,
            "recorded_at": ts_z(execution.outcome_recorded_at),
        }
    return {
        "id": str(execution.id),
        "cue_id": execution.cue_id,
        "scheduled_for": ts_z(execution.scheduled_for),
        "status": execution.status,
        "http_status": execution.http_status,
        "attempts": execution.attempts,
        "error_message": execution.error_message,
        "started_at": ts_z(execution.started_at),
        "delivered_at": ts_z(execution.delivered_at),
        "last_attempt_at": ts_z(execution.last_attempt_at),
        "outcome": outcome,
        "created_at": ts_z(execution.created_at),
        "updated_at": ts_z(execution.updated_at),
    }


def execution_detail_to_dict(execution):
    """GET /v1/executions/{id}: the contract's 13 fields plus who holds the claim, which the
    `cueapi executions get` CLI command prints (CLIENTS.md §6), how it came about and what its
    success fired; lists keep the 13 fields."""
    return {
        **execution_to_dict(execution),
        "claimed_by_worker": execution.claimed_by_worker,
        "claimed_at": ts_z(execution.claimed_at),
        "triggered_by": execution.triggered_by,
        "replayed_from": None if execution.replayed_from is None else str(execution.replayed_from),
        "chained_from": None if execution.chained_from is None else str(execution.chained_from),
        "outcome_state": execution.outcome_state,
        "required_assertions": execution.required_assertions,
        "on_success_fire": execution.on_success_fire,
    }
