"""Sliding-window rate limiter (SERVER.md §8) on the shared Django cache.

A bucket is a log of request times in the last 60 s. A request is refused, without being
recorded, when the log already holds `limit` entries. On Redis the check-and-record is one
Lua script (atomic across processes); on any other cache backend (the database cache by
default) it is a read-modify-write, which may under-count a burst of truly simultaneous
requests from one key by a few, never over-count.
"""

import time
import uuid
from dataclasses import dataclass

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

WINDOW_SECONDS = 60
_TTL_SECONDS = 70

_REDIS_SCRIPT = """
local key = KEYS[1]
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - tonumber(ARGV[4]))
local count = redis.call('ZCARD', key)
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2] or ''
if count >= limit then
  return {0, count, oldest}
end
redis.call('ZADD', key, now, ARGV[3])
redis.call('EXPIRE', key, tonumber(ARGV[5]))
return {1, count, oldest}
"""


@dataclass
class Decision:
    allowed: bool
    limit: int
    count: int  # entries in the window before this request
    oldest: float | None  # time of the oldest entry in the window
    now: float

    def headers(self):
        if self.allowed:
            return {
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(max(0, self.limit - (self.count + 1))),
                "X-RateLimit-Reset": str(int(self.now + WINDOW_SECONDS)),
            }
        oldest = self.oldest if self.oldest is not None else self.now
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(oldest + WINDOW_SECONDS)),
            "Retry-After": str(self.retry_after),
        }

    @property
    def retry_after(self):
        if self.oldest is None:
            return WINDOW_SECONDS
        return max(1, int(WINDOW_SECONDS - (self.now - self.oldest)))


def hit(bucket, limit, now=None):
    """Record one request in `bucket` unless it is over `limit`; say which."""
    now = time.time() if now is None else now
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        return _hit_redis(cache, bucket, limit, now)
    return _hit_cache(cache, bucket, limit, now)


def _hit_cache(cache, bucket, limit, now):
    entries = [t for t in (cache.get(bucket) or []) if t > now - WINDOW_SECONDS]
    oldest = entries[0] if entries else None
    if len(entries) >= limit:
        return Decision(False, limit, len(entries), oldest, now)
    cache.set(bucket, entries + [now], _TTL_SECONDS)
    return Decision(True, limit, len(entries), oldest, now)


def _hit_redis(cache, bucket, limit, now):
    key = cache.make_and_validate_key(bucket)
    client = cache._cache.get_client(key, write=True)
    allowed, count, oldest = client.eval(
        _REDIS_SCRIPT, 1, key, now, limit, uuid.uuid4().hex, WINDOW_SECONDS, _TTL_SECONDS
    )
    return Decision(bool(allowed), limit, int(count), float(oldest) if oldest else None, now)


def current_usage(bucket, now=None):
    """How many requests the bucket holds in the current window (for GET /v1/usage)."""
    now = time.time() if now is None else now
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        key = cache.make_and_validate_key(bucket)
        client = cache._cache.get_client(key)
        return int(client.zcount(key, now - WINDOW_SECONDS, "+inf"))
    return len([t for t in (cache.get(bucket) or []) if t > now - WINDOW_SECONDS])


def fixed_window_allows(key, limit, seconds):
    """A fixed-window counter (the auth endpoints' limits, SERVER.md §3.3): count this
    attempt and say whether it is within `limit` for the window. Fails open on cache errors."""
    cache = caches["default"]
    try:
        if cache.add(key, 1, seconds):
            return True
        return cache.incr(key) <= limit
    except ValueError:  # the key expired between add and incr
        cache.add(key, 1, seconds)
        return True
    except Exception:  # noqa: BLE001 - a cache outage must not lock people out
        return True
