"""Alert channels end to end through the real server and engine processes: a Slack channel
created over HTTP, tested, then told after the 2nd failure of a cue and when it recovers, by
the real run_dispatcher (the Slack webhook is a receiver on 127.0.0.1)."""

import json

import pytest
import requests

from tests.live import LiveServer, wait_for
from tests.receiver import Receiver

pytestmark = pytest.mark.live


def test_slack_is_told_after_the_second_failure_and_on_recovery():
    with LiveServer(CUEAPI_RATE_LIMIT_ENABLED="false") as server, Receiver([(500, b"down")]) as job, \
            Receiver() as slack:
        auth = {"Authorization": "Bearer " + requests.post(server.url + "/v1/auth/register",
                                                           json={"email": "ops@example.com"}, timeout=10).json()["api_key"]}
        r = requests.post(server.url + "/v1/alert-channels", headers=auth, timeout=10,
                          json={"name": "ops", "kind": "slack", "url": slack.url})
        assert r.status_code == 201, r.text
        channel = r.json()["id"]
        test = requests.post(f"{server.url}/v1/alert-channels/{channel}/test", headers=auth, timeout=20).json()
        assert test == {"channel_id": channel, "kind": "slack", "delivered": True, "error": None}
        body = {"name": "flaky", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
                "callback": {"url": job.url}, "retry": {"max_attempts": 1}, "on_failure": {"email": False},
                "alerts": {"failure_threshold": 2, "repeat_every_minutes": 60, "channels": [channel]}}
        cue = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10).json()
        assert cue["alerts"]["failure_threshold"] == 2

        def run(status):
            execution = requests.post(f"{server.url}/v1/cues/{cue['id']}/fire", headers=auth, timeout=10).json()["id"]
            assert wait_for(lambda: requests.get(f"{server.url}/v1/executions/{execution}", headers=auth,
                                                 timeout=10).json()["status"] == status, 15), server.output()

        def texts():
            return [json.loads(r["body"])["text"] for r in slack.requests[1:]]  # after the test message

        run("failed")
        run("failed")
        assert wait_for(lambda: len(texts()) == 1, 15), server.output()
        assert texts()[0].startswith("CueAPI: cue 'flaky' failing: Cue 'flaky'")
        job.responses = [(200, b"ok")]
        run("success")
        assert wait_for(lambda: len(texts()) == 2, 15), server.output()
        assert texts()[1].startswith("CueAPI: cue 'flaky' recovered: ")
        alerts = requests.get(server.url + "/v1/alerts", headers=auth, timeout=10).json()["alerts"]
        assert [(a["alert_type"], a["muted"]) for a in alerts] == [("recovered", False), ("consecutive_failures", False)]
