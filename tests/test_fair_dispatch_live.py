"""A user whose handler is slow (or hostile) can't take every delivery seat: against a live
server, another user's fire is still delivered within seconds while the slow handler holds its
requests open."""

import time

import pytest
import requests

from tests.live import LiveServer, wait_for
from tests.receiver import Receiver
from tests.test_engine_processes import register

pytestmark = pytest.mark.live


def create(server, auth, name, url):
    body = {"name": name, "schedule": {"type": "recurring", "cron": "0 0 1 1 *"}, "callback": {"url": url}}
    response = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_a_slow_handler_delays_nobody_else():
    env = dict(CUEAPI_DISPATCH_CONCURRENCY="8", CUEAPI_WEBHOOK_TIMEOUT_SECONDS="12",
               CUEAPI_RATE_LIMIT_ENABLED="false", LOG_LEVEL="WARNING")
    # Each request to the slow handler is answered after 8 s: the other user's delivery must
    # come while the hog's requests are held (the server's stop waits for them).
    with Receiver(responses=[(200, b"ok", 8)]) as slow, Receiver() as fast, LiveServer(**env) as server:
        hog, other = register(server, "hog@example.com"), register(server, "other@example.com")
        hog_cue, other_cue = create(server, hog, "slow", slow.url), create(server, other, "fast", fast.url)
        for _ in range(12):  # more than the dispatcher's 8 seats
            assert requests.post(f"{server.url}/v1/cues/{hog_cue}/fire", headers=hog, timeout=10).status_code == 200
        assert wait_for(lambda: len(slow.requests) >= 4, 10), server.output()[-3000:]
        fired_at = time.time()
        assert requests.post(f"{server.url}/v1/cues/{other_cue}/fire", headers=other, timeout=10).status_code == 200
        assert wait_for(lambda: fast.requests, 10), server.output()[-3000:]
        assert fast.requests[0]["received_at"] - fired_at < 3
        # The hog never had more than its share (half the seats) in flight.
        assert len(slow.requests) <= 4
