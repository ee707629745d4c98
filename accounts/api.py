"""Account endpoints: /v1/auth/* (keys, secrets, profile, sessions) and /v1/usage."""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from django.utils import timezone
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from cueapi import ratelimit
from cueapi.errors import AppError
from cueapi.ids import API_KEY_PREFIX
from cueapi.middleware import rate_limit_bucket
from cueapi.sessions import decrypt_api_key, issue_session_token
from cueapi.timefmt import ts_iso
from cueapi.validation import InputSerializer, Str, validate_body


def require_destructive_confirmation(request):
    if request.headers.get("X-Confirm-Destructive") != "true":
        raise AppError(
            "confirmation_required",
            "This action is destructive. Set X-Confirm-Destructive: true header to confirm.",
            400,
        )


class RegisterApi(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    class RegisterIn(InputSerializer):
        email = Str(max_length=255)

    @extend_schema(request=RegisterIn, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        if not settings.CUEAPI_ALLOW_REGISTER:
            raise AppError("not_found", "Not found", 404)
        data = validate_body(self.RegisterIn, request)
        email = services.normalize_email(email=data["email"])
        user, api_key = services.user_create(email=email)
        return Response({"api_key": api_key, "email": user.email}, status=201)


class MeApi(APIView):
    class MePatchIn(InputSerializer):
        email = Str(required=False, allow_null=True, max_length=255)
        alert_webhook_url = Str(required=False, allow_null=True, max_length=2048)

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        user = request.user
        return Response(
            {
                "email": user.email,
                "plan": user.plan,
                "active_cues": selectors.user_active_cue_count(user=user),
                "active_cue_limit": user.active_cue_limit,
                "executions_this_month": selectors.user_executions_this_month(user=user),
                "monthly_execution_limit": user.monthly_execution_limit,
                "rate_limit_per_minute": user.rate_limit_per_minute,
                "has_webhook_secret": bool(user.webhook_secret),
                "api_key_prefix": user.api_key_prefix,
            }
        )

    @extend_schema(request=MePatchIn, responses=OpenApiTypes.OBJECT)
    def patch(self, request):
        data = validate_body(self.MePatchIn, request)
        email = data.get("email")
        if email is not None:
            email = services.normalize_email(email=email)
        user = services.user_update(
            user=request.user, email=email, alert_webhook_url=data.get("alert_webhook_url")
        )
        return Response({"updated_at": ts_iso(user.updated_at)})


class KeyRegenerateApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        require_destructive_confirmation(request)
        api_key = services.user_regenerate_api_key(user=request.user)
        return Response({"api_key": api_key, "previous_key_revoked": True})


class KeyApi(APIView):
    """Reveal the key, only if an encrypted copy exists (SERVER.md §3.2)."""

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        user = request.user
        if not user.api_key_encrypted:
            message = "Key not available. Regenerate to enable Reveal."
        else:
            api_key = decrypt_api_key(user.api_key_encrypted)
            if api_key is not None:
                return Response({"api_key": api_key})
            message = "Key decryption failed. Regenerate to fix."
        return Response({"api_key": None, "prefix": user.api_key_prefix, "message": message})


class WebhookSecretApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        if not request.user.webhook_secret:
            raise AppError("no_webhook_secret", "No webhook secret found", 404)
        return Response({"webhook_secret": request.user.webhook_secret})


class WebhookSecretRegenerateApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        require_destructive_confirmation(request)
        secret = services.user_regenerate_webhook_secret(user=request.user)
        return Response({"webhook_secret": secret, "previous_secret_revoked": True})


class AlertWebhookSecretApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        secret = services.user_get_alert_webhook_secret(user=request.user)
        return Response({"alert_webhook_secret": secret})


class AlertWebhookSecretRegenerateApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        require_destructive_confirmation(request)
        secret = services.user_regenerate_alert_webhook_secret(user=request.user)
        return Response({"alert_webhook_secret": secret, "previous_secret_revoked": True})


class SessionRefreshApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        return Response(
            {"session_token": issue_session_token(request.user), "email": request.user.email}
        )


class UsageApi(APIView):
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        # Requests in this key's rate-limit window; 0 for session-token callers (per IP).
        by_key = isinstance(request.auth, str) and request.auth.startswith(API_KEY_PREFIX)
        current = ratelimit.current_usage(rate_limit_bucket(request._request)) if by_key else 0
        return Response(
            selectors.user_usage(
                user=request.user, rate_limit_current_usage=current, moment=timezone.now()
            )
        )
