"""A minute of mixed load on PostgreSQL against a live server with its engine running: 24 client
threads firing, listing and creating while the poller fires due cues and the dispatcher
delivers them. No request may fail with a 5xx and no process may log a deadlock (the API's
fire and the poller's batch once took the same row locks in opposite orders)."""

import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.live import LiveServer
from tests.receiver import Receiver
from tests.test_engine_processes import register

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
                       reason="row-lock deadlocks are a PostgreSQL matter (SQLite has one writer)"),
]
LOAD_SECONDS = float(os.environ.get("LOAD_SECONDS", "60"))
THREADS = 24
USERS = 12  # fresh users: each one's first execution of the month inserts its usage row


def test_a_minute_of_mixed_load_has_no_deadlock_and_no_5xx():
    env = dict(CUEAPI_RATE_LIMIT_ENABLED="false", CUEAPI_DEFAULT_CUE_LIMIT="100000",
               CUEAPI_DEFAULT_MONTHLY_EXECUTION_LIMIT="10000000", WEB_CONCURRENCY="4", LOG_LEVEL="WARNING")
    with Receiver() as receiver, LiveServer(**env) as server:
        auths = [register(server, f"load{i}@example.com") for i in range(USERS)]
        cue_ids = {}  # user -> their cues; fires pick among them, so the API fires cues the poller is firing
        for i, auth in enumerate(auths):
            body = {"name": "every-minute", "schedule": {"type": "recurring", "cron": "* * * * *"},
                    "callback": {"url": receiver.url}}
            cue_ids[i] = [requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10).json()["id"]]
        statuses = Counter()
        lock = threading.Lock()
        stop_at = time.monotonic() + LOAD_SECONDS

        def client(n):
            session = requests.Session()
            rng = random.Random(n)
            made = 0
            while time.monotonic() < stop_at:
                i = rng.randrange(USERS)
                auth = auths[i]
                action = rng.choice(["fire", "fire", "list", "executions", "create"])
                if action == "fire":
                    cue_id = rng.choice(cue_ids[i][-5:])
                    r = session.post(f"{server.url}/v1/cues/{cue_id}/fire", headers=auth, timeout=30)
                elif action == "list":
                    r = session.get(server.url + "/v1/cues?limit=20", headers=auth, timeout=30)
                elif action == "executions":
                    r = session.get(server.url + "/v1/executions?limit=20", headers=auth, timeout=30)
                else:  # a one-time cue due within seconds: the poller fires it during the load
                    made += 1
                    at = datetime.now(timezone.utc) + timedelta(seconds=rng.uniform(0.5, 3))
                    r = session.post(server.url + "/v1/cues", headers=auth, timeout=30, json={
                        "name": f"once-{n}-{made}", "schedule": {"type": "once", "at": at.isoformat()},
                        "callback": {"url": receiver.url}})
                    if r.status_code == 201:
                        cue_ids[i].append(r.json()["id"])
                with lock:
                    statuses[(action, r.status_code)] += 1

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(client, range(THREADS)))
        time.sleep(2)
        output = server.output()
        errors = {k: v for k, v in statuses.items() if k[1] >= 500}
        assert not errors, (errors, output[-5000:])
        assert "deadlock" not in output.lower(), output[-5000:]
        assert sum(v for (action, _), v in statuses.items() if action == "fire") > 100, statuses
        assert len(receiver.requests) > 100
