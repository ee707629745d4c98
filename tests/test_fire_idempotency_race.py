"""One idempotency_key, many fires at once: 8 OS processes POST the same fire to a real
server at the same moment and exactly one execution is made. Meant for PostgreSQL (run with
DATABASE_URL=postgres://…), where the requests truly overlap; on SQLite, which serialises
writers, it checks the same answers."""

import multiprocessing

import pytest
import requests

from tests.live import LiveServer

pytestmark = pytest.mark.live
PROCESSES = 8
RACE_ENV = dict(CUEAPI_RATE_LIMIT_ENABLED="false", WEB_CONCURRENCY="4", LOG_LEVEL="WARNING")


def _fire(url, key, body, barrier, results):
    """One process: wait for all the others, then fire."""
    barrier.wait(timeout=60)
    try:
        response = requests.post(url, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        results.put((body, response.status_code, response.json()))
    except Exception as exc:  # noqa: BLE001 - reported to the test, which fails on it
        results.put((body, None, repr(exc)))


def race(url, key, bodies):
    """POST each body from its own process, all at once; [(body, status, json)]."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(len(bodies)), ctx.Queue()
    processes = [ctx.Process(target=_fire, args=(url, key, body, barrier, results)) for body in bodies]
    for process in processes:
        process.start()
    answers = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    assert all(p.exitcode == 0 for p in processes), [p.exitcode for p in processes]
    return answers


def worker_cue(server, email, name):
    """A new user's key and a worker cue of theirs that fires only when asked: (key, cue)."""
    key = requests.post(server.url + "/v1/auth/register", json={"email": email}, timeout=10).json()["api_key"]
    cue = requests.post(server.url + "/v1/cues", headers={"Authorization": f"Bearer {key}"}, timeout=10, json={
        "name": name, "transport": "worker", "payload": {"task": "t"},
        "schedule": {"type": "recurring", "cron": "0 0 1 1 *"}}).json()
    return key, cue


def test_processes_firing_with_one_key_make_one_execution():
    with LiveServer(api_only=True, **RACE_ENV) as server:
        key, cue = worker_cue(server, "idem@example.com", "idem")
        auth = {"Authorization": f"Bearer {key}"}
        fire_url = f"{server.url}/v1/cues/{cue['id']}/fire"

        # All the same body: every answer is 200 with the one execution.
        body = {"idempotency_key": "same-key", "payload_override": {"n": 1}}
        answers = race(fire_url, key, [body] * PROCESSES)
        assert [status for _, status, _ in answers] == [200] * PROCESSES, answers
        assert len({answer["id"] for _, _, answer in answers}) == 1, answers

        # Two bodies with one key: one of them wins, the other's fires are 409.
        one, other = {"idempotency_key": "k2", "payload_override": {"n": 1}}, {"idempotency_key": "k2"}
        answers = race(fire_url, key, [one, other] * (PROCESSES // 2))
        winner = next(b for b, status, _ in answers if status == 200)
        for sent, status, answer in answers:
            assert status == (200 if sent == winner else 409), answers
        assert len({answer["id"] for _, status, answer in answers if status == 200}) == 1, answers
        assert all(answer["error"]["code"] == "idempotency_key_conflict" for _, status, answer in answers
                   if status == 409), answers

        listed = requests.get(f"{server.url}/v1/executions?cue_id={cue['id']}", headers=auth, timeout=10).json()
        assert listed["total"] == 2, listed
        usage = requests.get(server.url + "/v1/usage", headers=auth, timeout=10).json()
        assert usage["executions"]["used"] == 2, usage
