"""GET /v1/alerts (SERVER.md §3.8)."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from alerts.models import Alert
from cueapi.errors import AppError
from cueapi.timefmt import ts_z
from cueapi.validation import DateTime, InputSerializer, Int, Str, validate_query


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
