"""Execution and worker endpoints (SERVER.md §3.5, §3.6, §5) and POST /v1/cues/{id}/fire."""

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from cueapi.errors import AppError, RequestValidationError
from cueapi.scopes import READ_ONLY, WORKER
from cueapi.timefmt import ts_iso, ts_z
from cueapi.validation import (
    AwareDateTime, Bool, Choice, DateTime, Dict, InputSerializer, Int, JsonDict, JsonList, List, Str, StrictInt,
    Url, require_destructive_confirmation, validate_body, validate_query,
)
from cues import api as cues_api
from cues.api import AssertionKeys
from cues.representations import execution_detail_to_dict, execution_to_dict
from executions import firing, outcomes, selectors, workers
from executions.outcome_rules import ASSERTIONS_MAX_KEYS, RESULT_MAX


class FireIn(InputSerializer):
    send_at = AwareDateTime(required=False, allow_null=True)
    payload_override = Dict(required=False, allow_null=True)
    merge_strategy = Choice(["merge", "replace"], required=False, allow_null=True)
    idempotency_key = Str(min_length=1, max_length=256, required=False, allow_null=True)
    # Keys this execution's outcome must carry in `assertions`; [] opts out of the cue's.
    exit_criteria = AssertionKeys(required=False, allow_null=True)


class CueDetailApi(cues_api.CueDetailApi):
    """GET/PATCH/DELETE /v1/cues/{id}, served from here because the detail adds the cue's
    `stats`, which only this app can count; the rest is the cues app's view."""

    def more_detail(self, cue):
        return {"stats": selectors.cue_stats(cue=cue, now=timezone.now())}


class CueFireApi(APIView):
    @extend_schema(request=FireIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, cue_id):
        data = validate_body(FireIn, request, required=False)
        key = data.get("idempotency_key")
        execution, effective = firing.cue_fire(
            user=request.user,
            cue_id=cue_id,
            send_at=data.get("send_at"),
            payload_override=data.get("payload_override"),
            merge_strategy=data.get("merge_strategy") or "merge",
            exit_criteria=data.get("exit_criteria"),
            idempotency_key=key,
            # The body as parsed, keys this server ignores included.
            request_sha256=firing.body_sha256(request.data) if key is not None else "",
        )
        # X-CueAPI-Verify-Echo is answered for every write by cueapi.middleware.VerifyEchoMiddleware.
        return Response({
            "id": str(execution.id),
            "cue_id": execution.cue_id,
            # The caller's offset is kept (a send_at of +02:00 is echoed as +02:00).
            "scheduled_for": effective.isoformat(),
            "status": execution.status,
            "triggered_by": execution.triggered_by,
        })


class BackfillIn(InputSerializer):
    # As schedule.at: ISO 8601 or Unix time, a value without an offset is UTC.
    start = DateTime()
    end = DateTime()


class CueBackfillApi(APIView):
    @extend_schema(request=BackfillIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, cue_id):
        data = validate_body(BackfillIn, request)
        created, skipped = firing.cue_backfill(user=request.user, cue_id=cue_id, start=data["start"],
                                               end=data["end"])
        return Response({"created": len(created), "skipped_existing": skipped,
                         "executions": [str(execution.id) for execution in created]})


# --- /v1/executions ---------------------------------------------------------------------

class ExecutionListQuery(InputSerializer):
    cue_id = Str(required=False)
    status = Str(required=False)
    status__in = Str(required=False)
    outcome_state = Str(required=False)
    worker_id = Str(required=False)
    triggered_by = Str(required=False)
    limit = Int(min_value=1, max_value=100, required=False, default=20)
    offset = Int(min_value=0, required=False, default=0)


class ExecutionListApi(APIView):
    @extend_schema(operation_id="v1_executions_list", parameters=[ExecutionListQuery],
                   responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query = dict(validate_query(ExecutionListQuery, request))
        if "status__in" in query:
            if "status" in query:
                raise AppError("conflicting_filters", "Pass either `status` or `status__in`, not both.", 400)
            statuses = [s.strip() for s in query["status__in"].split(",") if s.strip()]
            if not statuses:
                raise AppError("invalid_status_in", "`status__in` must contain at least one status.", 400)
            query["status__in"] = statuses
        limit, offset = query["limit"], query["offset"]
        page, total, oldest_claimed = selectors.execution_list(
            user=request.user, filters=query, limit=limit, offset=offset
        )
        return Response({
            "executions": [execution_to_dict(e) for e in page], "total": total, "limit": limit,
            "offset": offset, "has_more": offset + limit < total, "oldest_claimed_at": ts_iso(oldest_claimed),
        })


class ExecutionDetailApi(APIView):
    key_scopes = {"get": {READ_ONLY, WORKER}}  # a `worker` key's route (cueapi-worker)
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, execution_id):
        return Response(execution_detail_to_dict(selectors.execution_get(user=request.user, execution_id=execution_id)))


class AttemptListApi(APIView):
    """The execution's delivery attempts, oldest first: webhook requests and worker runs."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, execution_id):
        attempts = selectors.execution_attempts(user=request.user, execution_id=execution_id)
        return Response({"attempts": [{
            "attempt": a.attempt, "transport": a.transport, "result": a.result, "http_status": a.http_status,
            "error": a.error, "duration_ms": a.duration_ms, "started_at": ts_z(a.started_at),
            "finished_at": ts_z(a.finished_at), "worker_id": a.worker_id, "retry_after": ts_z(a.retry_after),
        } for a in attempts]})


class OutcomeIn(InputSerializer):
    success = Bool()
    # cueapi-worker sends up to 4096 characters of output (DESIGN.md §3.8).
    result = Str(required=False, allow_null=True, max_length=RESULT_MAX)
    error = Str(required=False, allow_null=True, max_length=RESULT_MAX)
    metadata = JsonDict(required=False, allow_null=True)
    external_id = Str(required=False, allow_null=True, max_length=500)
    result_url = Url(required=False, allow_null=True)
    result_ref = Str(required=False, allow_null=True, max_length=500)
    result_type = Str(required=False, allow_null=True, max_length=100)
    summary = Str(required=False, allow_null=True, max_length=500)
    artifacts = JsonList(required=False, allow_null=True)
    # What the handler asserts about its run, checked against the required assertion keys.
    assertions = JsonDict(required=False, allow_null=True)

    def validate_assertions(self, value):
        if value is not None and len(value) > ASSERTIONS_MAX_KEYS:
            raise serializers.ValidationError(f"Dictionary should have at most {ASSERTIONS_MAX_KEYS} items")
        return value


class OutcomeApi(APIView):
    key_scopes = {"post": {WORKER}}  # a `worker` key's route (cueapi-worker)
    @extend_schema(request=OutcomeIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, execution_id):
        outcome = validate_body(OutcomeIn, request)
        state = outcomes.execution_report_outcome(user=request.user, execution_id=execution_id, outcome=outcome)
        return Response({"execution_id": execution_id, "outcome_recorded": True,
                         "outcome_state": state, "reason": None})


class ClaimIn(InputSerializer):
    worker_id = Str(min_length=1, max_length=255)


def claim_response(execution_id):
    return Response({"claimed": True, "execution_id": str(execution_id),
                     "lease_seconds": settings.CUEAPI_WORKER_LEASE_SECONDS})


class ClaimNextApi(APIView):
    key_scopes = {"post": {WORKER}}  # a `worker` key's route (cueapi-worker)
    @extend_schema(operation_id="v1_executions_claim_next", request=ClaimIn, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        data = validate_body(ClaimIn, request)
        return claim_response(workers.execution_claim_next(user=request.user, worker_id=data["worker_id"]))


class ClaimApi(APIView):
    key_scopes = {"post": {WORKER}}  # a `worker` key's route (cueapi-worker)
    @extend_schema(request=ClaimIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, execution_id):
        data = validate_body(ClaimIn, request)
        return claim_response(workers.execution_claim(user=request.user, worker_id=data["worker_id"],
                                                       execution_id=execution_id))


class ClaimableQuery(InputSerializer):
    task = Str(required=False)
    agent = Str(required=False)


class ClaimableApi(APIView):
    key_scopes = {"get": {READ_ONLY, WORKER}}  # a `worker` key's route (cueapi-worker)
    @extend_schema(parameters=[ClaimableQuery], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query = validate_query(ClaimableQuery, request)
        rows = selectors.claimable_executions(user=request.user, now=timezone.now(),
                                              task=query.get("task"), agent=query.get("agent"))
        items = [{
            "execution_id": str(row.id), "cue_id": row.cue_id, "cue_name": row.cue_name,
            "task": row.payload.get("task"), "scheduled_for": ts_z(row.scheduled_for),
            "payload": row.payload, "attempt": row.attempts,
        } for row in rows]
        return Response({"executions": items})


class HeartbeatApi(APIView):
    key_scopes = {"post": {WORKER}}  # a `worker` key's route (cueapi-worker)
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, execution_id):
        until = workers.execution_heartbeat(user=request.user, execution_id=execution_id,
                                             worker_id=request.headers.get("X-Worker-Id"))
        return Response({"execution_id": execution_id, "lease_extended_until": ts_iso(until),
                         "acknowledged": True})


class ReplayApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, execution_id):
        replay = firing.execution_replay(user=request.user, execution_id=execution_id)
        return Response({"id": str(replay.id), "cue_id": replay.cue_id,
                         "scheduled_for": ts_iso(replay.scheduled_for), "status": replay.status,
                         "triggered_by": replay.triggered_by, "replayed_from": execution_id})


class BulkReplayIn(InputSerializer):
    cue_id = Str(required=False, allow_null=True)
    status = Choice(list(firing.BULK_REPLAY_STATUSES), required=False, default="failed")
    # On scheduled_for, as backfill's range: [since, until); ISO 8601 or Unix time, UTC without an offset.
    since = DateTime(required=False, allow_null=True)
    until = DateTime(required=False, allow_null=True)
    limit = StrictInt(min_value=1, max_value=firing.BULK_REPLAY_MAX, required=False, default=firing.BULK_REPLAY_MAX)


class BulkReplayApi(APIView):
    """POST /v1/executions/replay: replay many finished executions at once, oldest first."""

    @extend_schema(operation_id="v1_executions_replay_bulk", request=BulkReplayIn, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        require_destructive_confirmation(request)
        data = validate_body(BulkReplayIn, request, required=False)
        since, until = data.get("since"), data.get("until")
        if since is not None and until is not None and until <= since:
            raise RequestValidationError([("body.until", "until must be later than since: the range is [since, until)")])
        pairs, limit_reached = firing.executions_replay(
            user=request.user, status=data["status"], cue_id=data.get("cue_id"), since=since, until=until,
            limit=data["limit"])
        body = {"replayed": [{"from": str(original), "execution_id": str(replay.id)} for original, replay in pairs],
                "count": len(pairs)}
        if limit_reached:  # the answer is {"replayed", "count"}; this says why it stopped short
            body["limit_reached"] = True
        return Response(body)


class VerifyIn(InputSerializer):
    valid = Bool(required=False, default=True)
    reason = Str(required=False, allow_null=True)


class VerifyApi(APIView):
    @extend_schema(request=VerifyIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, execution_id):
        data = validate_body(VerifyIn, request, required=False)
        valid, reason = data.get("valid", True), data.get("reason")
        state = outcomes.execution_verify(user=request.user, execution_id=execution_id, valid=valid, reason=reason)
        return Response({"execution_id": execution_id, "outcome_state": state, "valid": valid, "reason": reason})


class VerificationPendingApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, execution_id):
        outcomes.execution_mark_verification_pending(user=request.user, execution_id=execution_id)
        return Response({"execution_id": execution_id, "outcome_state": "verification_pending"})


class EvidenceIn(InputSerializer):
    external_id = Str(required=False, allow_null=True, max_length=500)
    result_url = Url(required=False, allow_null=True)
    result_ref = Str(required=False, allow_null=True, max_length=500)
    result_type = Str(required=False, allow_null=True, max_length=100)
    summary = Str(required=False, allow_null=True)
    artifacts = JsonList(required=False, allow_null=True)
    metadata = JsonDict(required=False, allow_null=True)


class EvidenceApi(APIView):
    @extend_schema(request=EvidenceIn, responses=OpenApiTypes.OBJECT)
    def patch(self, request, execution_id):
        evidence = validate_body(EvidenceIn, request)
        state = outcomes.execution_append_evidence(user=request.user, execution_id=execution_id, evidence=evidence)
        return Response({"execution_id": execution_id, "outcome_state": state, "evidence_updated": True})


# --- workers ------------------------------------------------------------------------------

class WorkerHeartbeatIn(InputSerializer):
    worker_id = Str(max_length=255)
    handlers = List(child=Str(), required=False, allow_null=True)


class WorkerHeartbeatApi(APIView):
    key_scopes = {"post": {WORKER}}  # a `worker` key's route (cueapi-worker)
    @extend_schema(request=WorkerHeartbeatIn, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        data = validate_body(WorkerHeartbeatIn, request)
        now = workers.worker_heartbeat(user=request.user, worker_id=data["worker_id"],
                                        handlers=data.get("handlers"))
        return Response({"acknowledged": True, "server_time": ts_z(now)})


class WorkerListApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        now = timezone.now()
        rows = []
        for worker in request.user.workers.order_by("-last_heartbeat"):
            age = int((now - worker.last_heartbeat).total_seconds())
            status = workers.worker_heartbeat_status(worker.last_heartbeat, now)
            rows.append({"worker_id": worker.worker_id, "last_heartbeat": ts_z(worker.last_heartbeat),
                            "seconds_since_heartbeat": age, "heartbeat_status": status,
                            "handlers": worker.handlers, "registered_since": ts_z(worker.created_at)})
        return Response({"workers": rows})


class WorkerDeleteApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request, worker_id):
        workers.worker_delete(user=request.user, worker_id=worker_id)
        return Response(status=204)
