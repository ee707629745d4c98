"""Account endpoints: /v1/auth/* (keys, secrets, profile, sessions) and /v1/usage."""

import json

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from django.utils import timezone
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import device, selectors, services
from accounts.audit import Actor
from cueapi import ratelimit
from cueapi.errors import AppError
from cueapi.middleware import rate_limit_bucket
from cueapi.scopes import FULL_ONLY, READ_ONLY, SCOPES, WORKER
from cueapi.sessions import decrypt_api_key, issue_session_token
from cueapi.timefmt import ts_iso, ts_z
from cueapi.validation import (
    Choice, DateTime, InputSerializer, Int, Str, StrictInt, require_destructive_confirmation, validate_body, validate_query,
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
    key_scopes = {"get": {READ_ONLY, WORKER}}  # cueapi-worker checks its key with it

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
        api_key = services.user_regenerate_api_key(user=request.user, actor=Actor.from_request(request))
        return Response({"api_key": api_key, "previous_key_revoked": True})


class KeyApi(APIView):
    """Reveal the key, only if an encrypted copy exists (SERVER.md §3.2)."""

    key_scopes = {"get": FULL_ONLY}  # it is the primary `full` key: a narrower key can't read it

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
    key_scopes = {"get": FULL_ONLY}  # a secret: who reads it can sign as this server
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        if not request.user.webhook_secret:
            raise AppError("no_webhook_secret", "No webhook secret found", 404)
        return Response({"webhook_secret": request.user.webhook_secret})


class SecretRegenerateIn(InputSerializer):
    # How long the replaced secret keeps signing beside the new one; 0: it dies at once.
    grace_seconds = StrictInt(min_value=0, max_value=services.SECRET_GRACE_MAX_SECONDS, required=False, default=0)


def _regenerated(name, secret, expires):
    """The answer of a regenerate: today's two fields, plus when the old secret stops being
    honoured when it got a grace period."""
    body = {name: secret, "previous_secret_revoked": expires is None}
    if expires is not None:
        body["previous_secret_expires_at"] = ts_z(expires)
    return Response(body)


class WebhookSecretRegenerateApi(APIView):
    @extend_schema(request=SecretRegenerateIn, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        require_destructive_confirmation(request)
        data = validate_body(SecretRegenerateIn, request, required=False)
        secret, expires = services.user_regenerate_webhook_secret(user=request.user, actor=Actor.from_request(request),
                                                                  grace_seconds=data["grace_seconds"])
        return _regenerated("webhook_secret", secret, expires)


class AlertWebhookSecretApi(APIView):
    key_scopes = {"get": FULL_ONLY}  # a secret, and created on first read
    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        secret = services.user_get_alert_webhook_secret(user=request.user)
        return Response({"alert_webhook_secret": secret})


class AlertWebhookSecretRegenerateApi(APIView):
    @extend_schema(request=SecretRegenerateIn, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        require_destructive_confirmation(request)
        data = validate_body(SecretRegenerateIn, request, required=False)
        secret, expires = services.user_regenerate_alert_webhook_secret(
            user=request.user, actor=Actor.from_request(request), grace_seconds=data["grace_seconds"])
        return _regenerated("alert_webhook_secret", secret, expires)


def key_to_dict(key) -> dict:
    return {"id": key.pk, "name": key.name, "scope": key.scope, "prefix": key.prefix, "primary": key.primary,
            "created_at": ts_z(key.created_at), "last_used_at": ts_z(key.last_used_at)}


class KeyListCreateApi(APIView):
    """GET /v1/auth/keys (no secrets) and POST /v1/auth/keys (the key, shown once). Writes
    need a `full` key or a session (the default for a view)."""

    class KeyCreateIn(InputSerializer):
        name = Str(min_length=1, max_length=100)
        scope = Choice(SCOPES)

    @extend_schema(request=KeyCreateIn, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = validate_body(self.KeyCreateIn, request)
        key, api_key = services.api_key_create(user=request.user, name=data["name"], scope=data["scope"],
                                               actor=Actor.from_request(request))
        # Exactly the issue's six fields (#20): a new key is never the primary one, and unused.
        body = {"id": key.pk, "name": key.name, "scope": key.scope, "key": api_key, "prefix": key.prefix,
                "created_at": ts_z(key.created_at)}
        return Response(body, status=201)

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def get(self, request):
        keys = selectors.user_api_keys(user=request.user)
        return Response({"keys": [key_to_dict(key) for key in keys], "total": len(keys)})


class KeyDetailApi(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request, key_id):
        services.api_key_revoke(user=request.user, key_id=key_id, actor=Actor.from_request(request))
        return Response(status=204)


class AuditListApi(APIView):
    """GET /v1/audit: the account's changes, newest first. Not for `worker` keys."""

    class AuditQuery(InputSerializer):
        limit = Int(min_value=1, max_value=100, required=False, default=50)
        offset = Int(min_value=0, required=False, default=0)
        since = DateTime(required=False)
        cue_id = Str(required=False, max_length=64)

    @extend_schema(parameters=[AuditQuery], responses=OpenApiTypes.OBJECT)
    def get(self, request):
        query = validate_query(self.AuditQuery, request)
        entries, total = selectors.audit_entries(user=request.user, limit=query["limit"], offset=query["offset"],
                                                 since=query.get("since"), cue_id=query.get("cue_id"))
        return Response({
            "entries": [{"id": e.pk, "at": ts_z(e.at), "action": e.action,
                         "actor": {"type": e.actor_type, "id": e.actor_id},
                         "target_id": e.target_id or None, "changes": e.changes} for e in entries],
            "total": total, "limit": query["limit"], "offset": query["offset"],
        })


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
        by_key = hasattr(request.auth, "key_hash")  # an ApiKey row, not a session token
        current = ratelimit.current_usage(rate_limit_bucket(request._request)) if by_key else 0
        return Response(
            selectors.user_usage(
                user=request.user, rate_limit_current_usage=current, moment=timezone.now()
            )
        )


# --- device-code / magic-link login (SERVER.md §3.3) and the echo sink (§3.9) -------------

class DeviceCodeIn(InputSerializer):
    device_code = Str()


class SubmitEmailIn(InputSerializer):
    device_code = Str()
    email = Str(max_length=255)


class SessionIn(InputSerializer):
    token = Str()


def client_ip(request):
    return request.META.get("REMOTE_ADDR", "")


class Unauthenticated(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]


class DeviceCodeApi(Unauthenticated):
    @extend_schema(request=DeviceCodeIn, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = validate_body(DeviceCodeIn, request)
        url, expires_in = device.device_code_create(device_code=data["device_code"], client_ip=client_ip(request))
        return Response({"verification_url": url, "expires_in": expires_in}, status=201)


class DeviceCodePollApi(Unauthenticated):
    @extend_schema(request=DeviceCodeIn, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        data = validate_body(DeviceCodeIn, request)
        return Response(device.device_code_poll(device_code=data["device_code"]))


class SubmitEmailApi(Unauthenticated):
    @extend_schema(request=SubmitEmailIn, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        data = validate_body(SubmitEmailIn, request)
        email = services.normalize_email(email=data["email"])
        device.device_code_submit_email(device_code=data["device_code"], email=email, client_ip=client_ip(request))
        return Response({"status": "email_sent"})


class SessionApi(Unauthenticated):
    @extend_schema(request=SessionIn, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        data = validate_body(SessionIn, request)
        token, email = device.session_exchange(token=data["token"])
        return Response({"session_token": token, "email": email})


class VerifyQuery(InputSerializer):
    token = Str()
    device_code = Str()


class DevicePageQuery(InputSerializer):
    code = Str()


class VerifyPage(Unauthenticated):
    """GET /v1/auth/verify: the magic link. HTML; 400 with the reason when it can't log in.

    Unlike the reference, it does not forward the session token to the hosted dashboard: a
    self-hosted server shows "You're in." and the terminal's poll completes the login.
    """

    @extend_schema(exclude=True)
    def get(self, request):
        query = validate_query(VerifyQuery, request)
        try:
            email = device.device_code_verify(token=query["token"], device_code=query["device_code"])
        except device.VerifyError as exc:
            return render(request, "accounts/verify.html", {"error": str(exc)}, status=400)
        return render(request, "accounts/verify.html", {"email": email})


class DevicePage(Unauthenticated):
    """GET /auth/device?code=…: where the person types their email (no external assets; the
    script is a static file, as the Content-Security-Policy allows no inline script)."""

    @extend_schema(exclude=True)
    def get(self, request):
        code = validate_query(DevicePageQuery, request)["code"]
        if not device.device_code_is_well_formed(code):
            # Not a code this server hands out: say so, and never echo it into the page.
            return render(request, "accounts/device.html", {"code": None}, status=400)
        return render(request, "accounts/device.html", {"code": code})


class EchoApi(APIView):
    """A webhook sink for `cueapi quickstart`: POST stores (no auth), GET reads (auth)."""

    MIN_TOKEN = 16
    MAX_BYTES = 1_000_000

    def storing(self):
        return getattr(self.request, "method", None) == "POST"  # no request: schema generation

    def get_authenticators(self):
        return [] if self.storing() else super().get_authenticators()

    def get_permissions(self):
        return [AllowAny()] if self.storing() else super().get_permissions()

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def post(self, request, token):
        if len(token) < self.MIN_TOKEN:
            raise AppError("invalid_token", "Token must be at least 16 characters", 400)
        raw = request.body
        if len(raw) > self.MAX_BYTES:
            raise AppError("payload_too_large", "Echo payload must be under 1MB", 413)
        if not ratelimit.fixed_window_allows(f"echo_rl:{client_ip(request)}", 10, 3600):
            raise AppError("rate_limit_exceeded", "Echo store rate limit exceeded", 429)
        try:
            payload = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            payload = raw.decode("utf-8", errors="replace")  # stored as text, not a 500
        headers = {name.lower(): value for name, value in request.headers.items()}
        cache.set(f"echo:{token}", {"payload": payload, "headers": headers,
                                    "received_at": ts_iso(timezone.now())}, 300)
        return Response({"stored": True})

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, token):
        stored = cache.get(f"echo:{token}")
        if stored is None:
            return Response({"status": "waiting"})
        return Response({"status": "delivered", **stored})
