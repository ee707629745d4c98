"""GET /v1/alerts (SERVER.md §3.8) and /v1/alert-channels."""

from urllib.parse import urlsplit

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts import channels
from alerts.models import Alert, AlertChannel
from cueapi.errors import AppError
from cueapi.scopes import FULL, request_scope
from cueapi.timefmt import ts_z
from cueapi.validation import Choice, DateTime, InputSerializer, Int, Str, Url, validate_body, validate_query


class AlertListQuery(InputSerializer):
    alert_type = Str(required=False)
    since = DateTime(required=False)
    limit = Int(min_value=1, max_value=100, required=False, default=20)
    offset = Int(min_value=0, required=False, default=0)


def alert_to_dict(alert):
    return {
        "id": str(alert.id), "cue_id": alert.cue_id,
        "execution_id": str(alert.execution_id) if alert.execution_id else None,
        "alert_type": alert.alert_type, "severity": alert.severity, "message": alert.message,
        "metadata": alert.metadata, "acknowledged": alert.acknowledged, "muted": alert.muted,
        "created_at": ts_z(alert.created_at),
    }


class AlertListApi(APIView):
    @extend_schema(operation_id="v1_alerts_list", parameters=[AlertListQuery], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query = validate_query(AlertListQuery, request)
        alerts = Alert.objects.filter(user=request.user)
        if "alert_type" in query:
            if query["alert_type"] not in Alert.Type.values:
                raise AppError("invalid_filter", "alert_type must be one of: "
                                                 + ", ".join(sorted(Alert.Type.values)), 400)
            alerts = alerts.filter(alert_type=query["alert_type"])
        if "since" in query:
            alerts = alerts.filter(created_at__gte=query["since"])
        limit, offset = query["limit"], query["offset"]
        total = alerts.count()
        page = alerts.order_by("-created_at", "-id")[offset : offset + limit]
        return Response({"alerts": [alert_to_dict(a) for a in page], "total": total, "limit": limit,
                         "offset": offset})


class Email(serializers.EmailField):
    default_error_messages = {"required": "Field required", "null": "Input should be a string",
                              "invalid": "Input should be a valid email address",
                              "blank": "Input should be a valid email address",
                              "max_length": "String should have at most {max_length} characters",
                              "nul": "String should not contain NUL characters"}

    def __init__(self, **kwargs):
        super().__init__(max_length=254, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:  # one message, in the API's wording
            self.fail("nul")
        return super().to_internal_value(data)


class ChannelCreateIn(InputSerializer):
    forbid_extra = True
    name = Str(min_length=1, max_length=255)
    kind = Choice(AlertChannel.Kind.values)
    url = Url(required=False, allow_null=True)
    email = Email(required=False, allow_null=True)


class ChannelPatchIn(InputSerializer):
    forbid_extra = True
    name = Str(min_length=1, max_length=255, required=False)
    kind = Choice(AlertChannel.Kind.values, required=False)
    url = Url(required=False, allow_null=True)
    email = Email(required=False, allow_null=True)


def channel_to_dict(channel, *, scope=FULL):
    """A channel as the API shows it. A Slack or Discord webhook URL (or any channel URL) is a
    credential — whoever has it can post there — so a narrower key than `full` sees only its
    scheme and host."""
    url = channel.url
    if url and scope != FULL:
        parts = urlsplit(url)
        url = f"{parts.scheme}://{parts.hostname}/…"
    return {"id": channel.id, "name": channel.name, "kind": channel.kind, "url": url,
            "email": channel.email, "created_at": ts_z(channel.created_at), "updated_at": ts_z(channel.updated_at)}


class AlertChannelListCreateApi(APIView):
    @extend_schema(request=ChannelCreateIn, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = validate_body(ChannelCreateIn, request)
        return Response(channel_to_dict(channels.channel_create(user=request.user, data=data)), status=201)

    @extend_schema(operation_id="v1_alert_channels_list", responses=OpenApiTypes.OBJECT)
    def get(self, request):
        mine = AlertChannel.objects.filter(user=request.user).order_by("created_at", "id")
        scope = request_scope(request)
        return Response({"alert_channels": [channel_to_dict(c, scope=scope) for c in mine], "total": len(mine)})


class AlertChannelDetailApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request, channel_id):
        return Response(channel_to_dict(channels.channel_get(user=request.user, channel_id=channel_id),
                                        scope=request_scope(request)))

    @extend_schema(request=ChannelPatchIn, responses=OpenApiTypes.OBJECT)
    def patch(self, request, channel_id):
        data = validate_body(ChannelPatchIn, request)
        channel = channels.channel_update(user=request.user, channel_id=channel_id, data=data)
        return Response(channel_to_dict(channel))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, channel_id):
        channels.channel_delete(user=request.user, channel_id=channel_id)
        return Response(status=204)


class AlertChannelTestApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, channel_id):
        return Response(channels.channel_test(user=request.user, channel_id=channel_id))
