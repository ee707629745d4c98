"""Execution endpoints. For now: POST /v1/cues/{id}/fire (SERVER.md §3.4, §12.1)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from cueapi.validation import AwareDateTime, Choice, Dict, InputSerializer, validate_body
from executions import services

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class FireIn(InputSerializer):
    send_at = AwareDateTime(required=False, allow_null=True)
    payload_override = Dict(required=False, allow_null=True)
    merge_strategy = Choice(["merge", "replace"], required=False, allow_null=True)


class CueFireApi(APIView):
    @extend_schema(request=FireIn, responses=OpenApiTypes.OBJECT)
    def post(self, request, cue_id):
        data = validate_body(FireIn, request, required=False)
        execution, effective = services.cue_fire(
            user=request.user,
            cue_id=cue_id,
            send_at=data.get("send_at"),
            payload_override=data.get("payload_override"),
            merge_strategy=data.get("merge_strategy") or "merge",
        )
        body = {
            "id": str(execution.id),
            "cue_id": execution.cue_id,
            # The caller's offset is kept (a send_at of +02:00 is echoed as +02:00).
            "scheduled_for": effective.isoformat(),
            "status": execution.status,
            "triggered_by": execution.triggered_by,
        }
        if request.headers.get("X-CueAPI-Verify-Echo", "").strip().lower() == "true":
            body.update(body_received=None, body_received_sha256=EMPTY_SHA256)
        return Response(body)
