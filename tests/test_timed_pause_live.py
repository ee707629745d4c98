"""Timed pause over HTTP against a live server with its engine: `paused_until` and
`pause_note` on create and PATCH, their errors (nothing persisted), and the poller resuming
the cue by itself at paused_until.

The poll interval is long (30 s) and every cue's next slot is far away, so the poller sleeps;
on PostgreSQL only the paused_until trigger can wake it in time (SQLite polls every second)."""

import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.live import LiveServer, wait_for

pytestmark = pytest.mark.live
ENV = dict(CUEAPI_RATE_LIMIT_ENABLED="false", CUEAPI_POLL_INTERVAL_SECONDS="30")
YEARLY = {"type": "recurring", "cron": "0 0 1 1 *", "timezone": "UTC"}


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def parse(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_timed_pause_live():
    with LiveServer(**ENV) as server:
        key = requests.post(server.url + "/v1/auth/register", json={"email": "pause@example.com"}, timeout=10).json()
        auth = {"Authorization": f"Bearer {key['api_key']}"}

        def call(method, path, body=None):
            return requests.request(method, server.url + path, json=body, headers=auth, timeout=10)

        def cue_body(name, **extra):
            return {"name": name, "transport": "worker", "payload": {"task": "t"}, "schedule": YEARLY, **extra}

        def field(response):
            assert response.status_code == 422, response.text
            assert response.json()["error"]["code"] == "validation_error", response.text
            return response.json()["error"]["details"][0]["field"]

        now = datetime.now(timezone.utc)
        # Create: errors first, nothing is created.
        assert field(call("POST", "/v1/cues", cue_body("bad", paused_until=iso(now - timedelta(minutes=1))))) \
            == "body.paused_until"
        assert field(call("POST", "/v1/cues", cue_body("bad", pause_note="no until"))) == "body.pause_note"
        assert field(call("POST", "/v1/cues", cue_body("bad", paused_until=iso(now + timedelta(days=1)),
                                                       pause_note="x" * 501))) == "body.pause_note"
        assert call("GET", "/v1/cues").json()["total"] == 0

        # Create: happy path, the cue starts paused with its note.
        until = now + timedelta(days=1)
        created = call("POST", "/v1/cues", cue_body("launch", paused_until=iso(until), pause_note="launch day"))
        assert created.status_code == 201, created.text
        created = created.json()
        assert (created["status"], created["next_run"], parse(created["paused_until"]), created["pause_note"]) \
            == ("paused", None, until, "launch day")

        # PATCH errors on an active cue: each is 422 on its field and the cue doesn't change.
        cue = call("POST", "/v1/cues", cue_body("nightly")).json()
        url = f"/v1/cues/{cue['id']}"
        before = call("GET", url).json()
        for body, expected in (
            ({"status": "paused", "paused_until": iso(now - timedelta(seconds=5))}, "body.paused_until"),
            ({"status": "paused", "paused_until": "not a time"}, "body.paused_until"),
            ({"status": "paused", "pause_note": "x" * 501}, "body.pause_note"),
            ({"status": "active", "paused_until": iso(now + timedelta(hours=1))}, "body.paused_until"),
            ({"paused_until": iso(now + timedelta(hours=1))}, "body.paused_until"),
            ({"pause_note": "only a note", "description": "changed"}, "body.pause_note"),
        ):
            assert field(call("PATCH", url, body)) == expected, body
        after = call("GET", url).json()
        assert {k: v for k, v in after.items() if k != "executions"} == \
            {k: v for k, v in before.items() if k != "executions"}

        # A plain pause with a note; the note alone changes on a paused cue; a resume clears it.
        r = call("PATCH", url, {"status": "paused", "pause_note": "vendor outage"}).json()
        assert (r["status"], r["paused_until"], r["pause_note"]) == ("paused", None, "vendor outage")
        r = call("PATCH", url, {"pause_note": "vendor outage, ticket 42"}).json()
        assert r["pause_note"] == "vendor outage, ticket 42"
        r = call("PATCH", url, {"status": "active"}).json()
        assert (r["status"], r["paused_until"], r["pause_note"]) == ("active", None, None)

        # The timed pause: the poller is asleep (long interval, every slot far away) when it is
        # set, and must resume the cue at paused_until, not before and not an interval later.
        time.sleep(1.5)
        until = datetime.now(timezone.utc) + timedelta(seconds=4)
        r = call("PATCH", url, {"status": "paused", "paused_until": iso(until), "pause_note": "deploy"})
        assert r.status_code == 200, r.text
        assert (r.json()["status"], r.json()["next_run"], r.json()["pause_note"]) == ("paused", None, "deploy")
        assert parse(r.json()["paused_until"]) == until

        def resumed():
            body = call("GET", url).json()
            return body["status"] == "active" and body

        time.sleep(2)
        assert call("GET", url).json()["status"] == "paused"  # not before paused_until
        body = wait_for(resumed, 12)
        resumed_at = datetime.now(timezone.utc)
        assert body, server.output()
        assert resumed_at - until < timedelta(seconds=6), (resumed_at, until)
        assert (body["paused_until"], body["pause_note"]) == (None, None)
        assert body["next_run"] == before["next_run"]  # the next slot from then: next January
        assert parse(body["updated_at"]) >= until.replace(microsecond=0)
