"""One webhook POST: body, signatures, SSRF-safe send, and what the answer means.

A plain function (`send_webhook`) that the dispatcher calls and tests call directly.
The request is SERVER.md §4.5.2 to the byte (so `cueapi.verify_webhook` accepts it) plus the
Standard Webhooks headers (DESIGN.md §3.15). The address connected to is the one that was
checked (`resolve_safe_address`), redirects are not followed, and at most RESPONSE_READ_LIMIT
bytes of the answer are read.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from cueapi.timefmt import ts_iso
from cueapi.urlsafety import UnsafeURL, resolve_safe_address

USER_AGENT = "CueAPI/1.0"
RESPONSE_READ_LIMIT = 65_536
RESPONSE_BODY_STORED = 2000
# Ours win over a cue's custom headers of the same name (DESIGN.md §3.10).
PROTECTED_HEADERS = {
    "content-type", "user-agent", "host", "x-cueapi-signature", "x-cueapi-timestamp",
    "x-cueapi-cue-id", "x-cueapi-execution-id", "x-cueapi-scheduled-for", "x-cueapi-attempt",
    "webhook-id", "webhook-timestamp", "webhook-signature", "content-length",
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


def signed_headers(*, secret, body, execution_id, cue_id, scheduled_for, attempt,
                   custom_headers=None, timestamp=None):
    timestamp = str(int(time.time() if timestamp is None else timestamp))
    headers = {
        name: str(value)
        for name, value in (custom_headers or {}).items()
        if name.lower() not in PROTECTED_HEADERS
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
        "webhook-signature": standard_webhooks_signature(secret, str(execution_id), timestamp, body),
    })
    return headers


class PinnedAddressAdapter(HTTPAdapter):
    """Connects to `request.pinned_address` (checked beforehand) instead of resolving the
    host again, while TLS still verifies the certificate against the real host name."""

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        address = getattr(request, "pinned_address", None)
        if address:
            if host_params["scheme"] == "https":
                pool_kwargs["server_hostname"] = host_params["host"]
                pool_kwargs["assert_hostname"] = host_params["host"]
            host_params["host"] = address
        return host_params, pool_kwargs


_sessions = threading.local()


def http_session():
    """One keep-alive session per thread (requests sessions are not thread-safe)."""
    session = getattr(_sessions, "session", None)
    if session is None:
        session = requests.Session()
        adapter = PinnedAddressAdapter(pool_connections=32, pool_maxsize=4, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.trust_env = False  # never send callbacks through an environment proxy
        _sessions.session = session
    return session


@dataclass
class DeliveryResult:
    delivered: bool
    http_status: int | None = None
    error: str | None = None
    response_text: str | None = None
    reported_outcome: dict | None = None  # the handler's {"success": bool, ...}, if it sent one
    duration_ms: int = 0


def failure_message(status):
    if status == 404:
        return "Webhook endpoint not found (404)"
    if status == 408:
        return "Webhook endpoint timed out"
    if status == 500:
        return "Webhook endpoint returned server error (500)"
    if 400 <= status < 500:
        return f"Webhook endpoint rejected request ({status})"
    if 500 <= status < 600:
        return f"Webhook endpoint server error ({status})"
    return f"Webhook delivery failed ({status})"


def _reported_outcome(raw):
    """A 2xx JSON object with a boolean `success` is the handler reporting its outcome."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and isinstance(data.get("success"), bool):
        return data
    return None


def send_webhook(*, url, method, headers, body, timeout=None):
    """POST (or the cue's method) the signed body; never raises for network trouble."""
    timeout = settings.CUEAPI_WEBHOOK_TIMEOUT_SECONDS if timeout is None else timeout
    started = time.monotonic()

    def result(**kwargs):
        return DeliveryResult(duration_ms=int((time.monotonic() - started) * 1000), **kwargs)

    try:
        hostname, port, address = resolve_safe_address(url)
    except UnsafeURL as exc:
        return result(delivered=False, error=str(exc))
    default_port = 443 if url.lower().startswith("https") else 80
    request = requests.Request(
        method, url,
        headers={**headers, "Host": hostname if port == default_port else f"{hostname}:{port}"},
        data=None if method == "GET" else body,
    )
    prepared = http_session().prepare_request(request)
    prepared.pinned_address = address
    try:
        response = http_session().send(prepared, timeout=timeout, allow_redirects=False, stream=True)
        try:
            raw = response.raw.read(RESPONSE_READ_LIMIT, decode_content=True) or b""
        finally:
            response.close()
    except requests.Timeout:
        return result(delivered=False, error="Webhook endpoint timed out")
    except requests.ConnectionError:
        return result(delivered=False, error="Could not connect to webhook endpoint")
    except requests.RequestException as exc:
        return result(delivered=False, error=str(exc)[:500])
    text = raw.decode("utf-8", errors="replace")[:RESPONSE_BODY_STORED]
    if 200 <= response.status_code < 300:
        return result(delivered=True, http_status=response.status_code, response_text=text,
                      reported_outcome=_reported_outcome(raw))
    return result(delivered=False, http_status=response.status_code, response_text=text,
                  error=failure_message(response.status_code))
