"""/v1/cues: create, list, get, update (pause/resume), delete (SERVER.md §3.4), bulk delete."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
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
    StrictBool,
    Str,
    StrictInt,
    Url,
    require_destructive_confirmation,
    validate_body,
    validate_query,
)
from accounts.audit import Actor
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
    # A recurring cue's window and jitter (see README "Overlap, window and jitter").
    start_at = DateTime(required=False, allow_null=True)
    end_at = DateTime(required=False, allow_null=True)
    jitter_seconds = Int(min_value=0, max_value=3600, required=False, allow_null=True)


class SchedulePatchIn(ScheduleIn):
    """On PATCH, `type` may be left out: the cue keeps its own (e.g. to change only the jitter)."""
    type = Str(required=False)


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
    # This cue's webhook timeout (null: the server's CUEAPI_WEBHOOK_TIMEOUT_SECONDS).
    timeout_seconds = Int(min_value=1, max_value=300, required=False, allow_null=True)
    # Seconds after delivery an outcome is expected by (0: never); see README "Getting alerted".
    outcome_deadline_seconds = Int(min_value=0, max_value=30 * 86400, required=False, allow_null=True)
    # At most this many of the cue's webhooks in flight at once (null: no cap of its own).
    max_in_flight = StrictInt(min_value=1, max_value=1000, required=False, allow_null=True)


class AssertionKeys(List):
    """Keys an outcome must carry in `assertions` (verification.required_assertions, a fire's
    exit_criteria): up to 20 non-empty strings."""

    def __init__(self, **kwargs):
        super().__init__(child=Str(min_length=1, max_length=255), max_length=20, **kwargs)


class AlertsIn(InputSerializer):
    """A cue's alert settings (README "Getting alerted"); on PATCH only the keys sent change."""
    forbid_extra = True
    failure_threshold = StrictInt(min_value=1, max_value=100, required=False)
    recovery_threshold = StrictInt(min_value=1, max_value=100, required=False)
    repeat_every_minutes = StrictInt(min_value=5, max_value=7 * 24 * 60, required=False, allow_null=True)
    notify_recovery = StrictBool(required=False)
    muted_until = DateTime(required=False, allow_null=True)
    # Any id that isn't one of the user's channels, however long, is refused on body.alerts.channels.
    channels = List(child=Str(min_length=1, max_length=255), max_length=50, required=False, allow_null=True)


class VerificationIn(InputSerializer):
    mode = Choice(Cue.VerificationMode.values, required=False)
    required_assertions = AssertionKeys(required=False, allow_null=True)


# The hosted service's names for the catch-up policies, which its clients send.
CATCH_UP_ALIASES = {"run_once_if_missed": Cue.CatchUp.LATEST, "skip_missed": Cue.CatchUp.NONE,
                    "replay_all": Cue.CatchUp.ALL}


class CatchUpField(Choice):
    """Our catch-up names or the hosted service's aliases, stored (and answered) as ours."""

    def __init__(self, **kwargs):
        super().__init__([*Cue.CatchUp.values, *CATCH_UP_ALIASES], **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        return CATCH_UP_ALIASES.get(value, value)


# Where null means "clear it" rather than "not sent".
CLEARABLE = ("on_success_fire",)


class RequiredPayloadKeys(List):
    """Top-level keys every fire's payload must have: at most 20 non-empty strings."""

    def __init__(self):
        super().__init__(child=Str(min_length=1, max_length=255), max_length=20, required=False, allow_null=True)


def _drop_nulls(data):
    """A key sent as null is treated as not sent (the reference's PATCH rule), except the
    CLEARABLE ones."""
    return {k: v for k, v in data.items() if v is not None or k in CLEARABLE}


class PauseNote(Str):
    """Why a cue is paused, shown in its responses and the admin until it is resumed."""

    def __init__(self):
        super().__init__(max_length=500, required=False, allow_null=True)


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
    catch_up = CatchUpField(required=False, allow_null=True)  # null: `latest`, as not sent
    delivery = DeliveryIn(required=False, allow_null=True)
    on_success_fire = Str(required=False, allow_null=True, max_length=255)
    overlap = Choice(Cue.Overlap.values, required=False, allow_null=True)
    # null is "not sent": false.
    require_payload_override = Bool(required=False, allow_null=True)
    required_payload_keys = RequiredPayloadKeys()
    # A cue created paused until then (README "Timed pause"); pause_note only with it.
    paused_until = DateTime(required=False, allow_null=True)
    pause_note = PauseNote()
    alerts = AlertsIn(required=False, allow_null=True)
    # true: a cue of this name is updated instead of refused as a duplicate (README "Upsert").
    upsert = StrictBool(required=False)

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


def upsert_changes(data: dict) -> dict:
    """A validated create body as the changes of a PATCH: its keys, read by PATCH's null rule
    (`_drop_nulls`). The name finds the cue and the transport can't change, so neither is a
    change."""
    changes = _drop_nulls({k: v for k, v in data.items() if k not in ("name", "transport", "upsert")})
    if "callback" in changes:
        changes["callback"] = _drop_nulls(changes["callback"])
    return changes


class CuePatchIn(InputSerializer):
    forbid_extra = True
    name = Str(required=False, allow_null=True, max_length=255)
    description = Str(required=False, allow_null=True)
    status = serializers.JSONField(required=False, allow_null=True)
    schedule = SchedulePatchIn(required=False, allow_null=True)
    callback = CallbackIn(required=False, allow_null=True)
    payload = Dict(required=False, allow_null=True)
    retry = RetryIn(required=False, allow_null=True)
    on_failure = OnFailureIn(required=False, allow_null=True)
    verification = VerificationIn(required=False, allow_null=True)
    catch_up = CatchUpField(required=False, allow_null=True)
    delivery = DeliveryIn(required=False, allow_null=True)
    on_success_fire = Str(required=False, allow_null=True, max_length=255)
    overlap = Choice(Cue.Overlap.values, required=False, allow_null=True)
    require_payload_override = Bool(required=False, allow_null=True)
    required_payload_keys = RequiredPayloadKeys()
    # A timed pause (README "Timed pause"): with "status": "paused", or alone on a paused cue.
    paused_until = DateTime(required=False, allow_null=True)
    pause_note = PauseNote()
    alerts = AlertsIn(required=False, allow_null=True)

    def validate(self, attrs):
        # Unlike the other fields, these sent as null mean "clear it".
        cleared = {k: attrs[k] for k in ("required_payload_keys", "paused_until", "pause_note") if k in attrs}
        attrs = {**_drop_nulls(attrs), **cleared}
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


BULK_DELETE_MAX_IDS = 100


class CueIds(List):
    """1-100 cue ids (strings). Every problem is reported at `body.ids` itself (not at
    `body.ids.<n>`, as a ListField would); the message names the offending item."""

    default_error_messages = {
        "required": "Field required",
        "null": "Input should be a valid list",
        "not_a_list": "Input should be a valid list",
        "too_short": "List should have at least 1 item after validation, not 0",
        "too_long": f"List should have at most {BULK_DELETE_MAX_IDS} items after validation, not {{count}}",
        "not_a_string": "Input should be a valid string (item {index})",
    }

    def to_internal_value(self, data):
        if not isinstance(data, list):
            self.fail("not_a_list")
        if not data:
            self.fail("too_short")
        if len(data) > BULK_DELETE_MAX_IDS:
            self.fail("too_long", count=len(data))
        for index, item in enumerate(data):
            if not isinstance(item, str):
                self.fail("not_a_string", index=index)
        return data


class CueBulkDeleteIn(InputSerializer):
    ids = CueIds(child=Str(), min_length=1, max_length=BULK_DELETE_MAX_IDS)


class CueListCreateApi(APIView):
    @extend_schema(request=CueCreateIn, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = validate_body(CueCreateIn, request)
        if data.pop("upsert", False):
            cue, warning, created = services.cue_upsert(user=request.user, data=data,
                                                        changes=upsert_changes(data),
                                                        actor=Actor.from_request(request))
            return Response(cue_to_dict(cue, warning=warning), status=201 if created else 200)
        cue, warning = services.cue_create(user=request.user, data=data, actor=Actor.from_request(request))
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
        body.update(self.more_detail(cue))
        return Response(body)

    def more_detail(self, cue) -> dict:
        """What an app above this one adds to a cue's detail (executions: its `stats`)."""
        return {}

    @extend_schema(request=CuePatchIn, responses=OpenApiTypes.OBJECT)
    def patch(self, request, cue_id):
        data = validate_body(CuePatchIn, request)
        cue, warning = services.cue_update(user=request.user, cue_id=cue_id, data=data,
                                             actor=Actor.from_request(request))
        return Response(cue_to_dict(cue, warning=warning))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, cue_id):
        services.cue_delete(user=request.user, cue_id=cue_id, actor=Actor.from_request(request))
        return Response(status=204)


class CueBulkDeleteApi(APIView):
    """Delete up to 100 of the caller's cues at once; ids that aren't theirs are skipped."""

    @extend_schema(
        request=CueBulkDeleteIn,
        responses=OpenApiTypes.OBJECT,
        parameters=[OpenApiParameter("X-Confirm-Destructive", str, OpenApiParameter.HEADER,
                                     required=True, enum=["true"])],
    )
    def post(self, request):
        require_destructive_confirmation(request)
        data = validate_body(CueBulkDeleteIn, request)
        deleted, skipped = services.cue_bulk_delete(user=request.user, ids=data["ids"],
                                                   actor=Actor.from_request(request))
        return Response({"deleted": deleted, "skipped": skipped})
