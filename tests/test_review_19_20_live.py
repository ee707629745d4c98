"""Issues #19 and #20 from outside, as a black-box client sees them: a live server with its
engine, a real local receiver, raw HTTP. The places a review found the server disagreeing
with the issue texts: a one-time cue whose endpoint is gone (410) is paused with its note,
a 400-digit Retry-After is the capped wait (not a failed request), a made key answers
exactly the issue's six fields, a bulk replay exactly {"replayed", "count"}, and #19's new
integers refuse strings."""

from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.live import LiveServer, wait_for
from tests.receiver import Receiver

pytestmark = pytest.mark.live
ENV = dict(CUEAPI_RATE_LIMIT_ENABLED="false")
CONFIRM = {"X-Confirm-Destructive": "true"}


def parse(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_review_of_19_and_20_live():
    with (Receiver([(410, b"gone")]) as gone, Receiver([(503, b"busy", {"Retry-After": "9" * 400})]) as busy,
          LiveServer(**ENV) as server):
        key = requests.post(server.url + "/v1/auth/register", json={"email": "review@example.com"},
                            timeout=10).json()["api_key"]
        auth = {"Authorization": f"Bearer {key}"}

        def call(method, path, **kwargs):
            return requests.request(method, server.url + path, headers={**auth, **kwargs.pop("headers", {})},
                                    timeout=10, **kwargs)

        made = call("POST", "/v1/auth/keys", json={"name": "ci", "scope": "read_only"})
        assert made.status_code == 201
        assert set(made.json()) == {"id", "name", "scope", "key", "prefix", "created_at"}

        at = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
        once = call("POST", "/v1/cues", json={"name": "once", "schedule": {"type": "once", "at": at},
                                              "callback": {"url": gone.url}}).json()
        recurring = call("POST", "/v1/cues", json={
            "name": "busy", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"}, "callback": {"url": busy.url},
            "retry": {"max_attempts": 3, "backoff_minutes": [0, 0]}}).json()
        gone_run = call("POST", f"/v1/cues/{once['id']}/fire").json()["id"]
        busy_run = call("POST", f"/v1/cues/{recurring['id']}/fire").json()["id"]

        assert wait_for(lambda: call("GET", f"/v1/cues/{once['id']}").json()["status"] == "paused", 20), \
            server.output()
        cue = call("GET", f"/v1/cues/{once['id']}").json()
        assert "410" in cue["pause_note"]
        assert call("GET", f"/v1/executions/{gone_run}").json()["error_message"] == "Webhook endpoint is gone (410)"
        assert len(gone.requests) == 1

        assert wait_for(lambda: call("GET", f"/v1/executions/{busy_run}/attempts").json()["attempts"], 20)
        (attempt,) = call("GET", f"/v1/executions/{busy_run}/attempts").json()["attempts"]
        assert (attempt["http_status"], attempt["error"]) == (503, "Webhook endpoint server error (503)")
        waited = (parse(attempt["retry_after"]) - parse(attempt["finished_at"])).total_seconds()
        assert waited == pytest.approx(3600, abs=1)
        assert call("GET", f"/v1/executions/{busy_run}").json()["status"] == "retrying"

        replayed = call("POST", "/v1/executions/replay", headers=CONFIRM, json={"cue_id": once["id"]})
        assert replayed.status_code == 200, replayed.text
        assert set(replayed.json()) == {"replayed", "count"}
        assert replayed.json()["count"] == 1

        for path, body, field in (
                ("/v1/auth/webhook-secret/regenerate", {"grace_seconds": "60"}, "body.grace_seconds"),
                ("/v1/executions/replay", {"limit": "5"}, "body.limit"),
                (f"/v1/cues/{recurring['id']}", {"delivery": {"max_in_flight": "5"}}, "body.delivery.max_in_flight")):
            r = call("PATCH" if path.startswith("/v1/cues/") else "POST", path, headers=CONFIRM, json=body)
            assert r.status_code == 422, (path, r.text)
            assert r.json()["error"]["details"][0]["field"] == field
