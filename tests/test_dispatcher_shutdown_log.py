"""A dispatcher stopped by SIGTERM while a delivery is in flight says what it waits for, then
finishes it: an operator watching a slow stop sees why, rather than killing it."""

import json
import signal
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.live import LiveServer, wait_for
from tests.receiver import Receiver
from tests.test_engine_processes import create_once, executions_of, register

pytestmark = pytest.mark.live


def log_lines(server, event):
    lines = []
    for text in server.output().splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if line.get("event") == event:
            lines.append(line)
    return lines


def test_sigterm_logs_the_deliveries_it_waits_for():
    env = dict(CUEAPI_RATE_LIMIT_ENABLED="false", CUEAPI_WEBHOOK_TIMEOUT_SECONDS="10")
    with Receiver([(200, b"ok", 2)]) as receiver, LiveServer(api_only=True, **env) as server:
        auth = register(server, "drain@example.com")
        cue = create_once(server, auth, "slow", receiver.url, datetime.now(timezone.utc) + timedelta(days=1))
        fired = requests.post(f"{server.url}/v1/cues/{cue['id']}/fire", headers=auth, timeout=10).json()
        dispatcher = server.spawn("run_dispatcher")
        assert wait_for(lambda: receiver.requests, 10), server.output()
        dispatcher.send_signal(signal.SIGTERM)
        assert dispatcher.wait(timeout=20) == 0
        waiting = log_lines(server, "waiting_for_deliveries")
        assert len(waiting) == 1, server.output()
        assert {k: waiting[0][k] for k in ("level", "process", "webhooks", "other_tasks", "execution_ids",
                                           "at_most_seconds")} == {
            "level": "info", "process": "dispatcher", "webhooks": 1, "other_tasks": 0,
            "execution_ids": fired["id"], "at_most_seconds": 10.0}
        stopped = log_lines(server, "engine_stopped")
        assert stopped and stopped[0]["time"] >= waiting[0]["time"]
        assert executions_of(server, auth, cue["id"])[0]["status"] == "success"  # it finished first
