"""Bearer authentication: API keys (`cue_sk_…`) and, for other tokens, session JWTs.

An API key is looked up by its SHA-256 (keys are never stored in plaintext): one query on
the unique `api_keys.key_hash` index, joined to its user. With Redis as the cache, the key row
(with its user) is cached there for CUEAPI_AUTH_CACHE_SECONDS under `auth:<hash>` (no query at
all on a hit); saving a user or changing a key drops the entry, so limit changes made in the
admin apply at once. The key row is `request.auth`: its `scope` is what cueapi.scopes checks. The default
database cache is not used for this: a read of it costs a query plus unpickling a user, more
than the query it would save. The lookup is memoised on the request: the rate limiter (which
runs first) and DRF share one lookup.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed

from cueapi import ratelimit
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


def key_for_api_key(api_key):
    """The ApiKey row for `api_key`, its active user loaded (`key.user`), or None."""
    return key_for_hash(api_key_hash(api_key))


def key_for_hash(key_hash):
    """key_for_api_key for a key already hashed."""
    cached = redis_cache() is not None
    key = _safe_cache(cache.get, _cache_key(key_hash)) if cached else None
    if key is None:
        # accounts sits above this module (DESIGN.md §1): its keys are asked for through the
        # user model's manager, as Django's pluggable user model is.
        key = get_user_model().objects.api_key(key_hash)
        if key is not None and cached:
            _safe_cache(cache.set, _cache_key(key_hash), key, settings.CUEAPI_AUTH_CACHE_SECONDS)
    return key


def user_for_api_key(api_key):
    """The active user owning `api_key`, or None."""
    key = key_for_api_key(api_key)
    return key.user if key is not None else None


LAST_USED_RESOLUTION = timedelta(seconds=60)


def key_touch(key, now=None):
    """Record that `key` was used: at most one UPDATE a minute per key, guarded in SQL so
    concurrent requests (or processes) don't each write it."""
    now = now or timezone.now()
    if key.last_used_at is not None and key.last_used_at >= now - LAST_USED_RESOLUTION:
        return
    key.mark_used(now=now, unless_since=now - LAST_USED_RESOLUTION)
    if redis_cache() is not None:  # the cached copy learns it too, or every hit would try again
        _safe_cache(cache.set, _cache_key(key.key_hash), key, settings.CUEAPI_AUTH_CACHE_SECONDS)


def forget_api_key(key_hash):
    """Drop the cached key for this key hash (after a key change)."""
    if key_hash and redis_cache() is not None:
        _safe_cache(cache.delete, _cache_key(key_hash))


def forget_user_keys(user_id):
    """Drop the cached keys of a user (after the user row changed: limits, is_active)."""
    if user_id is not None and redis_cache() is not None:
        for key_hash in get_user_model().objects.api_key_hashes(user_id):
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


def request_token_hash(request):
    """The SHA-256 of the request's bearer token (None without one), computed once: the rate
    limiter's bucket, the key lookup and the rotated-key check all need it."""
    if not hasattr(request, "_cueapi_token_hash"):
        token = bearer_token(request)
        request._cueapi_token_hash = api_key_hash(token) if token else None
    return request._cueapi_token_hash


def _has_api_key(request):
    token = bearer_token(request)
    return bool(token) and token.startswith(API_KEY_PREFIX)


def request_api_key(request):
    """The ApiKey row for the request's API key (None if no key or unknown), looked up once."""
    key = getattr(request, "_cueapi_key", _NOT_LOOKED_UP)
    if key is _NOT_LOOKED_UP:
        key = key_for_hash(request_token_hash(request)) if _has_api_key(request) else None
        request._cueapi_key = key
    return key


def request_api_key_counting_hit(request, *, bucket, default_limit):
    """For the rate limiter: look up the request's API key and record its hit in `bucket` in
    one statement where the limiter allows it (ratelimit.shares_lookup_round_trip), remembering
    the key as request_api_key does. The limiter's Decision, or None where the two can't be
    combined (no API key, already looked up, Redis): then look up and hit separately."""
    if not _has_api_key(request) or hasattr(request, "_cueapi_key") or not ratelimit.shares_lookup_round_trip():
        return None
    request._cueapi_key, decision = get_user_model().objects.api_key_counting_hit(
        request_token_hash(request), bucket=bucket, default_limit=default_limit)
    return decision


def request_key_user(request):
    """The user for the request's API key (None if no key or unknown), looked up once."""
    key = request_api_key(request)
    return key.user if key is not None else None


class BearerAuthentication(BaseAuthentication):
    def authenticate(self, request):
        token = bearer_token(request)
        if token is None:
            raise AuthError("invalid_api_key", "Missing or invalid Authorization header")
        if token.startswith(API_KEY_PREFIX):
            key = request_api_key(request._request)
            if key is None:
                if key_was_rotated(request_token_hash(request._request)):
                    raise AuthError(
                        "key_rotated", "This API key has been rotated. Use your new key."
                    )
                raise AuthError("invalid_api_key", "Invalid API key")
            key_touch(key)
            return (key.user, key)
        return (self.authenticate_session(token), token)

    def authenticate_session(self, token):
        # request.auth stays the token string: a session acts with the `full` scope.
        from cueapi.sessions import SessionError, user_for_session_token

        try:
            return user_for_session_token(token)
        except SessionError as exc:
            raise AuthError(exc.code, exc.message) from None

    def authenticate_header(self, request):
        # Non-empty so DRF keeps 401 (it turns 401 into 403 otherwise); the exception handler
        # does not copy it into a WWW-Authenticate header, as the reference sends none.
        return "Bearer"
