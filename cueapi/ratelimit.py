"""Sliding-window rate limiter (SERVER.md §8).

A request is refused, without being recorded, when its bucket already holds `limit` requests
in the last 60 s. On Redis the window is a log of request times, checked and recorded by one
Lua script (atomic across processes). Otherwise (the default) it lives in the database, in
`rate_limit_counters`: one row per bucket and wall-clock second with its hit count and the time
of its first hit, so a hit is one statement on PostgreSQL (read the window, upsert this second)
and two on SQLite, however busy the key. On PostgreSQL an API request's hit rides in its key
lookup's statement (hit_with_lookup). A row counts while its first hit is in the window, so
a second's later hits leave the window with its first: a truly simultaneous burst from one key,
or a second straddling the window's edge, may be under-counted by a few, never over-counted.
"""

import time
import uuid
from dataclasses import dataclass

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import connection

from cueapi.rows import fetch

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


# The rows of a bucket in the window ending at `now`: the (bucket, second) index narrows the
# scan to the last 61 seconds, `first_at` decides.
_WINDOW_SQL = (
    "SELECT COALESCE(SUM(hits), 0) AS used, MIN(first_at) AS oldest FROM rate_limit_counters "
    "WHERE bucket = %s AND second >= %s AND first_at > %s"
)
_RECORD_SQL = (
    "INSERT INTO rate_limit_counters (bucket, second, hits, first_at) VALUES (%s, %s, 1, %s) "
    "ON CONFLICT (bucket, second) DO UPDATE SET hits = rate_limit_counters.hits + 1"
)
# Records the hit unless the window (the `in_window` row) is already at the limit.
_RECORD_UNDER_LIMIT_SQL = """INSERT INTO rate_limit_counters (bucket, second, hits, first_at)
    SELECT %s, %s, 1, %s FROM in_window WHERE in_window.used < {limit}
    ON CONFLICT (bucket, second) DO UPDATE SET hits = rate_limit_counters.hits + 1"""
# PostgreSQL: read the window and, when it is under the limit, record the hit, in one
# statement (both parts see the window as of the statement's start).
_HIT_SQL_POSTGRESQL = (f"WITH in_window AS ({_WINDOW_SQL}), recorded AS ({_RECORD_UNDER_LIMIT_SQL.format(limit='%s')}) "
                       "SELECT used, oldest FROM in_window")


def redis_cache():
    """The shared cache when it is Redis (then the limiter and the auth cache live there), else
    None (the default database cache: both use their own indexed queries instead)."""
    cache = caches["default"]
    return cache if isinstance(cache, RedisCache) else None


def hit(bucket, limit, now=None):
    """Record one request in `bucket` unless it is over `limit`; say which."""
    now = time.time() if now is None else now
    cache = redis_cache()
    if cache is not None:
        return _hit_redis(cache, bucket, limit, now)
    return _hit_table(bucket, limit, now)


def _window_params(bucket, now):
    return [bucket, int(now) - WINDOW_SECONDS, now - WINDOW_SECONDS]


def _hit_table(bucket, limit, now):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_HIT_SQL_POSTGRESQL, [*_window_params(bucket, now), bucket, int(now), now, limit])
            used, oldest = cursor.fetchone()
        else:
            cursor.execute(_WINDOW_SQL, _window_params(bucket, now))
            used, oldest = cursor.fetchone()
            if used < limit:
                cursor.execute(_RECORD_SQL, [bucket, int(now), now])
    return Decision(used < limit, limit, int(used), oldest, now)


def shares_lookup_round_trip():
    """Whether a hit can ride in another query's statement (hit_with_lookup): the database
    limiter on PostgreSQL."""
    return connection.vendor == "postgresql" and redis_cache() is None


def hit_with_lookup(lookup_sql, lookup_params, *, limit_column, bucket, default_limit, now=None):
    """Run `lookup_sql` (at most one row) and record one request in `bucket` unless it is over
    the limit, in one statement: the limit is the found row's `limit_column`, or
    `default_limit` without a row. PostgreSQL only (see shares_lookup_round_trip). Returns
    (the row or None, the Decision)."""
    now = time.time() if now is None else now
    limit = f'COALESCE((SELECT "{limit_column}" FROM found), %s)'
    sql = (f"WITH found AS ({lookup_sql}), in_window AS ({_WINDOW_SQL}), "
           f"recorded AS ({_RECORD_UNDER_LIMIT_SQL.format(limit=limit)}) "
           f"SELECT in_window.used, in_window.oldest, {limit}, found.* FROM in_window LEFT JOIN found ON TRUE")
    params = [*lookup_params, *_window_params(bucket, now), bucket, int(now), now, default_limit, default_limit]
    used, oldest, limit_value, *found = fetch(sql, params)[0]
    # The lookup's first column is its primary key: NULL only when it found nothing.
    row = found if found[0] is not None else None
    return row, Decision(used < limit_value, limit_value, int(used), oldest, now)


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
    cache = redis_cache()
    if cache is not None:
        key = cache.make_and_validate_key(bucket)
        client = cache._cache.get_client(key)
        return int(client.zcount(key, now - WINDOW_SECONDS, "+inf"))
    with connection.cursor() as cursor:
        cursor.execute(_WINDOW_SQL, _window_params(bucket, now))
        return int(cursor.fetchone()[0])


def delete_old_counters(*, now):
    """Drop the database limiter's rows that left the window (the poller's hourly cleanup)."""
    from cueapi.models import RateLimitCounter

    return RateLimitCounter.objects.filter(second__lt=int(now.timestamp()) - WINDOW_SECONDS - 1).delete()[0]


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
