"""Settings: every tunable is read from the environment here, and only here.

Each variable is documented in the README with its default. A `.env` file in the project
directory is read if present (optional). SQLite in the project directory is the zero-setup
default database; set DATABASE_URL for PostgreSQL.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")


def env_bool(name, default):
    """Like env.bool, but a typo ("ture") is an error, not a silent False."""
    raw = env.str(name, default=None)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_positive_int(name, default, minimum=1):
    value = env.int(name, default=default)
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be >= {minimum}, got {value}")
    return value


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    # Fine for a local `make run`; a deployment sets SECRET_KEY (the README says so).
    SECRET_KEY = "insecure-development-key-set-SECRET_KEY-in-production"
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])
BASE_URL = env.str("BASE_URL", default="http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "ops.apps.CueAdminConfig",  # django.contrib.admin with the overview home page
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc files, served locally for /docs and /redoc
    "corsheaders",
    "cueapi",
    "accounts",
    "cues",
    "executions",
    "alerts",
    "ops",
]

# Order matters and mirrors the reference (SERVER.md §1.4):
# request id -> body limit -> rate limit -> CORS -> the rest. 413s are not rate-limited and
# 429s carry no CORS headers.
MIDDLEWARE = [
    "cueapi.middleware.RequestIdMiddleware",
    "cueapi.middleware.BodySizeLimitMiddleware",
    "cueapi.middleware.RateLimitMiddleware",
    # Inside the size and rate limits: a body it reads has passed both.
    "cueapi.middleware.VerifyEchoMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "cueapi.middleware.TrailingSlashRedirectMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "cueapi.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "cueapi.urls"
WSGI_APPLICATION = "cueapi.wsgi.application"
APPEND_SLASH = False  # clients never send a trailing slash; see TrailingSlashRedirectMiddleware

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The API and the engine processes share one SQLite file: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock up front (no deadlock on upgrade), and the busy
    # timeout makes a writer wait instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    DATABASES["default"].setdefault("TEST", {})
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
# "transaction" when DATABASE_URL points at a pooler in transaction mode (PgBouncer
# pool_mode=transaction): consecutive transactions of one connection may run on different
# server connections, so nothing may outlive a transaction: no server-side cursors (Django's
# .iterator() would DECLARE one WITH HOLD) and no prepared statements. LISTEN does not work
# through such a pooler either: cueapi/notify.py then polls instead.
DATABASE_POOLER = env.str("DATABASE_POOLER", default="").strip().lower()
if DATABASE_POOLER not in ("", "session", "transaction"):
    raise ImproperlyConfigured(f"DATABASE_POOLER must be empty, session or transaction, got {DATABASE_POOLER!r}")
if DATABASE_POOLER == "transaction":
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend with a health check that polls the socket instead of a `SELECT 1`
    # round trip per request (cueapi/postgresql/base.py).
    DATABASES["default"]["ENGINE"] = "cueapi.postgresql"
    # Parameters sent apart from the statement (no quoting in Python), and a statement a
    # connection has run `prepare_threshold` times prepared, so PostgreSQL stops parsing and
    # planning it: the API's statements repeat on every request. (The engine's connections
    # still plan each run: executions/engine.py.) Not through a transaction-mode pooler,
    # where the next transaction may find another server connection that never saw the PREPARE.
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options.setdefault("server_side_binding", True)
    if DATABASE_POOLER != "transaction":
        options.setdefault("prepare_threshold", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHE_TABLE = "cueapi_cache"
# The rate limiter and the auth cache must be shared by every process, so the default is the
# database cache table (created by `migrate`), not per-process memory. Redis when CACHE_URL is
# set to redis://...
CACHES = {"default": env.cache("CACHE_URL", default=f"dbcache://{CACHE_TABLE}")}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
# The admin's date and time formats (cueapi/formats/en/formats.py).
FORMAT_MODULE_PATH = "cueapi.formats"

STATIC_URL = "static/"
# Only needed for `collectstatic` (the Dockerfile sets it); WhiteNoise serves from the apps.
STATIC_ROOT = env.str("STATIC_ROOT", default=None)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # no collectstatic step needed for `make run`

EMAIL_CONFIG = env.email("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
if EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend":  # noqa: F821 - set just above
    # Mail printed into the server's log must not carry working login links.
    EMAIL_BACKEND = "accounts.device.MaskedConsoleEmailBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="CueAPI <noreply@localhost>")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["cueapi.authentication.BearerAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated",
                                   "cueapi.scopes.KeyScopePermission"],
    "DEFAULT_PARSER_CLASSES": ["cueapi.parsers.JSONBodyParser"],
    "DEFAULT_RENDERER_CLASSES": ["cueapi.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "cueapi.renderers.JSONContentNegotiation",
    "EXCEPTION_HANDLER": "cueapi.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": [],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "CueAPI",
    "DESCRIPTION": "Self-hosted scheduler that knows whether each job succeeded.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    # The docs pages' scripts and styles from this server, not a CDN (works offline).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- CueAPI settings (README "Configuration") --------------------------------------------
CUEAPI_ALLOW_PRIVATE_URLS = env_bool("CUEAPI_ALLOW_PRIVATE_URLS", False)
CUEAPI_ALLOW_REGISTER = env_bool("CUEAPI_ALLOW_REGISTER", True)
# Limits given to each new user (editable per user in the admin). A self-hosted server has no
# quota by default: 0 means no limit. Operators who host others set them.
CUEAPI_DEFAULT_CUE_LIMIT = env_positive_int("CUEAPI_DEFAULT_CUE_LIMIT", 0, minimum=0)
CUEAPI_DEFAULT_MONTHLY_EXECUTION_LIMIT = env_positive_int(
    "CUEAPI_DEFAULT_MONTHLY_EXECUTION_LIMIT", 0, minimum=0
)
# High enough that a busy worker fleet sharing one key never meets it; it stops runaway loops.
CUEAPI_DEFAULT_RATE_LIMIT_PER_MINUTE = env_positive_int("CUEAPI_DEFAULT_RATE_LIMIT_PER_MINUTE", 6000)
CUEAPI_RATE_LIMIT_ENABLED = env_bool("CUEAPI_RATE_LIMIT_ENABLED", True)
CUEAPI_RETRY_UNIT_SECONDS = env_positive_int("CUEAPI_RETRY_UNIT_SECONDS", 60)
CUEAPI_POLL_INTERVAL_SECONDS = env.float("CUEAPI_POLL_INTERVAL_SECONDS", default=5.0)
# Sends are threads waiting on the network; the database work is one thread's, per batch.
CUEAPI_DISPATCH_CONCURRENCY = env_positive_int("CUEAPI_DISPATCH_CONCURRENCY", 256)
# At most this many of one user's webhooks in flight at once (over all dispatchers), so a slow
# or hostile handler can hold only part of the seats; the rest keep other users' deliveries going.
CUEAPI_DISPATCH_PER_USER_IN_FLIGHT = env_positive_int(
    "CUEAPI_DISPATCH_PER_USER_IN_FLIGHT", max(1, CUEAPI_DISPATCH_CONCURRENCY // 2))
CUEAPI_WEBHOOK_TIMEOUT_SECONDS = env.float("CUEAPI_WEBHOOK_TIMEOUT_SECONDS", default=30.0)
CUEAPI_WORKER_LEASE_SECONDS = env_positive_int("CUEAPI_WORKER_LEASE_SECONDS", 900)
# Finished executions older than this many days are deleted by the poller (0 = kept forever);
# a user's own execution_retention_days (admin) wins.
CUEAPI_EXECUTION_RETENTION_DAYS = env_positive_int("CUEAPI_EXECUTION_RETENTION_DAYS", 90, minimum=0)
# Recurring schedules may not fire more often than this (create/PATCH answer 422).
CUEAPI_MIN_SCHEDULE_INTERVAL_SECONDS = env_positive_int("CUEAPI_MIN_SCHEDULE_INTERVAL_SECONDS", 60)
# A worker is `active` while its last heartbeat is younger than this, then `stale`, then
# `dead` (GET /v1/workers, /health, the dashboard, the no-active-worker warning).
CUEAPI_WORKER_ACTIVE_SECONDS = 180
CUEAPI_WORKER_STALE_SECONDS = 900
# How long a delivered execution of a cue that asks for verification may take to report its
# outcome before it becomes `outcome_timeout` (a cue's own outcome_deadline_seconds wins).
CUEAPI_DEFAULT_OUTCOME_DEADLINE_SECONDS = env_positive_int("CUEAPI_DEFAULT_OUTCOME_DEADLINE_SECONDS", 3600)
# GET /metrics answers only with `Authorization: Bearer <this>`; empty = /metrics is off (404).
CUEAPI_METRICS_TOKEN = env.str("CUEAPI_METRICS_TOKEN", default="")
# /health?strict=1 answers 503 when an engine process has not finished a cycle for this long.
CUEAPI_ENGINE_STALE_SECONDS = env_positive_int("CUEAPI_ENGINE_STALE_SECONDS", 30)
CUEAPI_MAX_BODY_BYTES = 1_048_576
CUEAPI_AUTH_CACHE_SECONDS = 300

LOG_FORMAT = env.str("LOG_FORMAT", default="json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'json' or 'plain', not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "cueapi.logs.JsonFormatter"}, "plain": {"()": "cueapi.logs.PlainFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler",
                             "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}

# Signs session JWTs and keys the encrypted API-key copy; derived from SECRET_KEY when unset.
SESSION_SECRET = env.str("SESSION_SECRET", default="")

# CORS as the reference (SERVER.md §1.4): any origin, credentials allowed (so the request's
# Origin is reflected), our headers readable by browser clients. Only on the API and health
# checks: the admin and other HTML pages use a session cookie, and no other site may read them.
CORS_URLS_REGEX = r"^/(v1/|health$|status$)"
CORS_ALLOW_ALL_ORIGINS = True
CORS_ALLOW_CREDENTIALS = True
CORS_EXPOSE_HEADERS = [
    "X-Request-Id",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
    "X-CueAPI-Usage-Warning",
]
CORS_ALLOW_HEADERS = [
    "accept",
    "authorization",
    "content-type",
    "user-agent",
    "x-confirm-destructive",
    "x-worker-id",
    "x-cueapi-verify-echo",
    "x-request-id",
]
