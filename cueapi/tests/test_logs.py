"""Structured logs: a JSON line per engine event and per request, with ids, never a secret."""

import json
import logging
from datetime import datetime, timezone as dt_timezone

from django.utils import timezone

from cueapi.logs import JsonFormatter, PlainFormatter, log_event
from cueapi.testing import CueTestCase
from executions import dispatcher
from tests.receiver import Receiver


def as_json(record):
    return json.loads(JsonFormatter().format(record))


class LogFormatTests(CueTestCase):
    def test_json_and_plain_lines(self):
        logger = logging.getLogger("cueapi.test")
        with self.assertLogs(logger) as logs:
            log_event(logger, "fired", execution_id="e1", when=datetime(2026, 1, 1, tzinfo=dt_timezone.utc))
        line = as_json(logs.records[0])
        self.assertEqual({k: line[k] for k in ("level", "logger", "event", "execution_id", "when")},
                         {"level": "info", "logger": "cueapi.test", "event": "fired", "execution_id": "e1",
                          "when": "2026-01-01T00:00:00+00:00"})
        self.assertTrue(PlainFormatter().format(logs.records[0]).endswith("fired execution_id=e1 "
                                                                           "when=2026-01-01T00:00:00+00:00"))

    def test_a_request_line_carries_the_request_id_and_no_key(self):
        with self.assertLogs("cueapi.request") as logs:
            response = self.get("/v1/auth/me")
        line = as_json(logs.records[-1])
        self.assertEqual({k: line[k] for k in ("event", "method", "path", "status", "request_id", "user_id")},
                         {"event": "request", "method": "GET", "path": "/v1/auth/me", "status": 200,
                          "request_id": response["X-Request-Id"], "user_id": str(self.alice.pk)})
        self.assertNotIn(self.alice_key, json.dumps(line))

    def test_capabilities_in_paths_and_query_strings_are_not_logged(self):
        with self.assertLogs("cueapi.request") as logs:
            self.client.post("/v1/echo/secret-echo-token", {}, content_type="application/json")
            self.client.get("/v1/auth/verify?token=magic-link-token&device_code=ABCD-EFGH")
        text = "\n".join(JsonFormatter().format(r) for r in logs.records)
        self.assertIn('"/v1/echo/{token}"', text)
        self.assertNotIn("secret-echo-token", text)
        self.assertNotIn("magic-link-token", text)

    def test_a_delivery_is_one_engine_line(self):
        with Receiver([(200, {"success": True})]) as receiver:
            cue = self.create_cue(callback={"url": receiver.url})
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
            with self.assertLogs("cueapi.engine") as logs:
                ids, token = dispatcher.claim_outbox_rows(now=timezone.now(), limit=10)
                dispatcher.deliver_outbox_row(ids[0], token)
        line = as_json(logs.records[-1])
        self.assertEqual({k: line[k] for k in ("event", "execution_id", "cue_id", "attempt", "http_status", "outcome")},
                         {"event": "delivered", "execution_id": execution_id, "cue_id": cue["id"], "attempt": 1,
                          "http_status": 200, "outcome": True})
        self.assertIsInstance(line["duration_ms"], int)
        self.assertNotIn(self.alice.webhook_secret, json.dumps(line))
