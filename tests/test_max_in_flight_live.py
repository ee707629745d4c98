"""`delivery.max_in_flight` held across two run_dispatcher processes on PostgreSQL: a cue
capped at 3 never has more than 3 requests open at its (slow) handler, while an uncapped cue
of the same user is sent as wide as the seats allow."""

import os
import time

import pytest
import requests

from tests.live import LiveServer, wait_for
from tests.receiver import Receiver
from tests.test_engine_processes import register

pytestmark = pytest.mark.live

DELAY = 1.0  # each request is answered after this long


def max_overlap(receiver):
    """The most requests the receiver had open at once (each is open DELAY from its arrival;
    the next one of a seat can only arrive after the answer was sent and recorded)."""
    starts = sorted(r["received_at"] for r in receiver.requests)
    return max(sum(1 for s in starts if start <= s < start + DELAY) for start in starts)


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith("postgres"),
                    reason="two dispatchers racing for claims: PostgreSQL (SKIP LOCKED)")
def test_the_cap_holds_across_two_dispatchers():
    env = dict(CUEAPI_DISPATCH_CONCURRENCY="16", CUEAPI_RATE_LIMIT_ENABLED="false", LOG_LEVEL="INFO")
    with (Receiver([(200, b"ok", DELAY)]) as capped, Receiver([(200, b"ok", DELAY)]) as wide,
          LiveServer(api_only=True, **env) as server):
        auth = register(server, "cap@example.com")
        ids = {}
        for name, url, delivery in (("capped", capped.url, {"max_in_flight": 3}), ("wide", wide.url, {})):
            body = {"name": name, "schedule": {"type": "recurring", "cron": "0 0 1 1 *"}, "callback": {"url": url},
                    "delivery": delivery}
            response = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10)
            assert response.status_code == 201, response.text
            ids[name] = response.json()["id"]
        # Both dispatchers idle and listening: each fire wakes both at once (NOTIFY), so they
        # race for the same rows, which is when a cap counted outside the claim would break.
        server.spawn("run_dispatcher")
        server.spawn("run_dispatcher")
        assert wait_for(lambda: server.output().count("engine_started") >= 2, 30), server.output()[-3000:]
        time.sleep(1)
        for name, count in (("capped", 12), ("wide", 8)):
            for _ in range(count):
                r = requests.post(f"{server.url}/v1/cues/{ids[name]}/fire", headers=auth, timeout=10)
                assert r.status_code == 200, r.text
        assert wait_for(lambda: len(capped.requests) >= 12 and len(wide.requests) >= 8, 60), server.output()[-3000:]

        def statuses():
            return {e["status"] for e in requests.get(f"{server.url}/v1/executions?cue_id={ids['capped']}&limit=100",
                                                      headers=auth, timeout=10).json()["executions"]}
        assert wait_for(lambda: statuses() == {"success"}, 10), statuses()
    assert len(capped.requests) == 12  # each once: none failed, none sent twice
    assert max_overlap(capped) == 3, sorted(r["received_at"] for r in capped.requests)
    assert max_overlap(wide) > 3  # the cap is the cue's, not the user's or the dispatchers'
