"""Outcome rules (pure, no queries): what the handler says happened (SERVER.md §5) in terms of
our columns. Delivery is `status`; an outcome is the `outcome_*` columns, the evidence, and
the verification state derived from the cue's verification mode. Recording one is
executions/lifecycle.py's `outcome_recorded`; the API's calls are executions/outcomes.py."""

import json
from datetime import datetime

from executions.models import Execution

RESULT_MAX = 4096  # what cueapi-worker sends (DESIGN.md §3.8)
SUMMARY_MAX = 500
# An outcome's `metadata` and its `assertions` may each be this large, serialised.
METADATA_MAX_BYTES = 10_240
ASSERTIONS_MAX_KEYS = 20
State = Execution.OutcomeState
EVIDENCE_MODES = {
    "require_external_id": lambda e: bool(e.get("external_id")),
    "require_result_url": lambda e: e.get("result_url") is not None,
    "require_artifacts": lambda e: bool(e.get("artifacts")),
}


def outcome_state_for(*, success, mode, evidence, missing_assertions=()):
    """(outcome_state, evidence_validation_state) per the table of SERVER.md §5.2; a success
    that lacks a required assertion fails verification whatever the mode."""
    if not success:
        return State.REPORTED_FAILURE, None
    if missing_assertions:
        return State.VERIFICATION_FAILED, "invalid"
    if mode in (None, "none"):
        return State.REPORTED_SUCCESS, None
    if mode == "manual":
        return State.VERIFICATION_PENDING, None
    if EVIDENCE_MODES[mode](evidence):
        return State.VERIFIED_SUCCESS, "valid"
    return State.VERIFICATION_FAILED, "invalid"


def _clip(value, limit):
    return value[:limit] if isinstance(value, str) else None


def json_size(value) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())


def missing_assertions(required: list | None, assertions: dict | None) -> list:
    """The required assertion keys an outcome's `assertions` lacks, in the required order."""
    return [key for key in required or () if key not in (assertions or {})]


def outcome_from_reply(reply):
    """The outcome fields a webhook handler's 2xx JSON reply carries, made to fit our columns
    (a reply is not an API call: wrong types are dropped and long texts cut, not refused)."""
    metadata = reply.get("metadata")
    assertions = reply.get("assertions")
    artifacts = reply.get("artifacts")
    result_url = reply.get("result_url")
    return {
        "success": reply["success"],
        "result": _clip(reply.get("result"), RESULT_MAX),
        "error": _clip(reply.get("error"), RESULT_MAX),
        "metadata": metadata if isinstance(metadata, dict) else None,
        "assertions": assertions if isinstance(assertions, dict) and len(assertions) <= ASSERTIONS_MAX_KEYS
        and json_size(assertions) <= METADATA_MAX_BYTES else None,
        "external_id": _clip(reply.get("external_id"), 500),
        "result_url": result_url if isinstance(result_url, str)
        and result_url.startswith(("http://", "https://")) else None,
        "result_ref": _clip(reply.get("result_ref"), 500),
        "result_type": _clip(reply.get("result_type"), 100),
        "summary": _clip(reply.get("summary"), SUMMARY_MAX),
        "artifacts": artifacts if isinstance(artifacts, list) else None,
    }


# The one map of evidence fields (API names) to their columns. An outcome report carries all
# but `metadata` as evidence (its `metadata` is the outcome's own); PATCH .../evidence all.
EVIDENCE_COLUMNS = {
    "external_id": "evidence_external_id", "result_url": "evidence_result_url",
    "result_ref": "evidence_result_ref", "result_type": "evidence_result_type",
    "summary": "evidence_summary", "artifacts": "evidence_artifacts", "metadata": "evidence_metadata",
}
# Evidence that something was produced (it stamps evidence_produced_at).
PRODUCED_EVIDENCE = ("external_id", "result_url", "artifacts")


def outcome_fields(*, outcome: dict, verification_mode: str | None, required_assertions: list | None,
                   now: datetime) -> dict:
    """The columns an outcome writes, its outcome_state included (SERVER.md §5.2's table)."""
    missing = missing_assertions(required_assertions, outcome.get("assertions"))
    state, validation = outcome_state_for(success=outcome["success"], mode=verification_mode, evidence=outcome,
                                          missing_assertions=missing)
    fields = {
        "outcome_success": outcome["success"],
        "outcome_result": outcome.get("result"),
        "outcome_error": outcome.get("error"),
        "outcome_metadata": outcome.get("metadata"),
        "outcome_assertions": outcome.get("assertions"),
        "outcome_recorded_at": now,
        "outcome_state": state,
        "updated_at": now,
    }
    if validation is not None:
        fields["evidence_validation_state"] = validation
    evidence = {key: outcome.get(key) for key in EVIDENCE_COLUMNS if key != "metadata" and outcome.get(key)}
    fields.update({EVIDENCE_COLUMNS[key]: value for key, value in evidence.items()})
    if any(key in evidence for key in PRODUCED_EVIDENCE):
        fields["evidence_produced_at"] = now
    if outcome["success"] and missing:
        # Said where a rejected verification says why (the summary), the handler's own first.
        note = "missing required assertions: " + ", ".join(missing)
        summary = fields.get("evidence_summary")
        fields["evidence_summary"] = (f"{summary} | {note}" if summary else note)[:SUMMARY_MAX]
    return fields


