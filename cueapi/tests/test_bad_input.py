"""Every bad input gets a clear 4xx in the envelope and changes nothing."""

import json
from unittest import mock

from accounts.models import User
from cueapi.parsers import MAX_DEPTH
from cueapi.testing import BaseTestCase, CueTestCase
from cues.models import Cue
from executions.models import Execution
from cueapi.validation import DateTime


class BadInputTests(BaseTestCase):
    def test_table(self):
        cases = [
            # (description, request kwargs, status, code, message)
            ("no auth header", dict(method="get", path="/v1/auth/me", anonymous=True),
             401, "invalid_api_key", "Missing or invalid Authorization header"),
            ("lowercase bearer", dict(method="get", path="/v1/auth/me",
                                      headers={"Authorization": f"bearer {self.alice_key}"}, anonymous=True),
             401, "invalid_api_key", "Missing or invalid Authorization header"),
            ("unknown key", dict(method="get", path="/v1/auth/me", key="cue_sk_deadbeef"),
             401, "invalid_api_key", "Invalid API key"),
            ("bad JSON", dict(method="post", path="/v1/auth/register", body="{not json", anonymous=True),
             400, "invalid_json", "Request body is not valid JSON"),
            ("bad UTF-8", dict(method="post", path="/v1/auth/register", body=b"\xff\xfe", anonymous=True),
             400, "invalid_json", "Request body is not valid JSON"),
            ("form content type", dict(method="post", path="/v1/auth/register", body="email=x@example.com",
                                       content_type="application/x-www-form-urlencoded", anonymous=True),
             422, "validation_error",
             "body: Input should be a valid dictionary or object to extract fields from; "
             "send a JSON body with the header Content-Type: application/json"),
            ("JSON array body", dict(method="post", path="/v1/auth/register", body=["x"], anonymous=True),
             422, "validation_error",
             "body: Input should be a valid dictionary or object to extract fields from"),
            ("empty body", dict(method="post", path="/v1/auth/register", body="", anonymous=True),
             422, "validation_error", "body: Field required"),
            ("wrong type", dict(method="post", path="/v1/auth/register", body={"email": 42}, anonymous=True),
             422, "validation_error", "body.email: Input should be a valid string"),
            ("too long", dict(method="post", path="/v1/auth/register",
                              body={"email": "a" * 250 + "@example.com"}, anonymous=True),
             422, "validation_error", "body.email: String should have at most 255 characters"),
            ("NUL in a string", dict(method="post", path="/v1/auth/register",
                                     body={"email": "a\u0000@example.com"}, anonymous=True),
             422, "validation_error", "body.email: String should not contain NUL characters"),
            ("NUL in a path id", dict(method="get", path="/v1/cues/cue%00"), 404, "cue_not_found", "Cue not found"),
            ("unknown route", dict(method="get", path="/v1/nope"), 404, "http_error", "Not Found"),
            ("a datetime past year 9999 in UTC", dict(method="get", path="/v1/alerts?since=9999-12-31T23:00:00-05:00"),
             422, "validation_error", "query.since: Input should be a valid datetime, out of range in UTC"),
            ("a send_at past year 9999 in UTC", dict(method="post", path="/v1/cues/cue_x/fire",
                                                     body={"send_at": "9999-12-31T23:00:00-05:00"}),
             422, "validation_error", "body.send_at: Input should be a valid datetime, out of range in UTC"),
            *[(f"offset past 64 bits on {path}", dict(method="get", path=f"{path}?{name}=99999999999999999999"),
               422, "validation_error", f"query.{name}: Input should be less than or equal to 9223372036854775807")
              for path, name in (("/v1/cues", "offset"), ("/v1/executions", "offset"), ("/v1/alerts", "offset"),
                                 ("/v1/cues/cue_x", "execution_offset"))],
            ("wrong method", dict(method="delete", path="/v1/auth/register", anonymous=True),
             405, "http_error", "Method Not Allowed"),
            ("wrong method, authed", dict(method="put", path="/v1/auth/me"),
             405, "http_error", "Method Not Allowed"),
        ]
        users_before = list(User.objects.order_by("pk").values())
        for description, kwargs, status, code, message in cases:
            with self.subTest(description):
                kwargs = dict(kwargs)
                r = self.call(kwargs.pop("method"), kwargs.pop("path"), kwargs.pop("body", None), **kwargs)
                self.assertError(r, status, code, message)
                self.assertEqual(r["Content-Type"], "application/json")
        self.assertEqual(list(User.objects.order_by("pk").values()), users_before)

    def test_json_with_plus_json_content_type_is_parsed(self):
        r = self.post("/v1/auth/register", {"email": "carol@example.com"},
                      anonymous=True, content_type="application/vnd.api+json")
        self.assertEqual(r.status_code, 201)

    def test_json_without_content_type_is_parsed(self):
        r = self.client.generic("POST", "/v1/auth/register", json.dumps({"email": "carol@example.com"}),
                                content_type="")
        self.assertEqual(r.status_code, 201)

    def test_validation_lists_every_problem(self):
        error = self.assertError(self.patch("/v1/auth/me", {"email": 1, "alert_webhook_url": []}),
                                 422, "validation_error")
        self.assertEqual(
            sorted(d["field"] for d in error["details"]), ["body.alert_webhook_url", "body.email"]
        )

    def test_unhandled_error_is_500_without_details(self):
        secret = self.alice.webhook_secret
        with mock.patch("accounts.selectors.user_active_cue_count", side_effect=RuntimeError(secret)):
            with self.assertLogs("cueapi.errors", "ERROR"):
                r = self.get("/v1/auth/me")
        self.assertError(r, 500, "internal_error", "An internal error occurred")
        self.assertNotIn(secret, r.content.decode())
        self.assertIn("X-Request-Id", r.headers)


class ExtremeOffsetTests(BaseTestCase):
    def test_offsets_postgresql_cannot_store_are_taken_as_the_same_instant_in_utc(self):
        # Pydantic (and so the contract) accepts offsets up to 23:59; PostgreSQL stops at 15:59.
        r = self.get("/v1/alerts?since=0187-01-15T00:53:42.75-22:59")
        self.assertEqual(r.status_code, 200, r.content)
        value = DateTime().to_internal_value("2030-01-01T00:00:00-22:59")
        self.assertEqual(value.isoformat(), "2030-01-01T22:59:00+00:00")
        kept = DateTime().to_internal_value("2030-01-01T00:00:00+05:30")
        self.assertEqual(kept.isoformat(), "2030-01-01T00:00:00+05:30")  # an ordinary offset is kept


class UnstorableJsonTests(CueTestCase):
    """JSON that parses but that no column can hold is 400 `invalid_json`, never a 500, and
    nothing is created: NaN/Infinity, a number beyond a float's range, a lone surrogate,
    nesting deeper than the parser's limit."""

    def test_unstorable_bodies_are_invalid_json(self):
        cue = self.create_cue()
        head = '{"name": "x", "schedule": {"type": "recurring", "cron": "0 9 * * *"}, ' \
               '"callback": {"url": "http://127.0.0.1:9/hook"}, "payload": '
        deep = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
        very_deep = "[" * 100_000 + "]" * 100_000
        cases = [
            ("POST", "/v1/cues", head + '{"a": NaN}}'),
            ("POST", "/v1/cues", head + '{"a": -Infinity}}'),
            ("POST", "/v1/cues", head + '{"a": 1e400}}'),
            ("POST", "/v1/cues", head + '{"\\ud800": 1}}'),
            ("POST", "/v1/cues", head + '{"a": "\\udfff"}}'),
            ("POST", "/v1/cues", head + '{"a": ' + deep + "}}"),
            ("POST", "/v1/cues", head + '{"a": ' + very_deep + "}}"),
            ("POST", "/v1/cues", head[:-len('"payload": ')] + '"upsert": true, "payload": {"a": 1e400}}'),
            ("POST", f"/v1/cues/{cue['id']}/fire", '{"payload_override": {"a": 1e400}}'),
            ("POST", f"/v1/cues/{cue['id']}/fire", '{"idempotency_key": "\\ud83d"}'),
            ("PATCH", f"/v1/cues/{cue['id']}", '{"payload": {"a": NaN}}'),
        ]
        for method, path, body in cases:
            with self.subTest(body=body[-60:]):
                r = self.call(method, path, body)
                self.assertError(r, 400, "invalid_json")
        self.assertEqual(Cue.objects.count(), 1)
        self.assertEqual(Execution.objects.count(), 0)
        self.assertEqual(self.get(f"/v1/cues/{cue['id']}").json()["payload"], {})

    def test_ordinary_floats_surrogate_pairs_and_nesting_still_parse(self):
        payload = {"f": 1.5e300, "emoji": "\U0001F600", "nested": [[[[{"a": [1]}]]]]}
        cue = self.create_cue(payload=payload)
        self.assertEqual(cue["payload"], payload)
