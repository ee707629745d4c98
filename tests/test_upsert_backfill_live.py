"""Upsert by name and backfill over real HTTP against gunicorn, each answer as a client sees
it; backfilled webhook executions are delivered by a real dispatcher process."""

from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.live import LiveServer, wait_for
from tests.receiver import Receiver

pytestmark = pytest.mark.live

HOOK = "http://127.0.0.1:9/hook"


@pytest.fixture(scope="module")
def server():
    with LiveServer(api_only=True, CUEAPI_RATE_LIMIT_ENABLED="false") as live:
        yield live


def register(server, email):
    r = requests.post(f"{server.url}/v1/auth/register", json={"email": email}, timeout=10)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['api_key']}"}


def post(server, path, auth, body):
    return requests.post(f"{server.url}{path}", headers=auth, json=body, timeout=30)


def error_of(response, status, code):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["status"]) == (code, status), response.text
    return error


def cue_body(name, **overrides):
    return {"name": name, "schedule": {"type": "recurring", "cron": "0 * * * *"}, "callback": {"url": HOOK},
            **overrides}


def hour_floor(moment):
    return moment.replace(minute=0, second=0, microsecond=0)


def test_upsert(server):
    alice, bob = register(server, "upsert-alice@example.org"), register(server, "upsert-bob@example.org")

    created = post(server, "/v1/cues", alice, {**cue_body("etl", payload={"v": 1}, description="d"), "upsert": True})
    assert created.status_code == 201, created.text
    cue = created.json()

    # The same name again: the body applies as a PATCH, what it doesn't send stays.
    updated = post(server, "/v1/cues", alice, {"name": "etl", "upsert": True, "callback": {"url": HOOK},
                                               "schedule": {"type": "recurring", "cron": "30 * * * *"},
                                               "payload": {"v": 2}})
    assert updated.status_code == 200, updated.text
    body = updated.json()
    assert (body["id"], body["payload"], body["description"]) == (cue["id"], {"v": 2}, "d")
    assert body["schedule"]["cron"] == "30 * * * *"
    patched = requests.patch(f"{server.url}/v1/cues/{cue['id']}", headers=alice, json={}, timeout=10)
    assert set(patched.json()) == set(body)
    body = patched.json()  # an empty PATCH still stamps updated_at
    listed = requests.get(f"{server.url}/v1/cues", headers=alice, timeout=10).json()
    assert [c["id"] for c in listed["cues"]] == [cue["id"]]

    # Bob's cue of the same name is his own.
    assert post(server, "/v1/cues", bob, {**cue_body("etl"), "upsert": True}).status_code == 201

    # Without upsert (absent or false), a taken name is still 409.
    error_of(post(server, "/v1/cues", alice, cue_body("etl")), 409, "duplicate_cue_name")
    error_of(post(server, "/v1/cues", alice, {**cue_body("etl"), "upsert": False}), 409, "duplicate_cue_name")

    # Errors change nothing.
    error = error_of(post(server, "/v1/cues", alice, {**cue_body("etl"), "upsert": "true"}), 422, "validation_error")
    assert error["details"][0]["field"] == "body.upsert"
    error = error_of(post(server, "/v1/cues", alice, {"name": "etl", "upsert": True, "transport": "worker",
                                                      "schedule": {"type": "recurring", "cron": "0 * * * *"}}),
                     422, "validation_error")
    assert error["details"][0]["field"] == "body.transport"
    assert "The transport of an existing cue can't change" in error["message"]
    error = error_of(post(server, "/v1/cues", alice, {"name": "etl", "upsert": True}), 422, "validation_error")
    assert error["message"] == "body.schedule: Field required"
    error_of(post(server, "/v1/cues", alice, {**cue_body("etl", schedule={"type": "recurring", "cron": "nope"}),
                                              "upsert": True}), 400, "invalid_schedule")
    now = requests.get(f"{server.url}/v1/cues/{cue['id']}", headers=alice, timeout=10).json()
    assert (now["updated_at"], now["payload"], now["schedule"]) == (body["updated_at"], {"v": 2}, body["schedule"])


def test_backfill(server):
    alice, bob = register(server, "backfill-alice@example.org"), register(server, "backfill-bob@example.org")
    cue = post(server, "/v1/cues", alice, cue_body("hourly")).json()
    url = f"/v1/cues/{cue['id']}/backfill"
    end = hour_floor(datetime.now(timezone.utc))
    start = end - timedelta(hours=3)
    span = {"start": start.isoformat(), "end": end.isoformat()}

    r = post(server, url, alice, span)
    assert r.status_code == 200, r.text
    first = r.json()
    assert (first["created"], first["skipped_existing"]) == (3, 0)
    executions = [requests.get(f"{server.url}/v1/executions/{i}", headers=alice, timeout=10).json()
                  for i in first["executions"]]
    assert [e["triggered_by"] for e in executions] == ["backfill"] * 3
    assert [e["scheduled_for"] for e in executions] == [
        (start + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in range(3)]

    wider = post(server, url, alice, {"start": (start - timedelta(hours=1)).isoformat(), "end": end.isoformat()})
    assert wider.status_code == 200, wider.text
    assert (wider.json()["created"], wider.json()["skipped_existing"]) == (1, 3)
    listed = requests.get(f"{server.url}/v1/executions", headers=alice, timeout=10,
                          params={"cue_id": cue["id"], "triggered_by": "backfill"}).json()
    assert listed["total"] == 4

    # Errors create nothing.
    error = error_of(post(server, url, alice, {"start": end.isoformat(), "end": start.isoformat()}),
                     422, "validation_error")
    assert error["details"][0]["field"] == "body.end"
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    error = error_of(post(server, url, alice, {"start": start.isoformat(), "end": future}), 422, "validation_error")
    assert error["details"][0]["field"] == "body.end"
    error = error_of(post(server, url, alice, {"start": (end - timedelta(days=5)).isoformat(), "end": end.isoformat()}),
                     422, "validation_error")
    assert error["message"].startswith("body.end: The range holds 120 slots; at most 100 per request: narrow it")
    error_of(post(server, url, alice, {"start": "soon", "end": end.isoformat()}), 422, "validation_error")
    once = post(server, "/v1/cues", alice, cue_body("once", schedule={
        "type": "once", "at": (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()})).json()
    error = error_of(post(server, f"/v1/cues/{once['id']}/backfill", alice, span), 422, "validation_error")
    assert error["details"][0]["field"] == "path.cue_id"
    error_of(post(server, url, bob, span), 404, "cue_not_found")
    error_of(post(server, "/v1/cues/cue_nope/backfill", alice, span), 404, "cue_not_found")
    assert requests.get(f"{server.url}/v1/executions", headers=alice, timeout=10).json()["total"] == 4


def test_backfill_over_the_monthly_limit(server):
    auth = register(server, "limited@example.org")
    server.manage("shell", "-c", "from accounts.models import User; "
                  "User.objects.filter(email='limited@example.org').update(monthly_execution_limit=2)")
    cue = post(server, "/v1/cues", auth, cue_body("limited")).json()
    end = hour_floor(datetime.now(timezone.utc))
    span = {"start": (end - timedelta(hours=3)).isoformat(), "end": end.isoformat()}
    error = error_of(post(server, f"/v1/cues/{cue['id']}/backfill", auth, span), 403, "execution_limit_exceeded")
    assert "This backfill creates 3 executions and 2 remain" in error["message"]
    assert requests.get(f"{server.url}/v1/executions", headers=auth, timeout=10).json()["total"] == 0
    usage = requests.get(f"{server.url}/v1/usage", headers=auth, timeout=10).json()
    assert usage["executions"]["used"] == 0, usage


def test_backfilled_executions_are_delivered_at_once(server):
    with Receiver() as receiver:
        auth = register(server, "delivered@example.org")
        cue = post(server, "/v1/cues", auth, cue_body("delivered", callback={"url": receiver.url})).json()
        end = hour_floor(datetime.now(timezone.utc))
        r = post(server, f"/v1/cues/{cue['id']}/backfill", auth,
                 {"start": (end - timedelta(hours=2)).isoformat(), "end": end.isoformat()})
        assert r.status_code == 200 and r.json()["created"] == 2, r.text
        server.spawn("run_dispatcher")
        assert wait_for(lambda: len(receiver.requests) >= 2, 20), server.output()
        sent = sorted(request["headers"]["X-CueAPI-Scheduled-For"] for request in receiver.requests)
        assert len(receiver.requests) == 2
        assert sent == [(end - timedelta(hours=h)).isoformat() for h in (2, 1)]

        def statuses():
            return {requests.get(f"{server.url}/v1/executions/{i}", headers=auth, timeout=10).json()["status"]
                    for i in r.json()["executions"]}

        assert wait_for(lambda: statuses() == {"success"}, 10), statuses()
