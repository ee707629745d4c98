"""Scenarios for the real cueapi-sdk 0.1.3 against a live server: every cue call, every error.

Run in a child process by tests/test_sdk_cues.py (`python -P sdk_cues.py URL SCENARIO`): the
SDK's top-level module is also called `cueapi`, like this project's package, so the two can't
share an interpreter. `-P` keeps the project directory off sys.path here.
"""

import datetime
import sys

import pytest
import requests
from cueapi import CueAPI
from cueapi.exceptions import (
    AuthenticationError,
    CueAPIError,
    CueLimitExceededError,
    CueNotFoundError,
    InvalidScheduleError,
    RateLimitError,
)

HOOK = "http://127.0.0.1:9/hook"


def new_client(url, name):
    """A fresh user per scenario (its own rate-limit window and cue limit)."""
    response = requests.post(url + "/v1/auth/register", json={"email": f"{name}@example.com"}, timeout=10)
    response.raise_for_status()
    return CueAPI(response.json()["api_key"], base_url=url)


def test_recurring_cue_lifecycle(url, client):
    cue = client.cues.create("nightly", cron="0 9 * * *", timezone="America/New_York", callback=HOOK,
                             callback_method="PUT", callback_headers={"X-Token": "t"},
                             payload={"task": "report"}, description="d",
                             retry={"max_attempts": 5, "backoff_minutes": [1, 2]},
                             on_failure={"email": False, "pause": True})
    assert cue.id.startswith("cue_") and cue.status == "active"
    assert cue.schedule.cron == "0 9 * * *" and cue.schedule.timezone == "America/New_York"
    assert (cue.callback.url, cue.callback.method, cue.callback.headers) == (HOOK, "PUT", {"X-Token": "t"})
    assert cue.retry.max_attempts == 5 and cue.on_failure.pause is True
    assert cue.next_run is not None and cue.next_run.tzinfo is not None

    assert client.cues.get(cue.id).name == "nightly"
    listing = client.cues.list()
    assert listing.total == 1 and [c.id for c in listing.cues] == [cue.id]

    updated = client.cues.update(cue.id, name="renamed", cron="0 10 * * *", callback="http://127.0.0.1:10/new")
    assert updated.name == "renamed"
    assert updated.schedule.timezone == "America/New_York"  # kept: the SDK sends no timezone
    assert (updated.callback.method, updated.callback.headers) == ("PUT", {"X-Token": "t"})  # kept

    paused = client.cues.pause(cue.id)
    assert paused.status == "paused" and paused.next_run is None
    assert client.cues.list(status="paused").total == 1
    resumed = client.cues.resume(cue.id)
    assert resumed.status == "active" and resumed.next_run is not None

    assert client.cues.delete(cue.id) is None
    with pytest.raises(CueNotFoundError):
        client.cues.get(cue.id)


def test_one_time_and_worker_cues(url, client):
    at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    once = client.cues.create("once", at=at, callback=HOOK)
    assert once.schedule.type == "once" and once.next_run == at.replace(microsecond=at.microsecond)
    worker = client.cues.create("work", cron="*/5 * * * *", transport="worker", payload={"task": "t"})
    assert worker.transport == "worker" and worker.callback.url is None
    assert worker.warning == "No active workers found. Start a cueapi-worker to process this cue."


def test_error_classes(url, client):
    client.cues.create("dup", cron="0 9 * * *", callback=HOOK)
    with pytest.raises(CueAPIError) as conflict:
        client.cues.create("dup", cron="0 9 * * *", callback=HOOK)
    assert type(conflict.value) is CueAPIError
    assert (conflict.value.status_code, conflict.value.code) == (409, "duplicate_cue_name")

    with pytest.raises(InvalidScheduleError) as bad_cron:
        client.cues.create("bad", cron="not a cron", callback=HOOK)
    assert (bad_cron.value.status_code, bad_cron.value.code) == (400, "invalid_schedule")
    with pytest.raises(InvalidScheduleError) as bad_body:
        client.cues.create("bad", cron="0 9 * * *")  # webhook without a URL
    assert bad_body.value.status_code == 422

    with pytest.raises(CueNotFoundError):
        client.cues.update("cue_doesnotexist", name="x")
    with pytest.raises(CueNotFoundError):
        client.cues.delete("cue_doesnotexist")

    for i in range(9):
        client.cues.create(f"fill{i}", cron="0 9 * * *", callback=HOOK)
    with pytest.raises(CueLimitExceededError) as limit:
        client.cues.create("one-too-many", cron="0 9 * * *", callback=HOOK)
    assert limit.value.code == "cue_limit_exceeded"

    with CueAPI("cue_sk_" + "0" * 32, base_url=url) as stranger:
        with pytest.raises(AuthenticationError) as auth:
            stranger.cues.list()
    assert auth.value.code == "invalid_api_key"


def test_rate_limit_error_carries_retry_after(url, client):
    with pytest.raises(RateLimitError) as limited:
        for _ in range(61):
            client.cues.list()
    assert isinstance(limited.value.retry_after, int) and 1 <= limited.value.retry_after <= 60


def test_executions(url, client):
    cue = client.cues.create("work", cron="0 9 * * *", transport="worker", payload={"task": "t"})
    auth = {"Authorization": f"Bearer {client._api_key}"}  # for the calls 0.1.3 lacks
    fired = requests.post(f"{url}/v1/cues/{cue.id}/fire", headers=auth, timeout=10).json()
    listing = client.executions.list(cue_id=cue.id)
    assert listing["total"] == 1 and listing["executions"][0]["id"] == fired["id"]
    assert client.executions.list(status="pending", limit=5)["total"] == 1
    assert client.executions.get(fired["id"])["status"] == "pending"
    with pytest.raises(CueNotFoundError):
        client.executions.get("not-a-uuid")

    claim = requests.post(f"{url}/v1/executions/{fired['id']}/claim", json={"worker_id": "w"}, headers=auth, timeout=10)
    assert claim.status_code == 200
    assert client.executions.heartbeat(fired["id"])["acknowledged"] is True
    with client.executions.handle(fired["id"]) as ctx:
        ctx.result = "done"
    got = client.executions.get(fired["id"])
    assert got["status"] == "success" and got["outcome"]["result"] == "done"
    assert client.executions.mark_verification_pending(fired["id"])["outcome_state"] == "verification_pending"
    assert client.executions.mark_verified(fired["id"])["outcome_state"] == "verified_success"
    with pytest.raises(CueAPIError) as again:
        client.executions.report_outcome(fired["id"], success=True)
    assert again.value.status_code == 409


if __name__ == "__main__":
    base_url, scenario = sys.argv[1], sys.argv[2]
    with new_client(base_url, scenario.replace("_", "-")) as sdk:
        globals()[scenario](base_url, sdk)
    print(f"ok {scenario}")
