"""A real dispatcher process against receivers that misbehave: an answer cut off before its
announced length, and one trickled byte by byte. Each attempt ends in `retrying` with a clear
error, once: the execution is not left in `delivering` and re-sent at every lease expiry."""

from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.live import LiveServer, wait_for
from tests.receiver import RawReceiver

pytestmark = pytest.mark.live

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"


def test_truncated_and_trickled_answers_are_retried_not_stuck():
    # A 1 s timeout makes the lease 7 s; the trickle would last 100 s.
    env = dict(CUEAPI_RATE_LIMIT_ENABLED="false", CUEAPI_WEBHOOK_TIMEOUT_SECONDS="1")
    with (RawReceiver(HEAD + b"0123456789") as truncating,
          RawReceiver(HEAD + b"x" * 1000, trickle=0.1, trickle_from=len(HEAD)) as trickling,
          LiveServer(api_only=True, **env) as server):
        key = requests.post(server.url + "/v1/auth/register", json={"email": "raw@example.com"}, timeout=10)
        auth = {"Authorization": f"Bearer {key.json()['api_key']}"}
        at = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
        cue_ids = []
        for name, receiver in (("truncating", truncating), ("trickling", trickling)):
            body = {"name": name, "schedule": {"type": "once", "at": at}, "callback": {"url": receiver.url},
                    "retry": {"max_attempts": 3, "backoff_minutes": [60, 60]}}
            cue = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10).json()
            requests.post(f"{server.url}/v1/cues/{cue['id']}/fire", headers=auth, timeout=10)
            cue_ids.append(cue["id"])
        server.spawn("run_dispatcher")

        def executions():
            return [requests.get(f"{server.url}/v1/cues/{cue_id}", headers=auth, timeout=10).json()["executions"][0]
                    for cue_id in cue_ids]

        assert wait_for(lambda: all(e["status"] == "retrying" for e in executions()), 6), server.output()
        truncated, trickled = executions()
        assert truncated["error_message"] == ("Webhook endpoint answered 200 but closed the connection "
                                              "before the whole answer was sent")
        assert trickled["error_message"] == "Webhook endpoint timed out"
        wait_for(lambda: False, 8)  # past the 7 s lease: a stuck delivery would be sent again
        assert (len(truncating.requests), len(trickling.requests)) == (1, 1)
        assert not trickling.finished
