"""Outcomes: what the handler says happened (SERVER.md §5). Delivery is `status`; this is the
`outcome_*` columns and the verification state derived from the cue's verification mode."""

from django.db import transaction

from executions.models import Execution

RESULT_MAX = 4096  # what cueapi-worker sends (DESIGN.md §3.8)
SUMMARY_MAX = 500
EVIDENCE_MODES = {
    "require_external_id": lambda e: bool(e.get("external_id")),
    "require_result_url": lambda e: e.get("result_url") is not None,
    "require_artifacts": lambda e: bool(e.get("artifacts")),
}


def outcome_state_for(*, success, mode, evidence):
    """(outcome_state, evidence_validation_state) per the table of SERVER.md §5.2."""
    if not success:
        return "reported_failure", None
    if mode in (None, "none"):
        return "reported_success", None
    if mode == "manual":
        return "verification_pending", None
    if EVIDENCE_MODES[mode](evidence):
        return "verified_success", "valid"
    return "verification_failed", "invalid"


def _clip(value, limit):
    return value[:limit] if isinstance(value, str) else None


def outcome_from_reply(reply):
    """The outcome fields a webhook handler's 2xx JSON reply carries, made to fit our columns
    (a reply is not an API call: wrong types are dropped and long texts cut, not refused)."""
    metadata = reply.get("metadata")
    artifacts = reply.get("artifacts")
    result_url = reply.get("result_url")
    return {
        "success": reply["success"],
        "result": _clip(reply.get("result"), RESULT_MAX),
        "error": _clip(reply.get("error"), RESULT_MAX),
        "metadata": metadata if isinstance(metadata, dict) else None,
        "external_id": _clip(reply.get("external_id"), 500),
        "result_url": result_url if isinstance(result_url, str)
        and result_url.startswith(("http://", "https://")) else None,
        "result_ref": _clip(reply.get("result_ref"), 500),
        "result_type": _clip(reply.get("result_type"), 100),
        "summary": _clip(reply.get("summary"), SUMMARY_MAX),
        "artifacts": artifacts if isinstance(artifacts, list) else None,
    }


@transaction.atomic
def execution_record_outcome(*, execution_id, verification_mode, outcome, now):
    """Record an outcome once. Returns the outcome_state, or None if one was already recorded
    (the write is guarded, so a late or duplicate report never overwrites the first)."""
    state, validation = outcome_state_for(
        success=outcome["success"], mode=verification_mode, evidence=outcome
    )
    fields = {
        "outcome_success": outcome["success"],
        "outcome_result": outcome.get("result"),
        "outcome_error": outcome.get("error"),
        "outcome_metadata": outcome.get("metadata"),
        "outcome_recorded_at": now,
        "outcome_state": state,
        "updated_at": now,
    }
    if validation is not None:
        fields["evidence_validation_state"] = validation
    evidence = {
        "evidence_external_id": outcome.get("external_id") or None,
        "evidence_result_url": outcome.get("result_url"),
        "evidence_result_ref": outcome.get("result_ref") or None,
        "evidence_result_type": outcome.get("result_type") or None,
        "evidence_summary": outcome.get("summary") or None,
        "evidence_artifacts": outcome.get("artifacts") or None,
    }
    fields.update({k: v for k, v in evidence.items() if v is not None})
    if evidence["evidence_external_id"] or evidence["evidence_result_url"] or evidence["evidence_artifacts"]:
        fields["evidence_produced_at"] = now
    updated = Execution.objects.filter(pk=execution_id, outcome_recorded_at__isnull=True).update(**fields)
    return state if updated else None
