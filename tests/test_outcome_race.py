"""One execution, many outcome reports at once: 8 OS processes POST an outcome for the same
claimed execution at the same moment, and exactly one is recorded, with one attempt row and
one run counted. The outcome's write is guarded, not locked ahead (executions/outcomes.py).
Meant for PostgreSQL, where the requests truly overlap; on SQLite, which serialises writers,
it checks the same answers."""

import pytest
import requests

from tests.live import LiveServer
from tests.test_fire_idempotency_race import PROCESSES, RACE_ENV, race, worker_cue

pytestmark = pytest.mark.live


def test_processes_reporting_one_outcome_record_it_once():
    with LiveServer(api_only=True, **RACE_ENV) as server:
        key, cue = worker_cue(server, "outcome@example.com", "race")
        auth = {"Authorization": f"Bearer {key}"}
        for round_ in range(3):
            execution_id = requests.post(f"{server.url}/v1/cues/{cue['id']}/fire", headers=auth,
                                         timeout=10).json()["id"]
            claimed = requests.post(f"{server.url}/v1/executions/{execution_id}/claim", headers=auth, timeout=10,
                                    json={"worker_id": "w1"})
            assert claimed.status_code == 200, claimed.text
            bodies = [{"success": n % 2 == 0, "result": f"report {n}", "error": None if n % 2 == 0 else f"error {n}"}
                      for n in range(PROCESSES)]
            answers = race(f"{server.url}/v1/executions/{execution_id}/outcome", key, bodies)
            won = [(body, answer) for body, status, answer in answers if status == 200]
            assert len(won) == 1, answers
            assert all(status == 409 and answer["error"]["code"] == "outcome_already_recorded"
                       for _, status, answer in answers if status != 200), answers
            body, answer = won[0]
            recorded = requests.get(f"{server.url}/v1/executions/{execution_id}", headers=auth, timeout=10).json()
            assert (recorded["outcome"]["success"], recorded["outcome"]["result"]) == (body["success"], body["result"])
            assert recorded["status"] == ("success" if body["success"] else "failed"), recorded
            attempts = requests.get(f"{server.url}/v1/executions/{execution_id}/attempts", headers=auth,
                                    timeout=10).json()["attempts"]
            assert [(a["attempt"], a["worker_id"], a["result"]) for a in attempts] == [
                (1, "w1", "delivered" if body["success"] else "failed")], attempts
            run_count = requests.get(f"{server.url}/v1/cues/{cue['id']}", headers=auth, timeout=10).json()["run_count"]
            assert run_count == round_ + 1, run_count
