"""Shared test fixtures: alice owns things, bob is someone else (STYLE.md "Tests")."""

import json

from django.test import TestCase, override_settings

from accounts.services import user_create


class BaseTestCase(TestCase):
    """Alice and Bob, each with a real API key, and JSON helpers that send it."""

    def setUp(self):
        super().setUp()
        self.alice, self.alice_key = user_create(email="alice@example.org")
        self.bob, self.bob_key = user_create(email="bob@example.org")

    def auth(self, key=None):
        return {"HTTP_AUTHORIZATION": f"Bearer {key or self.alice_key}"}

    def call(self, method, path, body=None, *, key=None, anonymous=False, headers=None, **extra):
        kwargs = {} if anonymous else self.auth(key)
        kwargs.update(extra)
        for name, value in (headers or {}).items():
            kwargs["HTTP_" + name.upper().replace("-", "_")] = value
        if body is not None:
            kwargs["data"] = body if isinstance(body, (str, bytes)) else json.dumps(body)
            kwargs.setdefault("content_type", "application/json")
        elif method.upper() in ("POST", "PUT", "PATCH"):
            # No body and no Content-Type, as cueapi-worker sends (not the test client's
            # default empty multipart form).
            kwargs.setdefault("data", b"")
            kwargs.setdefault("content_type", "")
        return getattr(self.client, method.lower())(path, **kwargs)

    def get(self, path, **kwargs):
        return self.call("GET", path, **kwargs)

    def post(self, path, body=None, **kwargs):
        return self.call("POST", path, body, **kwargs)

    def patch(self, path, body=None, **kwargs):
        return self.call("PATCH", path, body, **kwargs)

    def delete(self, path, **kwargs):
        return self.call("DELETE", path, **kwargs)

    def assertError(self, response, status, code, message=None):
        """The response is the error envelope with this status and code (and message)."""
        self.assertEqual(response.status_code, status, response.content)
        error = response.json()["error"]
        self.assertEqual(error["code"], code)
        self.assertEqual(error["status"], status)
        if message is not None:
            self.assertEqual(error["message"], message)
        return error


HOOK_URL = "http://127.0.0.1:9/hook"


def cue_body(name="nightly", **overrides):
    """A valid POST /v1/cues body (a webhook cue on loopback, allowed in these tests)."""
    body = {
        "name": name,
        "schedule": {"type": "recurring", "cron": "0 9 * * *", "timezone": "UTC"},
        "callback": {"url": HOOK_URL},
    }
    body.update(overrides)
    return body


@override_settings(CUEAPI_ALLOW_PRIVATE_URLS=True)
class CueTestCase(BaseTestCase):
    def create_cue(self, key=None, **overrides):
        r = self.post("/v1/cues", cue_body(**overrides), key=key)
        assert r.status_code == 201, r.content
        return r.json()


class Receiver:
    """A real HTTP server on 127.0.0.1 that records requests and answers from a script.

    `responses` is a list of (status, body[, delay seconds]) used in order; the last one repeats.
    """

    def __init__(self, responses=((200, b"ok"),)):
        import http.server
        import threading

        self.responses = list(responses)
        self.requests = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def handle_any(self):
                import time as _time

                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver.lock:
                    receiver.requests.append({
                        "method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                        "body": body, "received_at": _time.time(),
                    })
                    index = min(len(receiver.requests), len(receiver.responses)) - 1
                    status, reply, *delay = receiver.responses[index]
                if delay:
                    _time.sleep(delay[0])
                reply = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            do_POST = do_GET = do_PUT = do_PATCH = handle_any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def sdk_verify_webhook():
    """The real `cueapi.verify_webhook` of cueapi-sdk. Its package name clashes with ours, but
    its webhook module imports nothing of the package, so it is loaded from its file."""
    import importlib.util
    import sysconfig
    from pathlib import Path

    path = Path(sysconfig.get_paths()["purelib"]) / "cueapi" / "webhook.py"
    spec = importlib.util.spec_from_file_location("cueapi_sdk_webhook", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.verify_webhook
