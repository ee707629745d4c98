"""Black-box benchmarks over HTTP (`make bench`; see bench/__main__.py)."""

# The server as users run it (rate limiter on with the default cache, default gunicorn and
# engine settings, no cue or execution quota: the defaults) with only the per-key rate limit
# raised, since a benchmark sends thousands of requests a minute on one key; and quiet logs.
SERVER_ENV = {
    "CUEAPI_DEFAULT_RATE_LIMIT_PER_MINUTE": "10000000",
    "LOG_LEVEL": "WARNING",
}
