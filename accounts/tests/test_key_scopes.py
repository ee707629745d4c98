"""Each key scope against every route (issue #20): a table of (method, route) → the scopes,
besides `full`, that may call it. The routes come from the URL resolver, so a new route that
takes a key fails `test_the_table_covers_every_route` until it is added here."""

import re
from types import SimpleNamespace

from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView

from accounts.audit import Actor
from accounts.services import api_key_create
from cueapi.scopes import FULL, READ_ONLY, WORKER
from cueapi.testing import BaseTestCase

R, W = READ_ONLY, WORKER
TABLE = {
    ("GET", "v1/auth/me"): {R, W},
    ("PATCH", "v1/auth/me"): set(),
    ("GET", "v1/auth/key"): set(),  # reveals the primary (full) key
    ("POST", "v1/auth/key/regenerate"): set(),
    ("GET", "v1/auth/webhook-secret"): set(),  # secrets: full only, though GETs
    ("POST", "v1/auth/webhook-secret/regenerate"): set(),
    ("GET", "v1/auth/alert-webhook-secret"): set(),
    ("POST", "v1/auth/alert-webhook-secret/regenerate"): set(),
    ("GET", "v1/auth/keys"): {R},
    ("POST", "v1/auth/keys"): set(),
    ("DELETE", "v1/auth/keys/<str:key_id>"): set(),
    ("GET", "v1/audit"): {R},
    ("POST", "v1/auth/session/refresh"): set(),  # a session acts as `full`
    ("GET", "v1/usage"): {R},
    ("GET", "v1/echo/<str:token>"): {R},
    ("GET", "v1/cues"): {R},
    ("POST", "v1/cues"): set(),
    ("POST", "v1/cues/bulk-delete"): set(),
    ("GET", "v1/cues/<str:cue_id>"): {R},
    ("PATCH", "v1/cues/<str:cue_id>"): set(),
    ("DELETE", "v1/cues/<str:cue_id>"): set(),
    ("POST", "v1/cues/<str:cue_id>/fire"): set(),
    ("POST", "v1/cues/<str:cue_id>/backfill"): set(),
    ("GET", "v1/executions"): {R},
    ("GET", "v1/executions/claimable"): {R, W},
    ("POST", "v1/executions/claim"): {W},
    ("GET", "v1/executions/<str:execution_id>"): {R, W},
    ("POST", "v1/executions/<str:execution_id>/outcome"): {W},
    ("POST", "v1/executions/<str:execution_id>/claim"): {W},
    ("POST", "v1/executions/<str:execution_id>/heartbeat"): {W},
    ("GET", "v1/executions/<str:execution_id>/attempts"): {R},
    ("POST", "v1/executions/<str:execution_id>/replay"): set(),
    ("POST", "v1/executions/replay"): set(),
    ("POST", "v1/executions/<str:execution_id>/verify"): set(),
    ("POST", "v1/executions/<str:execution_id>/verification-pending"): set(),
    ("PATCH", "v1/executions/<str:execution_id>/evidence"): set(),
    ("POST", "v1/worker/heartbeat"): {W},
    ("GET", "v1/workers"): {R},
    ("DELETE", "v1/workers/<str:worker_id>"): set(),
    ("GET", "v1/alerts"): {R},
    ("GET", "v1/alert-channels"): {R},
    ("POST", "v1/alert-channels"): set(),
    ("GET", "v1/alert-channels/<str:channel_id>"): {R},
    ("PATCH", "v1/alert-channels/<str:channel_id>"): set(),
    ("DELETE", "v1/alert-channels/<str:channel_id>"): set(),
    ("POST", "v1/alert-channels/<str:channel_id>/test"): set(),
}
METHODS = ("get", "post", "put", "patch", "delete")


def keyed_routes(patterns=None, prefix=""):
    """(METHOD, route) for every DRF view method that authenticates (takes a key)."""
    found = set()
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            found |= keyed_routes(pattern.url_patterns, route)
            continue
        assert isinstance(pattern, URLPattern)
        cls = getattr(pattern.callback, "cls", None)
        if cls is None or not issubclass(cls, APIView):
            continue  # the admin (staff sessions) and /metrics (its own token) take no API key
        for method in METHODS:
            if hasattr(cls, method) and method in cls.http_method_names:
                view = cls()
                view.request = SimpleNamespace(method=method.upper())
                if view.get_authenticators():
                    found.add((method.upper(), route))
    return found


class KeyScopeTableTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.keys = {FULL: self.alice_key}
        for scope in (READ_ONLY, WORKER):
            self.keys[scope] = api_key_create(user=self.alice, name=scope, scope=scope,
                                              actor=Actor("session", str(self.alice.pk)))[1]

    def test_the_table_covers_every_route(self):
        self.assertEqual(keyed_routes(), set(TABLE))

    def test_each_scope_against_every_route(self):
        for (method, route), allowed in TABLE.items():
            path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"\1-that-is-not-there", route)
            for scope in (READ_ONLY, WORKER, FULL):
                with self.subTest(method=method, path=path, scope=scope):
                    r = self.call(method, path, key=self.keys[scope])
                    code = r.json().get("error", {}).get("code") if r.content else None
                    if scope == FULL or scope in allowed:
                        self.assertNotEqual(r.status_code, 401, r.content)
                        self.assertNotEqual(code, "insufficient_scope")
                    else:
                        error = self.assertError(r, 403, "insufficient_scope")
                        self.assertIn(f"scope '{scope}'", error["message"])
                        self.assertIn("'full'", error["message"])

    def test_a_refused_write_changes_nothing(self):
        r = self.post("/v1/cues", {"name": "x", "schedule": {"type": "recurring", "cron": "0 9 * * *"},
                                   "callback": {"url": "https://example.com/h"}}, key=self.keys[READ_ONLY])
        self.assertError(r, 403, "insufficient_scope")
        self.assertEqual(self.get("/v1/cues").json()["cues"], [])

    def test_a_session_acts_as_full(self):
        token = self.post("/v1/auth/session/refresh").json()["session_token"]
        r = self.post("/v1/auth/keys", {"name": "ci", "scope": "read_only"}, key=token)
        self.assertEqual(r.status_code, 201, r.content)
        self.assertEqual(self.get("/v1/auth/webhook-secret", key=token).status_code, 200)
