"""gunicorn settings; override any of them on the command line (e.g. --bind)."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# One worker per core (at least 2, so a crash or a slow request never stalls the API), at most
# 4 by default: every thread keeps its own PostgreSQL connection open (CONN_MAX_AGE), and
# workers x threads must leave room under PostgreSQL's default max_connections (100) for the
# engine processes and a second host. A request spends most of its time waiting for the
# database, so 8 threads per worker keep the cores busy (measured in `python -m bench api`:
# on 2 cores 2 x 8 did better than 2 x 4, 3 x 4, 4 x 4 and 4 x 2).
workers = int(os.environ.get("WEB_CONCURRENCY", str(min(4, max(2, os.cpu_count() or 1)))))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 60
graceful_timeout = 30
keepalive = 5
# No access log here: Django's RequestIdMiddleware writes one structured line per request
# (with X-Request-Id, and without the query string, where magic-link tokens travel).
accesslog = None
errorlog = "-"


def pre_request(worker, req):
    """Close the connection after a request whose body the API may leave unread.

    BodySizeLimitMiddleware answers 413 without reading an oversize body, and gunicorn drains
    only 64 KiB of what is left before dropping the connection it announced as keep-alive: the
    client's next request on it then fails. Announcing `Connection: close` (the app cannot: gunicorn
    ignores that header from it) makes keep-alive clients reconnect. Chunked bodies have no size
    up front, so every chunked request closes its connection (they are rare).
    """
    from django.conf import settings

    headers = dict(req.headers)  # gunicorn upper-cases the names
    length = headers.get("CONTENT-LENGTH", "")
    chunked = "chunked" in headers.get("TRANSFER-ENCODING", "").lower()
    if chunked or (length.isdigit() and int(length) > settings.CUEAPI_MAX_BODY_BYTES):
        req.force_close()
