"""Shared test fixtures: alice owns things, bob is someone else (STYLE.md "Tests")."""

import json

from django.test import TestCase, override_settings

from accounts.services import user_create


# Tests state the URL policy they need; the environment running them must not decide it.
@override_settings(CUEAPI_ALLOW_PRIVATE_URLS=False)
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


# The limits of a server that hosts others, as the old defaults were (a self-hosted server
# defaults to no quotas and 6000 requests a minute). Tests about those limits set them:
# @override_settings(**HOSTED_LIMITS) before the users are created.
HOSTED_LIMITS = dict(CUEAPI_DEFAULT_CUE_LIMIT=10, CUEAPI_DEFAULT_MONTHLY_EXECUTION_LIMIT=300,
                     CUEAPI_DEFAULT_RATE_LIMIT_PER_MINUTE=60)


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
