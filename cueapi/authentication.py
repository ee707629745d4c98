"""Bearer authentication: API keys (`cue_sk_…`) and, for other tokens, session JWTs.

An API key is looked up by its SHA-256 (keys are never stored in plaintext): one query on
the unique `api_key_hash` index. With Redis as the cache, the user row is cached there for
CUEAPI_AUTH_CACHE_SECONDS under `auth:<hash>` (no query at all on a hit); saving a user or
changing a key drops the entry, so limit changes made in the admin apply at once. The default
database cache is not used for this: a read of it costs a query plus unpickling a user, more
than the query it would save. The lookup is memoised on the request: the rate limiter (which
runs first) and DRF share one lookup.
"""

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from cueapi.ids import API_KEY_PREFIX, api_key_hash
from cueapi.ratelimit import redis_cache

logger = logging.getLogger("cueapi.auth")

ROTATED_MARKER_SECONDS = 86_400
_NOT_LOOKED_UP = object()


class AuthError(AuthenticationFailed):
    def __init__(self, code, message):
        super().__init__(message)
        self.app_code = code
        self.app_message = message


def _cache_key(key_hash):
    return f"auth:{key_hash}"


def _safe_cache(call, *args, default=None):
    """Cache errors (Redis down) degrade to the database path, never to a 500."""
    try:
        return call(*args)
    except Exception:  # noqa: BLE001 - any cache backend failure
        logger.warning("cache unavailable for %s", call.__name__)
        return default


def user_for_api_key(api_key):
    """The active user owning `api_key`, or None."""
    key_hash = api_key_hash(api_key)
    cached = redis_cache() is not None
    user = _safe_cache(cache.get, _cache_key(key_hash)) if cached else None
    if user is None:
        user = get_user_model().objects.filter(api_key_hash=key_hash, is_active=True).first()
        if user is not None and cached:
            _safe_cache(cache.set, _cache_key(key_hash), user, settings.CUEAPI_AUTH_CACHE_SECONDS)
    return user


def forget_api_key(key_hash):
    """Drop the cached user for this key hash (after a save or a key change)."""
    if key_hash and redis_cache() is not None:
        _safe_cache(cache.delete, _cache_key(key_hash))


def mark_key_rotated(old_key_hash):
    _safe_cache(cache.set, f"rotated:{old_key_hash}", "1", ROTATED_MARKER_SECONDS)


def key_was_rotated(key_hash):
    return bool(_safe_cache(cache.get, f"rotated:{key_hash}"))


def bearer_token(request):
    """The token of an `Authorization: Bearer <token>` header, or None."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Bearer "):
        return None
    return header[len("Bearer ") :].strip()


def request_key_user(request):
    """The user for the request's API key (None if no key or unknown), looked up once."""
    user = getattr(request, "_cueapi_key_user", _NOT_LOOKED_UP)
    if user is _NOT_LOOKED_UP:
        token = bearer_token(request)
        user = user_for_api_key(token) if token and token.startswith(API_KEY_PREFIX) else None
        request._cueapi_key_user = user
    return user


class BearerAuthentication(BaseAuthentication):
    def authenticate(self, request):
        token = bearer_token(request)
        if token is None:
            raise AuthError("invalid_api_key", "Missing or invalid Authorization header")
        if token.startswith(API_KEY_PREFIX):
            user = request_key_user(request._request)
            if user is None:
                if key_was_rotated(api_key_hash(token)):
                    raise AuthError(
                        "key_rotated", "This API key has been rotated. Use your new key."
                    )
                raise AuthError("invalid_api_key", "Invalid API key")
            return (user, token)
        return (self.authenticate_session(token), token)

    def authenticate_session(self, token):
        from cueapi.sessions import SessionError, user_for_session_token

        try:
            return user_for_session_token(token)
        except SessionError as exc:
            raise AuthError(exc.code, exc.message) from None

    def authenticate_header(self, request):
        # Non-empty so DRF keeps 401 (it turns 401 into 403 otherwise); the exception handler
        # does not copy it into a WWW-Authenticate header, as the reference sends none.
        return "Bearer"
