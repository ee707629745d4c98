"""The API's outcome calls: report an outcome, verify it, mark it for review, add evidence
(SERVER.md §5). Each checks the request, then makes the transition in executions/lifecycle.py."""

import json
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from cueapi.errors import AppError
from executions import lifecycle
from executions.models import Execution
from executions.outcome_rules import EVIDENCE_COLUMNS, METADATA_MAX_BYTES, SUMMARY_MAX, json_size
from executions.selectors import execution_get

State = Execution.OutcomeState
VERIFIABLE_STATES = (State.REPORTED_SUCCESS, State.REPORTED_FAILURE, State.VERIFICATION_PENDING)


@transaction.atomic
def execution_report_outcome(*, user: User, execution_id: str, outcome: dict, now: datetime | None = None) -> str:
    """POST /v1/executions/{id}/outcome (SERVER.md §5.2). Returns the outcome_state."""
    now = now or timezone.now()
    # No row lock: the outcome's write is guarded on none being recorded, so of two reports
    # one records and the other is told it was already recorded.
    execution = execution_get(user=user, execution_id=execution_id)
    already = AppError("outcome_already_recorded", "Outcome has already been recorded for this execution", 409)
    if execution.outcome_recorded_at is not None:
        raise already
    metadata = outcome.get("metadata")
    if metadata is not None and len(json.dumps(metadata).encode()) > METADATA_MAX_BYTES:
        raise AppError("metadata_too_large", "Outcome metadata must be under 10KB", 400)
    assertions = outcome.get("assertions")
    if assertions is not None and json_size(assertions) > METADATA_MAX_BYTES:
        raise AppError("assertions_too_large", "Outcome assertions must be under 10KB, as metadata", 400)
    state = lifecycle.outcome_recorded(execution=execution, cue=execution.cue, outcome=outcome, now=now)
    if state is None:
        execution_get(user=user, execution_id=execution_id)  # 404 if it was deleted since the read
        raise already
    return state


def execution_verify(*, user: User, execution_id: str, valid: bool = True, reason: str | None = None,
                     now: datetime | None = None) -> str:
    now = now or timezone.now()
    execution = execution_get(user=user, execution_id=execution_id)
    if execution.outcome_state not in VERIFIABLE_STATES:
        raise AppError("invalid_state", f"Cannot verify from state '{execution.outcome_state}'", 409)
    state = lifecycle.outcome_verified(execution=execution, valid=valid, reason=reason, now=now)
    if state is None:  # a concurrent verdict won
        raise AppError("invalid_state", "Cannot verify from state 'changed'", 409)
    return state


def execution_mark_verification_pending(*, user: User, execution_id: str, now: datetime | None = None) -> None:
    now = now or timezone.now()
    execution = execution_get(user=user, execution_id=execution_id)
    if not lifecycle.verification_requested(execution=execution, now=now):
        raise AppError("no_outcome", "No outcome recorded yet", 409)


def execution_append_evidence(*, user: User, execution_id: str, evidence: dict,
                              now: datetime | None = None) -> str | None:
    """PATCH .../evidence: evidence added after the outcome (the outcome itself stays)."""
    now = now or timezone.now()
    execution = execution_get(user=user, execution_id=execution_id)
    if execution.outcome_recorded_at is None:
        raise AppError("no_outcome", "Report outcome first before appending evidence", 409)
    fields = {EVIDENCE_COLUMNS[k]: v for k, v in evidence.items() if k in EVIDENCE_COLUMNS and v}
    if "evidence_summary" in fields:
        fields["evidence_summary"] = fields["evidence_summary"][:SUMMARY_MAX]
    Execution.objects.filter(pk=execution.pk).update(updated_at=now, **fields)
    return execution.outcome_state
