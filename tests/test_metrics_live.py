"""/metrics on a live server: the dispatcher and poller are other processes, and their
counters still reach the API's /metrics (flushed through the database)."""

import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.live import LiveServer
from tests.receiver import Receiver

pytestmark = pytest.mark.live
TOKEN = "live-metrics-token"


def scrape(server):
    response = requests.get(server.url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_engine_counters_reach_the_api_process():
    with LiveServer(CUEAPI_METRICS_TOKEN=TOKEN, CUEAPI_RATE_LIMIT_ENABLED="false") as server, Receiver() as receiver:
        assert requests.get(server.url + "/metrics", timeout=10).status_code == 401
        auth = {"Authorization": "Bearer " + requests.post(server.url + "/v1/auth/register",
                                                           json={"email": "m@example.com"}, timeout=10).json()["api_key"]}
        cue = requests.post(server.url + "/v1/cues", headers=auth, timeout=10, json={
            "name": "m", "schedule": {"type": "recurring", "cron": "0 3 * * *"},
            "callback": {"url": receiver.url}}).json()["id"]
        for _ in range(3):
            requests.post(f"{server.url}/v1/cues/{cue}/fire", headers=auth, timeout=10).raise_for_status()

        delivered = ("cueapi_webhook_deliveries_total", (("result", "delivered"),))
        deadline = time.monotonic() + 20
        samples = scrape(server)
        while samples.get(delivered) != 3 and time.monotonic() < deadline:
            time.sleep(0.3)
            samples = scrape(server)
        assert samples.get(delivered) == 3, server.output()[-3000:]
        assert samples[("cueapi_delivery_latency_seconds_count", ())] == 3
        assert samples[("cueapi_executions_last_24h", (("status", "success"),))] == 3
        assert samples[("cueapi_engine_last_cycle_age_seconds", (("process", "dispatcher"),))] < 10
