"""/v1/cues: create, list, get, update (pause/resume), delete (SERVER.md §3.4)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from cueapi.validation import (
    Bool,
    Choice,
    DateTime,
    Dict,
    HttpHeaders,
    InputSerializer,
    Int,
    List,
    Str,
    Url,
    validate_body,
    validate_query,
)
from cues import selectors, services
from cues.models import Cue
from cues.representations import cue_to_dict, execution_to_dict

HTTP_METHODS = ["POST", "GET", "PUT", "PATCH"]


def value_error(message):
    """A model-level error: loc `body`, Pydantic's "Value error, " prefix."""
    return serializers.ValidationError({"non_field_errors": [f"Value error, {message}"]})


class ScheduleIn(InputSerializer):
    type = Str()
    cron = Str(required=False, allow_null=True)
    at = DateTime(required=False, allow_null=True)
    timezone = Str(required=False)


class CallbackIn(InputSerializer):
    url = Url(required=False, allow_null=True)
    method = Choice(HTTP_METHODS, upper=True, required=False)
    headers = HttpHeaders(required=False, allow_null=True)
    transport = serializers.JSONField(required=False, allow_null=True)


class RetryIn(InputSerializer):
    max_attempts = Int(min_value=1, max_value=10, required=False)
    backoff_minutes = List(child=Int(min_value=0, max_value=1440), required=False, max_length=20)


class OnFailureIn(InputSerializer):
    email = Bool(required=False)
    webhook = Str(required=False, allow_null=True)
    pause = Bool(required=False)


class DeliveryIn(InputSerializer):
    # Seconds after delivery an outcome is expected by (0: never); see README "Getting alerted".
    outcome_deadline_seconds = Int(min_value=0, max_value=30 * 86400, required=False, allow_null=True)


class VerificationIn(InputSerializer):
    mode = Choice(Cue.VerificationMode.values, required=False)


class RequiredPayloadKeys(List):
    """Top-level keys every fire's payload must have: at most 20 non-empty strings."""

    def __init__(self):
        super().__init__(child=Str(min_length=1, max_length=255), max_length=20, required=False, allow_null=True)


def _drop_nulls(data):
    """A key sent as null is treated as not sent (the reference's PATCH rule)."""
    return {k: v for k, v in data.items() if v is not None}


class CueCreateIn(InputSerializer):
    name = Str(max_length=255)
    description = Str(required=False, allow_null=True)
    schedule = ScheduleIn()
    callback = CallbackIn(required=False, allow_null=True)
    transport = serializers.JSONField(required=False, allow_null=True)
    payload = Dict(required=False, allow_null=True)
    retry = RetryIn(required=False, allow_null=True)
    on_failure = OnFailureIn(required=False, allow_null=True)
    verification = VerificationIn(required=False, allow_null=True)
    catch_up = Choice(Cue.CatchUp.values, required=False)
    delivery = DeliveryIn(required=False, allow_null=True)
    # null is "not sent": false.
    require_payload_override = Bool(required=False, allow_null=True)
    required_payload_keys = RequiredPayloadKeys()

    def validate(self, attrs):
        callback = attrs.get("callback")
        if callback and callback.get("transport") is not None:
            raise value_error("transport must be specified at the top level, not inside callback")
        transport = attrs.get("transport")
        if transport is None:
            transport = attrs["transport"] = Cue.Transport.WEBHOOK
        if transport not in Cue.Transport.values:
            raise value_error("transport must be 'webhook' or 'worker'")
        if transport == Cue.Transport.WEBHOOK and not (callback and callback.get("url")):
            raise value_error("callback.url is required for webhook transport")
        if callback:
            callback.pop("transport", None)
        return attrs


class CuePatchIn(InputSerializer):
    forbid_extra = True
    name = Str(required=False, allow_null=True, max_length=255)
    description = Str(required=False, allow_null=True)
    status = serializers.JSONField(required=False, allow_null=True)
    schedule = ScheduleIn(required=False, allow_null=True)
    callback = CallbackIn(required=False, allow_null=True)
    payload = Dict(required=False, allow_null=True)
    retry = RetryIn(required=False, allow_null=True)
    on_failure = OnFailureIn(required=False, allow_null=True)
    verification = VerificationIn(required=False, allow_null=True)
    catch_up = Choice(Cue.CatchUp.values, required=False, allow_null=True)
    delivery = DeliveryIn(required=False, allow_null=True)
    require_payload_override = Bool(required=False, allow_null=True)
    required_payload_keys = RequiredPayloadKeys()

    def validate(self, attrs):
        # Unlike the other fields, required_payload_keys sent as null means "clear it".
        keys = attrs.get("required_payload_keys", ...)
        attrs = _drop_nulls(attrs)
        if keys is not ...:
            attrs["required_payload_keys"] = keys
        if "status" in attrs and attrs["status"] not in (Cue.Status.ACTIVE, Cue.Status.PAUSED):
            raise value_error("status must be 'active' or 'paused'")
        if "callback" in attrs:
            attrs["callback"] = _drop_nulls(attrs["callback"])
            attrs["callback"].pop("transport", None)
        return attrs


class CueListQuery(InputSerializer):
    status = Str(required=False)
    limit = Int(min_value=1, max_value=100, required=False, default=50)
    offset = Int(min_value=0, required=False, default=0)


class CueDetailQuery(InputSerializer):
    execution_limit = Int(min_value=1, max_value=100, required=False, default=10)
    execution_offset = Int(min_value=0, required=False, default=0)


class CueListCreateApi(APIView):
    @extend_schema(request=CueCreateIn, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = validate_body(CueCreateIn, request)
        cue, warning = services.cue_create(user=request.user, data=data)
        return Response(cue_to_dict(cue, warning=warning), status=201)

    @extend_schema(operation_id="v1_cues_list", parameters=[CueListQuery], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query = validate_query(CueListQuery, request)
        cues, total = selectors.cue_list(
            user=request.user, status=query.get("status"), limit=query["limit"], offset=query["offset"]
        )
        return Response(
            {"cues": [cue_to_dict(c) for c in cues], "total": total,
             "limit": query["limit"], "offset": query["offset"]}
        )


class CueDetailApi(APIView):
    @extend_schema(parameters=[CueDetailQuery], responses=OpenApiTypes.OBJECT)
    def get(self, request, cue_id):
        query = validate_query(CueDetailQuery, request)
        cue = selectors.cue_get(user=request.user, cue_id=cue_id)
        limit, offset = query["execution_limit"], query["execution_offset"]
        executions, total = selectors.cue_executions(cue=cue, limit=limit, offset=offset)
        body = cue_to_dict(cue)
        body.update(
            executions=[execution_to_dict(e) for e in executions],
            execution_total=total,
            execution_limit=limit,
            execution_offset=offset,
        )
        return Response(body)

    @extend_schema(request=CuePatchIn, responses=OpenApiTypes.OBJECT)
    def patch(self, request, cue_id):
        data = validate_body(CuePatchIn, request)
        cue, warning = services.cue_update(user=request.user, cue_id=cue_id, data=data)
        return Response(cue_to_dict(cue, warning=warning))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, cue_id):
        services.cue_delete(cue=selectors.cue_get(user=request.user, cue_id=cue_id))
        return Response(status=204)
