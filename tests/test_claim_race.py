"""No double claim: 8 OS processes race over 500 claimable executions through both claim
endpoints, on PostgreSQL (SQLite serialises writers, so there is nothing to race there)."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.live import LiveServer

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
                       reason="concurrency is proved on PostgreSQL"),
]
CLAIMER = Path(__file__).resolve().parent.parent / "bench" / "claimer.py"
RACE_ENV = dict(CUEAPI_RATE_LIMIT_ENABLED="false", CUEAPI_DEFAULT_MONTHLY_EXECUTION_LIMIT="100000",
                WEB_CONCURRENCY="4", LOG_LEVEL="WARNING")


def fire_many(server, auth, count):
    body = {"name": "race", "transport": "worker", "payload": {"task": "t"},
            "schedule": {"type": "recurring", "cron": "0 0 1 1 *"}}
    cue_id = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10).json()["id"]

    def fire(_):
        response = requests.post(f"{server.url}/v1/cues/{cue_id}/fire", headers=auth, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        return set(pool.map(fire, range(count)))


def test_eight_processes_never_claim_the_same_execution():
    with LiveServer(api_only=True, **RACE_ENV) as server:
        key = requests.post(server.url + "/v1/auth/register", json={"email": "race@example.com"}, timeout=10).json()["api_key"]
        fired = fire_many(server, {"Authorization": f"Bearer {key}"}, 500)
        claimers = [
            subprocess.Popen([sys.executable, str(CLAIMER), server.url, key, "next" if i % 2 else "by-id", f"w{i}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(8)
        ]
        results = [c.communicate(timeout=180) for c in claimers]
        assert all(c.returncode == 0 for c in claimers), [err for _, err in results]
        claimed = [line for out, _ in results for line in out.split()]
        assert len(claimed) == len(set(claimed)), "an execution was claimed twice"
        assert set(claimed) == fired
        # Both endpoints took part (which one wins each race is up to the scheduler).
        attempts = [int(err.split("attempts ")[-1]) for _, err in results]
        assert sum(attempts[0::2]) > 0 and sum(attempts[1::2]) > 0, attempts
