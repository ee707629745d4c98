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
