"""A worker's answered polls are logged at DEBUG, so INFO shows what else happens."""

import logging

from cueapi.testing import CueTestCase


class WorkerPollLogLevelTests(CueTestCase):
    def request_levels(self, *calls):
        """{(method, path, status): level name} of the request lines the calls wrote."""
        with self.assertLogs("cueapi.request", level=logging.DEBUG) as logs:
            for call in calls:
                call()
        return {(r.fields["method"], r.fields["path"], r.fields["status"]): r.levelname for r in logs.records}

    def test_answered_worker_polls_are_debug(self):
        levels = self.request_levels(
            lambda: self.get("/v1/executions/claimable"),
            lambda: self.post("/v1/worker/heartbeat", {"worker_id": "w1", "handlers": ["backup"]}),
        )
        self.assertEqual(levels, {("GET", "/v1/executions/claimable", 200): "DEBUG",
                                  ("POST", "/v1/worker/heartbeat", 200): "DEBUG"})

    def test_an_answered_lease_heartbeat_is_debug(self):
        cue = self.create_cue(name="work", transport="worker", callback=None, payload={"task": "t"})
        fired = self.post(f"/v1/cues/{cue['id']}/fire").json()
        self.assertEqual(self.post(f"/v1/executions/{fired['id']}/claim", {"worker_id": "w1"}).status_code, 200)
        path = f"/v1/executions/{fired['id']}/heartbeat"
        levels = self.request_levels(lambda: self.post(path, headers={"X-Worker-Id": "w1"}))
        self.assertEqual(levels, {("POST", path, 200): "DEBUG"})

    def test_failed_worker_polls_and_other_requests_stay_info(self):
        unknown = "00000000-0000-0000-0000-000000000000"
        levels = self.request_levels(
            lambda: self.get("/v1/executions/claimable", anonymous=True),
            lambda: self.post(f"/v1/executions/{unknown}/heartbeat", headers={"X-Worker-Id": "w1"}),
            lambda: self.get("/v1/cues"),
        )
        self.assertEqual(levels, {("GET", "/v1/executions/claimable", 401): "INFO",
                                  ("POST", f"/v1/executions/{unknown}/heartbeat", 404): "INFO",
                                  ("GET", "/v1/cues", 200): "INFO"})
