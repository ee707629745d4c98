"""Upsert and backfill under real concurrency: 8 OS processes send their request at the same
instant to gunicorn on PostgreSQL (SQLite serialises writers, so there is nothing to race
there). Upserts of one name make one cue; backfills of overlapping ranges make each slot once."""

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.live import LiveServer

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
                       reason="concurrency is proved on PostgreSQL (SQLite serialises writers)"),
]
RACE_ENV = dict(CUEAPI_RATE_LIMIT_ENABLED="false", WEB_CONCURRENCY="8", LOG_LEVEL="WARNING")
PROCESSES = 8

# One racer: connect first, then wait for the common instant, send one POST, print the answer.
RACER = """
import json, sys, time
import requests
url, key, body, go_at = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
session = requests.Session()
session.get(url.split("/v1/")[0] + "/health", timeout=30)  # a warm connection
time.sleep(max(0.0, go_at - time.time()))
r = session.post(url, json=body, headers={"Authorization": "Bearer " + key}, timeout=60)
print(json.dumps({"status": r.status_code, "body": r.json()}))
"""


def race(url, key, bodies):
    """POST each body from its own process, all at once; the answers in the same order."""
    go_at = time.time() + 3  # time for every process to start and connect
    racers = [subprocess.Popen([sys.executable, "-c", RACER, url, key, json.dumps(body), str(go_at)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for body in bodies]
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), [err for _, err in outputs]
    return [json.loads(out) for out, _ in outputs]


def register(server, email, monthly_limit=None):
    key = requests.post(server.url + "/v1/auth/register", json={"email": email}, timeout=10).json()["api_key"]
    if monthly_limit is not None:
        server.manage("shell", "-c", "from accounts.models import User; "
                      f"User.objects.filter(email='{email}').update(monthly_execution_limit={monthly_limit})")
    return key


def test_concurrent_upserts_of_one_name_make_one_cue():
    with LiveServer(api_only=True, **RACE_ENV) as server:
        key = register(server, "upsert-race@example.com")
        bodies = [{"name": "raced", "upsert": True, "transport": "worker", "payload": {"task": "t", "racer": i},
                   "schedule": {"type": "recurring", "cron": "0 9 * * *"}} for i in range(PROCESSES)]
        answers = race(server.url + "/v1/cues", key, bodies)
        assert sorted(a["status"] for a in answers) == [200] * (PROCESSES - 1) + [201], answers
        assert len({a["body"]["id"] for a in answers}) == 1
        # Every one was applied: each answer shows its own payload, written under the row lock.
        assert [a["body"]["payload"]["racer"] for a in answers] == list(range(PROCESSES))
        cues = requests.get(server.url + "/v1/cues", headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
        assert cues["total"] == 1, cues
        winner = {a["body"]["updated_at"]: a["body"]["payload"] for a in answers}[cues["cues"][0]["updated_at"]]
        assert cues["cues"][0]["payload"] == winner


@pytest.mark.parametrize("monthly_limit", [None, 100_000], ids=["no-limit", "limit"])
def test_concurrent_backfills_create_each_slot_once(monthly_limit):
    # Without a limit nothing but the unique (cue, scheduled_for) constraint keeps the slots
    # apart; with one, the owner's row is locked for the limit check as well.
    with LiveServer(api_only=True, **RACE_ENV) as server:
        key = register(server, "backfill-race@example.com", monthly_limit)
        auth = {"Authorization": f"Bearer {key}"}
        cue = requests.post(server.url + "/v1/cues", headers=auth, timeout=10, json={
            "name": "every-5", "callback": {"url": "http://127.0.0.1:9/hook"},
            "schedule": {"type": "recurring", "cron": "*/5 * * * *"}}).json()
        base = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=10)
        # Half the processes send the same 5-hour range; the others ranges shifted by 30 min each.
        ranges = [(base, base + timedelta(hours=5)) if i < PROCESSES // 2
                  else (base + timedelta(minutes=30 * i), base + timedelta(minutes=30 * i, hours=5))
                  for i in range(PROCESSES)]
        answers = race(f"{server.url}/v1/cues/{cue['id']}/backfill", key,
                       [{"start": start.isoformat(), "end": end.isoformat()} for start, end in ranges])
        assert [a["status"] for a in answers] == [200] * PROCESSES, answers
        slots = {start + timedelta(minutes=5 * n) for start, end in ranges for n in range(60)}
        assert sum(a["body"]["created"] for a in answers) == len(slots) == 102
        for a in answers:
            assert a["body"]["created"] + a["body"]["skipped_existing"] == 60
        created = [i for a in answers for i in a["body"]["executions"]]
        assert len(created) == len(set(created)) == len(slots)
        listed = requests.get(server.url + "/v1/executions", headers=auth, timeout=10,
                              params={"cue_id": cue["id"], "limit": 100}).json()
        assert listed["total"] == len(slots)
        usage = requests.get(server.url + "/v1/usage", headers=auth, timeout=10).json()
        assert usage["executions"]["used"] == len(slots)
