"""The hosted clients' cue fields against a live server over HTTP: a cue's own webhook timeout,
on_success_fire through a real handler's reply, and exactly one chained execution when many
processes verify the same execution at once (PostgreSQL)."""

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.live import LiveServer, wait_for
from tests.receiver import Receiver

pytestmark = pytest.mark.live
ENV = dict(CUEAPI_RATE_LIMIT_ENABLED="false", CUEAPI_WEBHOOK_TIMEOUT_SECONDS="30")
LATER = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()


def register(server, email):
    key = requests.post(server.url + "/v1/auth/register", json={"email": email}, timeout=10).json()["api_key"]
    return {"Authorization": f"Bearer {key}"}


def create(server, auth, **body):
    body.setdefault("schedule", {"type": "once", "at": LATER})
    r = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def executions(server, auth, cue_id):
    return requests.get(f"{server.url}/v1/cues/{cue_id}", headers=auth, timeout=10).json()["executions"]


def test_a_cues_timeout_and_its_chain_through_a_real_reply():
    with (Receiver([(200, b"{}", 2.5)]) as slow, Receiver([(200, {"success": True})]) as reporting,
          Receiver() as target_receiver, LiveServer(**ENV) as server):
        auth = register(server, "hosted@example.com")
        impatient = create(server, auth, name="impatient", callback={"url": slow.url},
                           delivery={"timeout_seconds": 1}, retry={"max_attempts": 1})
        patient = create(server, auth, name="patient", callback={"url": slow.url}, delivery={"timeout_seconds": 10})
        assert (impatient["delivery"], patient["delivery"]) == (
            {"timeout_seconds": 1, "outcome_deadline_seconds": 0, "max_in_flight": None},
            {"timeout_seconds": 10, "outcome_deadline_seconds": 0, "max_in_flight": None})
        target = create(server, auth, name="target", callback={"url": target_receiver.url}, payload={"step": 2})
        source = create(server, auth, name="source", callback={"url": reporting.url}, on_success_fire=target["id"])
        for cue in (impatient, patient, source):
            assert requests.post(f"{server.url}/v1/cues/{cue['id']}/fire", headers=auth, timeout=10).status_code == 200

        def settled():
            rows = [executions(server, auth, c["id"]) for c in (impatient, patient, target)]
            return all(r and r[0]["status"] in ("failed", "success") for r in rows) and rows

        rows = wait_for(settled, 30)
        assert rows, server.output()
        (failed,), (delivered,), (chained,) = rows
        assert (failed["status"], failed["error_message"]) == ("failed", "Webhook endpoint timed out")
        assert delivered["status"] == "success"
        assert len(target_receiver.requests) == 1
        assert b'"step": 2' in target_receiver.requests[0]["body"] or b'"step":2' in target_receiver.requests[0]["body"]
        detail = requests.get(f"{server.url}/v1/executions/{chained['id']}", headers=auth, timeout=10).json()
        assert detail["triggered_by"] == "on_success"
        [source_execution] = executions(server, auth, source["id"])
        record = requests.get(f"{server.url}/v1/executions/{source_execution['id']}", headers=auth,
                              timeout=10).json()["on_success_fire"]
        assert record == {"cue_id": target["id"], "execution_id": chained["id"], "fired": True, "reason": None}
        stats = requests.get(f"{server.url}/v1/cues/{source['id']}", headers=auth, timeout=10).json()["stats"]
        assert (stats["executions"], stats["succeeded"], stats["success_rate"]) == (1, 1, 1.0)


VERIFY = """
import sys, time, requests
url, key, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0, start - time.time()))
r = requests.post(url, json={"valid": True}, headers={"Authorization": "Bearer " + key}, timeout=30)
print(r.status_code)
"""


@pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
                    reason="concurrency is proved on PostgreSQL (SQLite serialises writers)")
def test_racing_verdicts_fire_the_chain_once():
    with LiveServer(api_only=True, WEB_CONCURRENCY="4", **ENV) as server:
        auth = register(server, "race@example.com")
        key = auth["Authorization"].split()[1]
        target = create(server, auth, name="target", transport="worker", payload={"task": "t"})
        source = create(server, auth, name="source", transport="worker", payload={"task": "s"},
                        verification={"mode": "manual"}, on_success_fire=target["id"])
        for round_ in range(3):
            execution = requests.post(f"{server.url}/v1/cues/{source['id']}/fire", headers=auth, timeout=10).json()["id"]
            r = requests.post(f"{server.url}/v1/executions/{execution}/outcome", json={"success": True},
                              headers=auth, timeout=10)
            assert r.json()["outcome_state"] == "verification_pending"
            start = time.time() + 1.5
            racers = [subprocess.Popen([sys.executable, "-c", VERIFY, f"{server.url}/v1/executions/{execution}/verify",
                                        key, str(start)], stdout=subprocess.PIPE, text=True) for _ in range(8)]
            codes = [int(p.communicate(timeout=60)[0]) for p in racers]
            assert 200 in codes and set(codes) <= {200, 409}, codes
            chained = requests.get(f"{server.url}/v1/executions?cue_id={target['id']}&triggered_by=on_success",
                                   headers=auth, timeout=10).json()
            assert chained["total"] == round_ + 1, chained
