"""Request plumbing shared by every endpoint (SERVER.md §1.4)."""

import hashlib
import io
import json
import logging
import re
import time
import uuid

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import Resolver404, resolve
from django.utils.functional import empty

from cueapi import ratelimit
from cueapi.authentication import bearer_token, request_api_key_counting_hit, request_key_user, request_token_hash
from cueapi.errors import COMPACT_JSON, error_response
from cueapi.logs import log_event

logger = logging.getLogger("cueapi.request")


# Path segments that are capabilities (an echo sink's token) are not written to the log.
SECRET_PATH_SEGMENTS = re.compile(r"^(/v1/echo/)[^/]+")
# A worker asks for work and renews its heartbeats every few seconds: answered, these are
# logged at DEBUG so they don't bury everything else at INFO (an error still shows).
WORKER_POLL_PATHS = re.compile(r"^/v1/(executions/claimable|worker/heartbeat|executions/[^/]+/heartbeat)$")


class RequestIdMiddleware:
    """A fresh `X-Request-Id` on every response (an inbound one is ignored, not echoed), and
    one log line per request with it: method, path (never the query string), status, time."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = str(uuid.uuid4())
        started = time.monotonic()
        response = self.get_response(request)
        response["X-Request-Id"] = request.request_id
        quiet = WORKER_POLL_PATHS.match(request.path) and 200 <= response.status_code < 300
        log_event(logger, "request", level=logging.DEBUG if quiet else logging.INFO,
                  request_id=request.request_id, method=request.method,
                  path=SECRET_PATH_SEGMENTS.sub(r"\1{token}", request.path), status=response.status_code,
                  duration_ms=round((time.monotonic() - started) * 1000, 1),
                  user_id=_user_id(request))
        return response


def _user_id(request):
    # Only a user already resolved (by the API's authentication or the admin's session):
    # logging must not cost a session lookup, or fail when the database is away.
    user = request.__dict__.get("user")
    if user is None or (hasattr(user, "_wrapped") and user._wrapped is empty):
        return None
    return str(user.pk) if user.is_authenticated else None


class BodySizeLimitMiddleware:
    """413 for bodies over 1 MiB, by Content-Length or, for chunked bodies, while reading.

    A chunked body (no Content-Length) is read here, at most limit + 1 bytes, and handed on
    with its length set, so Django sees it (it reads nothing without a Content-Length).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.CUEAPI_MAX_BODY_BYTES
        length = request.META.get("CONTENT_LENGTH")
        if length:
            try:
                too_large = int(length) > limit
            except ValueError:
                return error_response("http_error", "Invalid Content-Length", 400)
            if too_large:
                return self.too_large(limit)
        elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            data = self.read_up_to(request.environ["wsgi.input"], limit + 1)
            if len(data) > limit:
                return self.too_large(limit)
            request._stream = LimitedStream(io.BytesIO(data), len(data))
            request.META["CONTENT_LENGTH"] = str(len(data))
        return self.get_response(request)

    @staticmethod
    def read_up_to(stream, size):
        chunks, total = [], 0
        while total < size:
            chunk = stream.read(min(65536, size - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)

    @staticmethod
    def too_large(limit):
        # The reference serialises this one body with spaced separators.
        body = {
            "error": {
                "code": "request_too_large",
                "message": f"Request body exceeds {limit} bytes",
                "status": 413,
            }
        }
        return HttpResponse(json.dumps(body), status=413, content_type="application/json")


RATE_LIMIT_EXEMPT_PATHS = {
    "/health",
    "/status",
    "/metrics",
    "/docs",
    "/openapi.json",
    "/redoc",
    "/auth/device",
    "/v1/auth/verify",
}
# Operators' pages are not part of the API surface the limiter protects.
RATE_LIMIT_EXEMPT_PREFIXES = ("/admin/", "/static/")


def rate_limit_bucket(request):
    """Per API key when the bearer token looks like one (valid or not), else per client IP."""
    token = bearer_token(request)
    if token and "cue_sk_" in token:
        return f"ratelimit:{request_token_hash(request)}"
    return f"ratelimit:ip:{request.META.get('REMOTE_ADDR', '')}"


class RateLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path
        if (
            not settings.CUEAPI_RATE_LIMIT_ENABLED
            or path in RATE_LIMIT_EXEMPT_PATHS
            or path.startswith(RATE_LIMIT_EXEMPT_PREFIXES)
        ):
            return self.get_response(request)
        try:
            decision = self.hit(request)
        except Exception:  # noqa: BLE001 - a cache outage must not take the API down
            logger.warning("rate limiter unavailable; request allowed", exc_info=True)
            return self.get_response(request)
        if not decision.allowed:
            return error_response(
                "rate_limit_exceeded",
                f"Too many requests. Retry after {decision.retry_after} seconds.",
                429,
                headers=decision.headers(),
            )
        response = self.get_response(request)
        for name, value in decision.headers().items():
            response[name] = value
        return response

    @staticmethod
    def hit(request):
        """Count the request against its key's (or its address's) limit. On PostgreSQL the
        key lookup authentication needs rides in the same statement."""
        bucket = rate_limit_bucket(request)
        default_limit = settings.CUEAPI_DEFAULT_RATE_LIMIT_PER_MINUTE
        decision = request_api_key_counting_hit(request, bucket=bucket, default_limit=default_limit)
        if decision is not None:
            return decision
        user = request_key_user(request)
        return ratelimit.hit(bucket, user.rate_limit_per_minute if user else default_limit)


class VerifyEchoMiddleware:
    """With `X-CueAPI-Verify-Echo: true`, a successful JSON write says what body it received.

    For POST, PATCH and PUT answered 2xx with a JSON object, the object gains `body_received`
    (the raw request body as UTF-8 text, undecodable bytes replaced; "" for no body) and
    `body_received_sha256` (hex SHA-256 of the raw bytes), so a client can prove its bytes
    arrived unchanged. Errors, arrays, non-JSON answers and an object that already has
    `body_received` are left alone. Without the header it costs one dict lookup.
    """

    WRITE_METHODS = {"POST", "PATCH", "PUT"}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        header = request.META.get("HTTP_X_CUEAPI_VERIFY_ECHO")
        if header is None or header.strip().lower() != "true" or request.method not in self.WRITE_METHODS:
            return self.get_response(request)
        # Read before the view: Django keeps the bytes, and the view parses them from that copy.
        raw = request.body
        response = self.get_response(request)
        if not 200 <= response.status_code < 300 or response.streaming:
            return response
        if response.get("Content-Type", "").split(";")[0].strip().lower() != "application/json":
            return response
        try:
            body = json.loads(response.content)
        except ValueError:
            return response
        if not isinstance(body, dict) or "body_received" in body:
            return response
        body["body_received"] = raw.decode("utf-8", errors="replace")
        body["body_received_sha256"] = hashlib.sha256(raw).hexdigest()
        response.content = json.dumps(body, **COMPACT_JSON).encode()
        response["Content-Length"] = str(len(response.content))
        return response


class TrailingSlashRedirectMiddleware:
    """`/v1/cues/` → 307 to `/v1/cues`, as the reference does (no client sends the slash)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info
        if path.startswith("/v1/") and path.endswith("/"):
            canonical = path.rstrip("/")
            try:
                resolve(canonical)
            except Resolver404:
                pass
            else:
                query = request.META.get("QUERY_STRING", "")
                response = HttpResponseRedirect(canonical + (f"?{query}" if query else ""))
                response.status_code = 307
                return response
        return self.get_response(request)


# Only this server's own script files run on its pages: markup smuggled into a page (a query
# value, a cue name in the admin) cannot execute, and the pages cannot be framed. Inline styles
# stay allowed (the admin overview has a <style> block); they cannot run code.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The API docs (Swagger UI, ReDoc) are this server's files too, but Swagger UI draws its icons
# as data: images and ReDoc runs its search in a worker made from a blob: URL.
DOCS_PATHS = {"/docs", "/redoc"}
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

class ContentSecurityPolicyMiddleware:
    """`Content-Security-Policy` on every HTML page: /auth/device, /v1/auth/verify, the admin,
    /docs and /redoc."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        is_html = response.get("Content-Type", "").startswith("text/html")
        if is_html:
            policy = DOCS_CONTENT_SECURITY_POLICY if request.path in DOCS_PATHS else CONTENT_SECURITY_POLICY
            response.setdefault("Content-Security-Policy", policy)
        return response
