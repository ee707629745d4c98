"""Bulk delete and the verify echo over real HTTP, against gunicorn (the real request body
path: Content-Length, the WSGI input stream, the response's Content-Length on the wire)."""

import hashlib
import json

import pytest
import requests

from tests.live import LiveServer

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def server():
    with LiveServer(api_only=True) as live:
        yield live


def register(server, email):
    r = requests.post(f"{server.url}/v1/auth/register", json={"email": email}, timeout=10)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['api_key']}"}


def create_cue(server, auth, name):
    r = requests.post(f"{server.url}/v1/cues", headers=auth, timeout=10, json={
        "name": name, "schedule": {"type": "recurring", "cron": "0 9 * * *"},
        "callback": {"url": "http://127.0.0.1:9/hook"}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_bulk_delete(server):
    alice, bob = register(server, "alice@example.org"), register(server, "bob@example.org")
    a, b = create_cue(server, alice, "a"), create_cue(server, alice, "b")
    bobs = create_cue(server, bob, "bob's")
    assert requests.post(f"{server.url}/v1/cues/{a}/fire", headers=alice, timeout=10).status_code == 200
    url = f"{server.url}/v1/cues/bulk-delete"

    r = requests.post(url, headers=alice, json={"ids": [a, b]}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "confirmation_required", r.text

    confirmed = {**alice, "X-Confirm-Destructive": "true"}
    r = requests.post(url, headers=confirmed, json={"ids": [b, bobs, "cue_nope", a, b]}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": [b, a], "skipped": [bobs, "cue_nope", b]}
    for cue_id in (a, b):
        assert requests.get(f"{server.url}/v1/cues/{cue_id}", headers=alice, timeout=10).status_code == 404
    assert requests.get(f"{server.url}/v1/executions", headers=alice, timeout=10).json()["total"] == 0
    assert requests.get(f"{server.url}/v1/cues/{bobs}", headers=bob, timeout=10).status_code == 200

    r = requests.post(url, headers=confirmed, json={"ids": []}, timeout=10)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body.ids", r.text


def test_verify_echo(server):
    auth = register(server, "carol@example.org")
    cue_id = create_cue(server, auth, "echoed")
    raw = json.dumps({"payload_override": {"städte": ["Zürich", "東京"]}}, ensure_ascii=False,
                     indent=2).encode()
    headers = {**auth, "Content-Type": "application/json", "X-CueAPI-Verify-Echo": "true"}
    r = requests.post(f"{server.url}/v1/cues/{cue_id}/fire", data=raw, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert int(r.headers["Content-Length"]) == len(r.content)
    body = r.json()
    assert body["body_received"] == raw.decode()
    assert body["body_received_sha256"] == hashlib.sha256(raw).hexdigest()
    assert body["triggered_by"] == "manual_fire"

    # Chunked (no Content-Length): the body-size middleware buffers it, the echo still sees it.
    r = requests.post(f"{server.url}/v1/cues/{cue_id}/fire", data=iter([raw[:10], raw[10:]]),
                      headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["body_received_sha256"] == hashlib.sha256(raw).hexdigest()

    del headers["X-CueAPI-Verify-Echo"]
    r = requests.post(f"{server.url}/v1/cues/{cue_id}/fire", data=raw, headers=headers, timeout=10)
    assert r.status_code == 200 and "body_received" not in r.json(), r.text
