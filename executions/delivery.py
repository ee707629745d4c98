"""One webhook POST: body, signatures, SSRF-safe send, and what the answer means.

A plain function (`send_webhook`) that the dispatcher calls and tests call directly; it
never raises. The request is SERVER.md §4.5.2 to the byte (so `cueapi.verify_webhook`
accepts it) plus the Standard Webhooks headers (DESIGN.md §3.15). The address connected to
is the one that was checked (`resolve_safe_address`), redirects are not followed, at most
RESPONSE_READ_LIMIT bytes of the answer are read, and the whole exchange has one deadline.
"""

import base64
import datetime
import email.utils
import functools
import hashlib
import heapq
import hmac
import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
import urllib3
from django.conf import settings
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from cueapi.logs import log_event
from cueapi.timefmt import ts_iso
from cueapi.urlsafety import UnsafeURL, resolve_safe_address
from cueapi.validation import header_problem

logger = logging.getLogger("cueapi.engine")

USER_AGENT = "CueAPI/1.0"
RESPONSE_READ_LIMIT = 65_536
RESPONSE_BODY_STORED = 2000
# Ours win over a cue's custom headers of the same name (DESIGN.md §3.10).
PROTECTED_HEADERS = {
    "content-type", "user-agent", "host", "x-cueapi-signature", "x-cueapi-timestamp",
    "x-cueapi-cue-id", "x-cueapi-execution-id", "x-cueapi-scheduled-for", "x-cueapi-attempt",
    "webhook-id", "webhook-timestamp", "webhook-signature", "content-length",
    "transfer-encoding", "connection",  # framing: a custom one could split the request
}


def webhook_body(*, execution_id, cue_id, name, scheduled_for, attempt, payload):
    """The exact bytes sent and signed: sorted keys, Python's default separators, ASCII."""
    body = {
        "attempt": attempt,
        "cue_id": cue_id,
        "execution_id": str(execution_id),
        "name": name,
        "payload": payload,
        "scheduled_for": ts_iso(scheduled_for),
    }
    return json.dumps(body, sort_keys=True, default=str).encode()


def cueapi_signature(secret, timestamp, body):
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def standard_webhooks_signature(secret, message_id, timestamp, body):
    """`v1,<base64>` keyed by the base64 decoding of the text after `whsec_`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def standard_webhooks_signatures(secret, previous_secret, message_id, timestamp, body):
    """The `webhook-signature` value: `v1,<base64>` with the current secret, then, space-
    separated, with a replaced one still in its grace period (None: none)."""
    signatures = [standard_webhooks_signature(secret, message_id, timestamp, body)]
    if previous_secret:
        signatures.append(standard_webhooks_signature(previous_secret, message_id, timestamp, body))
    return " ".join(signatures)


def signed_headers(*, secret, body, execution_id, cue_id, scheduled_for, attempt,
                   custom_headers=None, timestamp=None, previous_secret=None):
    """Our headers, the cue's custom ones under them. `X-CueAPI-Signature` is signed with
    `secret` only (what cueapi-sdk's verify_webhook checks); `webhook-signature` also with
    `previous_secret` (a replaced secret in its grace period), as Standard Webhooks rotates."""
    timestamp = str(int(time.time() if timestamp is None else timestamp))
    custom_headers = custom_headers if isinstance(custom_headers, Mapping) else {}
    headers = {
        name: str(value)
        for name, value in custom_headers.items()
        if str(name).lower() not in PROTECTED_HEADERS
    }
    headers.update({
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-CueAPI-Signature": cueapi_signature(secret, timestamp, body),
        "X-CueAPI-Timestamp": timestamp,
        "X-CueAPI-Cue-Id": cue_id,
        "X-CueAPI-Execution-Id": str(execution_id),
        "X-CueAPI-Scheduled-For": ts_iso(scheduled_for),
        "X-CueAPI-Attempt": str(attempt),
        "webhook-id": str(execution_id),
        "webhook-timestamp": timestamp,
        "webhook-signature": standard_webhooks_signatures(secret, previous_secret, str(execution_id), timestamp,
                                                          body),
    })
    return headers


class TotalDeadline:
    """Cuts a delivery's connection when its total time is up.

    Socket timeouts bound each read, not the whole answer: a receiver that sends one byte
    every few seconds would hold a delivery thread for ever. The connection registers here
    (`DeadlineConnectionMixin`), and the process's one watchdog thread shuts its socket down
    at the deadline, which wakes the blocked read with an error.
    """

    def __init__(self, seconds: float):
        self.expired = False
        self.finished = False
        self.at = time.monotonic() + max(seconds, 0)
        self._connection = None
        self._lock = threading.Lock()

    def __enter__(self):
        _deadlines.current = self
        _watchdog.watch(self)
        return self

    def __exit__(self, *exc):
        self.finished = True  # the watchdog drops it when its time comes
        _deadlines.current = None

    def watch(self, connection):
        with self._lock:
            self._connection = connection
            expired = self.expired
        if expired:
            _shut(connection)

    def expire(self):
        with self._lock:
            self.expired = True
            connection = self._connection
        if connection is not None:
            _shut(connection)


class _Watchdog:
    """One thread expiring every TotalDeadline of the process in time order (a timer thread per
    delivery cost more than the delivery's own request)."""

    def __init__(self):
        self._heap = []  # (at, sequence, deadline)
        self._sequence = 0
        self._changed = threading.Condition()
        self._thread = None

    def watch(self, deadline: TotalDeadline) -> None:
        with self._changed:
            self._sequence += 1
            heapq.heappush(self._heap, (deadline.at, self._sequence, deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="delivery-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][2] is deadline:
                self._changed.notify()

    def _run(self):
        while True:
            with self._changed:
                while not self._heap:
                    self._changed.wait()
                at, _, deadline = self._heap[0]
                if not deadline.finished and at > time.monotonic():
                    self._changed.wait(at - time.monotonic())
                    continue
                heapq.heappop(self._heap)
            if not deadline.finished:
                deadline.expire()


_watchdog = _Watchdog()
_deadlines = threading.local()


def _shut(connection):
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed


class DeadlineConnectionMixin:
    """Registers the connection with the running delivery's TotalDeadline: when it connects
    (a new connection) and when it sends a request (a kept-alive one)."""

    def connect(self):
        super().connect()
        self._watch()

    def request(self, *args, **kwargs):
        self._watch()
        return super().request(*args, **kwargs)

    def _watch(self):
        deadline = getattr(_deadlines, "current", None)
        if deadline is not None:
            deadline.watch(self)


class DeadlineHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = type("DeadlineHTTPConnection", (DeadlineConnectionMixin, HTTPConnection), {})


class DeadlineHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = type("DeadlineHTTPSConnection", (DeadlineConnectionMixin, HTTPSConnection), {})


_pool_managers = threading.local()


def pool_manager() -> urllib3.PoolManager:
    """One keep-alive pool manager per delivery thread, whose connections obey the delivery's
    TotalDeadline. Sends go to urllib3 directly: a requests Session cost more CPU per send
    than the request itself (preparing, merging settings, hooks, cookies). No proxy: a
    callback never goes through an environment proxy."""
    manager = getattr(_pool_managers, "manager", None)
    if manager is None:
        manager = urllib3.PoolManager(num_pools=32, maxsize=4)
        manager.pool_classes_by_scheme = {"http": DeadlineHTTPConnectionPool, "https": DeadlineHTTPSConnectionPool}
        _pool_managers.manager = manager
    return manager


# The headers a requests Session sent under ours (ours replace them by name, case-insensitively,
# as the Session merged them): the request on the wire is what it was when sends went through
# requests, byte for byte.
SESSION_HEADERS = requests.utils.default_headers()
# No retries (a failed send is a recorded attempt, retried by the engine) and no redirects.
NO_RETRIES = urllib3.Retry(0, read=False)


@functools.lru_cache(maxsize=4096)
def _request_target(url: str) -> tuple[str, str, str]:
    """(scheme, host for TLS, path and query sent) for `url`, normalised exactly as requests
    did (IDNA host, percent-encoding): computed once per callback URL."""
    prepared = requests.PreparedRequest()
    prepared.prepare_url(url, None)
    parts = urlsplit(prepared.url)
    return parts.scheme.lower(), parts.hostname, prepared.path_url


@dataclass
class DeliveryResult:
    delivered: bool
    http_status: int | None = None
    error: str | None = None
    response_text: str | None = None
    reported_outcome: dict | None = None  # the handler's {"success": bool, ...}, if it sent one
    duration_ms: int = 0
    # When a 429/503 answer asked us to try again (its `Retry-After`), as a Unix time: the HTTP
    # date it named, or the answer's time plus the seconds it gave.
    retry_at: float | None = None


# Answers whose `Retry-After` says when to try again (RFC 9110 §10.2.3).
RETRY_AFTER_STATUSES = (429, 503)


# Any delay-seconds this long is "the longest wait" (capped at an hour later): a receiver's
# 400-digit number would not fit a float, nor a 5000-digit one Python's int().
RETRY_AFTER_DIGITS_MAX = 9


def retry_after_seconds(value, now: float) -> float | None:
    """A `Retry-After` value as seconds from `now` (a Unix time): delay-seconds or an
    HTTP date; None when absent, unreadable or a date already past (ignored)."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(int(value[-RETRY_AFTER_DIGITS_MAX:]) if len(value.lstrip("0")) <= RETRY_AFTER_DIGITS_MAX
                     else 10 ** RETRY_AFTER_DIGITS_MAX)
    when = retry_after_date(value)
    wait = None if when is None else when - now
    return wait if wait is not None and wait > 0 else None


def retry_after_date(value) -> float | None:
    """The HTTP date a `Retry-After` value names, as a Unix time; None for delay-seconds or
    anything unreadable."""
    value = (value or "").strip()
    if not value or value.isdigit():
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    try:
        return when.timestamp()
    except (OverflowError, ValueError):
        return None


def failure_message(status):
    if status == 404:
        return "Webhook endpoint not found (404)"
    if status == 408:
        return "Webhook endpoint timed out"
    if status == 410:
        return "Webhook endpoint is gone (410)"
    if status == 500:
        return "Webhook endpoint returned server error (500)"
    if 400 <= status < 500:
        return f"Webhook endpoint rejected request ({status})"
    if 500 <= status < 600:
        return f"Webhook endpoint server error ({status})"
    return f"Webhook delivery failed ({status})"


def _reported_outcome(raw):
    """A 2xx JSON object with a boolean `success` is the handler reporting its outcome."""
    if not raw.lstrip()[:1] == b"{":  # most replies are not JSON objects: skip parsing them
        return None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and isinstance(data.get("success"), bool):
        return _without_nul(data)
    return None


def _without_nul(value):
    """PostgreSQL can't store NUL in text or JSON: a reply carrying one would fail to record
    (and be sent again). NUL becomes U+FFFD, as undecodable bytes do."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def send_webhook(*, url: str, method: str, headers: Mapping[str, str], body: bytes,
                 timeout: float | None = None) -> DeliveryResult:
    """Send the signed body with the cue's method (GET sends none) and say what came back.

    Never raises: every failure, expected or not, is `delivered=False` with a short message
    for people, which never contains a header value (they hold secrets). Connecting, sending
    and reading the answer together take at most `timeout` seconds.
    """
    timeout = settings.CUEAPI_WEBHOOK_TIMEOUT_SECONDS if timeout is None else timeout
    started = time.monotonic()
    try:
        result = _send(url=url, method=method, headers=headers, body=body, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - the dispatcher must always get a result
        # Exception messages can quote header values: log the type and where, not the text.
        log_event(logger, "webhook_send_crashed", logging.ERROR, error_type=type(exc).__name__,
                  traceback="".join(traceback.format_tb(exc.__traceback__)))
        result = DeliveryResult(delivered=False, error=f"Webhook delivery failed ({type(exc).__name__})")
    result.duration_ms = int((time.monotonic() - started) * 1000)
    return result


def _invalid_header(headers):
    """A message naming the first header that can't be sent (a cue saved before headers
    were validated), or None."""
    for name, value in headers.items():
        problem = header_problem(name, value)
        if problem:
            shown = repr(name[:64]) if isinstance(name, str) else "(not text)"
            return f"Invalid callback header {shown}: {problem}. Fix it in the cue's callback.headers"
    return None


def _send(*, url: str, method: str, headers: Mapping[str, str], body: bytes, timeout: float) -> DeliveryResult:
    header_error = _invalid_header(headers)
    if header_error:
        return DeliveryResult(delivered=False, error=header_error)
    try:
        hostname, port, address = resolve_safe_address(url)
    except UnsafeURL as exc:
        return DeliveryResult(delivered=False, error=str(exc))
    default_port = 443 if url.lower().startswith("https") else 80
    host = f"[{hostname}]" if ":" in hostname else hostname  # an IPv6 literal
    scheme, tls_hostname, target = _request_target(url)
    body = None if method == "GET" else body
    wire_headers = CaseInsensitiveDict(SESSION_HEADERS)
    wire_headers.update(headers)
    wire_headers["Host"] = host if port == default_port else f"{host}:{port}"
    if body is not None:
        wire_headers["Content-Length"] = str(len(body))
    # The address checked is the one connected to; TLS verifies the certificate against the
    # real host name (with the CA bundle requests used).
    pool_kwargs = ({"cert_reqs": "CERT_REQUIRED", "ca_certs": requests.utils.DEFAULT_CA_BUNDLE_PATH,
                    "server_hostname": tls_hostname, "assert_hostname": tls_hostname}
                   if scheme == "https" else {})
    timed_out = DeliveryResult(delivered=False, error="Webhook endpoint timed out")
    response = None
    with TotalDeadline(timeout) as deadline:
        try:
            pool = pool_manager().connection_from_host(address, port=port, scheme=scheme, pool_kwargs=pool_kwargs)
            response = pool.urlopen(method.upper(), target, body=body, headers=wire_headers, retries=NO_RETRIES,
                                    redirect=False, assert_same_host=False, preload_content=False,
                                    decode_content=False, timeout=urllib3.Timeout(connect=timeout, read=timeout))
            try:
                raw = response.read(RESPONSE_READ_LIMIT, decode_content=True) or b""
            finally:
                response.close()  # an answer not read to its end: the connection is not reused
                response.release_conn()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            if deadline.expired or _timed_out(exc):
                return timed_out
            if response is None:
                return DeliveryResult(delivered=False, error=_request_error(exc))
            return DeliveryResult(delivered=False, http_status=response.status,
                                  error=_answer_error(exc, response.status))
    if deadline.expired:
        return timed_out
    text = _without_nul(raw.decode("utf-8", errors="replace")[:RESPONSE_BODY_STORED])
    if 200 <= response.status < 300:
        return DeliveryResult(delivered=True, http_status=response.status, response_text=text,
                              reported_outcome=_reported_outcome(raw))
    retry_at = None
    if response.status in RETRY_AFTER_STATUSES:
        asked, now = response.headers.get("Retry-After"), time.time()
        wait = retry_after_seconds(asked, now)
        if wait is not None:  # a date stays that very time, not now + (date - now) in floats
            retry_at = retry_after_date(asked) or now + wait
    return DeliveryResult(delivered=False, http_status=response.status, response_text=text,
                          error=failure_message(response.status), retry_at=retry_at)


def _cause(exc):
    """What went wrong: the reason a MaxRetryError wraps (urllib3 wraps connection errors)."""
    return exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) else exc


def _timed_out(exc):
    cause = _cause(exc)
    return (isinstance(cause, (urllib3.exceptions.TimeoutError, socket.timeout))
            and not isinstance(cause, urllib3.exceptions.NewConnectionError))  # a refusal, not a timeout


def _request_error(exc):
    """What went wrong before an answer arrived (never the exception's text)."""
    if isinstance(_cause(exc), urllib3.exceptions.SSLError):
        return "TLS connection to webhook endpoint failed (is its certificate valid?)"
    if isinstance(exc, (urllib3.exceptions.MaxRetryError, urllib3.exceptions.ProtocolError,
                        urllib3.exceptions.ClosedPoolError, OSError)):
        return "Could not connect to webhook endpoint"
    return f"Webhook request failed ({type(exc).__name__})"


def _answer_error(exc, status):
    """What went wrong while reading an answer whose status line had arrived."""
    if isinstance(exc, urllib3.exceptions.DecodeError):
        return f"Webhook endpoint answered {status} with a body that could not be decoded"
    return f"Webhook endpoint answered {status} but closed the connection before the whole answer was sent"
