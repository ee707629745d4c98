"""The engine as separate OS processes against a live server: firing on time, many pollers
and dispatchers at once, a dispatcher killed mid-batch, and a graceful SIGTERM."""

import json
import os
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.receiver import Receiver
from tests.live import LiveServer, wait_for

pytestmark = pytest.mark.live
ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def register(server, email):
    response = requests.post(server.url + "/v1/auth/register", json={"email": email}, timeout=10)
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


def create_once(server, auth, name, url, at, **extra):
    body = {"name": name, "schedule": {"type": "once", "at": at.isoformat()}, "callback": {"url": url}, **extra}
    response = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def executions_of(server, auth, cue_id):
    return requests.get(f"{server.url}/v1/cues/{cue_id}", headers=auth, timeout=10).json()["executions"]


def test_make_run_fires_a_cue_within_a_second_and_signs_it():
    with Receiver() as receiver, LiveServer() as server:
        auth = register(server, "ontime@example.com")
        secret = requests.get(server.url + "/v1/auth/webhook-secret", headers=auth, timeout=10).json()["webhook_secret"]
        at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=3)
        cue = create_once(server, auth, "ontime", receiver.url, at)
        assert wait_for(lambda: receiver.requests, 10), server.output()
        request = receiver.requests[0]
        lateness = request["received_at"] - at.timestamp()
        assert 0 <= lateness < 1.0, lateness
        from cueapi.testing import sdk_verify_webhook

        headers = request["headers"]
        assert sdk_verify_webhook()(request["body"], headers["X-CueAPI-Signature"], secret, headers["X-CueAPI-Timestamp"])
        assert json.loads(request["body"])["cue_id"] == cue["id"]
        assert wait_for(lambda: executions_of(server, auth, cue["id"])[0]["status"] == "success", 5)


@pytest.mark.skipif(not ON_POSTGRES, reason="concurrency is proved on PostgreSQL")
def test_three_pollers_and_three_dispatchers_deliver_each_execution_once():
    env = dict(CUEAPI_RATE_LIMIT_ENABLED="false", CUEAPI_DEFAULT_CUE_LIMIT="1000",
               CUEAPI_DEFAULT_MONTHLY_EXECUTION_LIMIT="100000", CUEAPI_DISPATCH_CONCURRENCY="8")
    with Receiver() as receiver, LiveServer(api_only=True, **env) as server:
        auth = register(server, "many@example.com")
        at = datetime.now(timezone.utc) + timedelta(seconds=20)
        cues = [create_once(server, auth, f"c{i}", receiver.url, at) for i in range(300)]
        for _ in range(3):
            server.spawn("run_poller")
            server.spawn("run_dispatcher")
        assert wait_for(lambda: len(receiver.requests) >= 300, 60), server.output()
        time.sleep(2)  # anything extra would arrive now
        delivered = [r["headers"]["X-CueAPI-Execution-Id"] for r in receiver.requests]
        assert len(delivered) == 300 and len(set(delivered)) == 300
        per_cue = [executions_of(server, auth, cue["id"]) for cue in cues]
        assert all(len(e) == 1 and e[0]["status"] == "success" and e[0]["attempts"] == 1 for e in per_cue)
        assert {e[0]["id"] for e in per_cue} == set(delivered)


def test_a_killed_dispatcher_loses_nothing():
    # Slow answers keep deliveries in flight when the dispatcher is killed; its lease (2 x 1 s
    # timeout + 5 s) lapses and a new dispatcher sends them again (at-least-once).
    env = dict(CUEAPI_RATE_LIMIT_ENABLED="false", CUEAPI_WEBHOOK_TIMEOUT_SECONDS="1",
               CUEAPI_DISPATCH_CONCURRENCY="4")
    with Receiver([(200, b"ok", 0.8)]) as receiver, LiveServer(api_only=True, **env) as server:
        auth = register(server, "crash@example.com")
        cue_ids = []
        for i in range(8):
            cue = create_once(server, auth, f"c{i}", receiver.url, datetime.now(timezone.utc) + timedelta(days=1))
            requests.post(f"{server.url}/v1/cues/{cue['id']}/fire", headers=auth, timeout=10)
            cue_ids.append(cue["id"])
        first = server.spawn("run_dispatcher")
        assert wait_for(lambda: receiver.requests, 10), server.output()
        first.send_signal(signal.SIGKILL)
        first.wait()
        server.spawn("run_dispatcher")
        done = lambda: all(executions_of(server, auth, c)[0]["status"] == "success" for c in cue_ids)  # noqa: E731
        assert wait_for(done, 40), server.output()
        delivered = [r["headers"]["X-CueAPI-Execution-Id"] for r in receiver.requests]
        assert len(set(delivered)) == 8
        assert len(delivered) > 8  # what was in flight at the kill was sent again


def test_sigterm_finishes_in_flight_deliveries():
    with Receiver([(200, b"ok", 2)]) as receiver, LiveServer(api_only=True, CUEAPI_RATE_LIMIT_ENABLED="false") as server:
        auth = register(server, "term@example.com")
        cue = create_once(server, auth, "c", receiver.url, datetime.now(timezone.utc) + timedelta(days=1))
        requests.post(f"{server.url}/v1/cues/{cue['id']}/fire", headers=auth, timeout=10)
        dispatcher = server.spawn("run_dispatcher")
        assert wait_for(lambda: receiver.requests, 10), server.output()
        dispatcher.send_signal(signal.SIGTERM)
        assert dispatcher.wait(timeout=20) == 0
        execution = executions_of(server, auth, cue["id"])[0]
        assert (execution["status"], execution["http_status"]) == ("success", 200)
