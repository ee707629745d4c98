"""Overlap policy, schedule window and jitter over HTTP against a live server with its engine:
each field's happy path and its errors (nothing persisted on an error)."""

from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.live import LiveServer, wait_for

pytestmark = pytest.mark.live
ENV = dict(CUEAPI_RATE_LIMIT_ENABLED="false", CUEAPI_MIN_SCHEDULE_INTERVAL_SECONDS="1")
EVERY_SECOND = "* * * * * *"


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


def test_overlap_window_and_jitter_live():
    with LiveServer(**ENV) as server:
        key = requests.post(server.url + "/v1/auth/register", json={"email": "ctl@example.com"}, timeout=10).json()
        auth = {"Authorization": f"Bearer {key['api_key']}"}

        def post(path, body):
            return requests.post(server.url + path, json=body, headers=auth, timeout=10)

        def executions(cue_id):
            return requests.get(f"{server.url}/v1/executions?cue_id={cue_id}&limit=100", headers=auth,
                                timeout=10).json()["executions"]

        now = datetime.now(timezone.utc)
        # Errors first: nothing is created.
        for schedule, field in (
            ({"type": "recurring", "cron": EVERY_SECOND, "start_at": iso(now + timedelta(hours=2)),
              "end_at": iso(now + timedelta(hours=1))}, "body.schedule.end_at"),
            ({"type": "recurring", "cron": EVERY_SECOND, "jitter_seconds": 4000}, "body.schedule.jitter_seconds"),
            ({"type": "once", "at": iso(now + timedelta(hours=1)), "end_at": iso(now + timedelta(hours=2))},
             "body.schedule.end_at"),
        ):
            r = post("/v1/cues", {"name": "bad", "transport": "worker", "payload": {"task": "t"}, "schedule": schedule})
            assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == field, r.text
        r = post("/v1/cues", {"name": "bad", "transport": "worker", "payload": {"task": "t"}, "overlap": "never",
                              "schedule": {"type": "recurring", "cron": EVERY_SECOND}})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body.overlap"
        assert requests.get(server.url + "/v1/cues", headers=auth, timeout=10).json()["total"] == 0

        # skip: a worker cue firing every second, nobody claiming: one runs, the rest are missed.
        skip = post("/v1/cues", {"name": "skip", "transport": "worker", "payload": {"task": "t"},
                                 "overlap": "skip", "schedule": {"type": "recurring", "cron": EVERY_SECOND}}).json()
        assert skip["overlap"] == "skip"
        # A window: starts in 2 s, ends 2 s later (inclusive): about 3 slots, then completed.
        start = (now + timedelta(seconds=3)).replace(microsecond=0)
        window = post("/v1/cues", {"name": "window", "transport": "worker", "payload": {"task": "w"},
                                   "schedule": {"type": "recurring", "cron": EVERY_SECOND, "start_at": iso(start),
                                                "end_at": iso(start + timedelta(seconds=2))}}).json()
        assert window["next_run"] == iso(start)
        jittered = post("/v1/cues", {"name": "jitter", "transport": "worker", "payload": {"task": "j"},
                                     "schedule": {"type": "recurring", "cron": "0 0 1 1 *", "jitter_seconds": 3600}}).json()
        assert jittered["schedule"]["jitter_seconds"] == 3600

        def window_done():
            cue = requests.get(f"{server.url}/v1/cues/{window['id']}", headers=auth, timeout=10).json()
            return cue["status"] == "completed" and cue

        assert wait_for(window_done, 15), server.output()
        slots = sorted(e["scheduled_for"] for e in executions(window["id"]))
        assert slots == [iso(start + timedelta(seconds=s)) for s in range(3)], slots

        rows = executions(skip["id"])
        statuses = sorted(e["status"] for e in rows)
        assert statuses.count("pending") == 1 and statuses.count("missed") >= 3, statuses
        assert all("overlap policy (skip)" in e["error_message"] for e in rows if e["status"] == "missed")

        # The jittered next_run: on the year's first slot, within an hour after it, and stable.
        slot = datetime(now.year + 1, 1, 1, tzinfo=timezone.utc)
        run = datetime.fromisoformat(jittered["next_run"].replace("Z", "+00:00"))
        assert slot <= run <= slot + timedelta(hours=1)
        again = requests.get(f"{server.url}/v1/cues/{jittered['id']}", headers=auth, timeout=10).json()
        assert again["next_run"] == jittered["next_run"]
