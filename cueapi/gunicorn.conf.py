"""gunicorn settings; override any of them on the command line (e.g. --bind)."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 60
graceful_timeout = 30
keepalive = 5
# No access log here: Django's RequestIdMiddleware writes one structured line per request
# (with X-Request-Id, and without the query string, where magic-link tokens travel).
accesslog = None
errorlog = "-"
