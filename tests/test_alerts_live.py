"""Alerts end to end through the real engine processes, received and verified by the README's
example receiver (its code is taken from the README and run here)."""

import http.server
import re
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.live import LiveServer, wait_for
from tests.receiver import SHUTDOWN_POLL, Receiver

pytestmark = pytest.mark.live
README = Path(__file__).resolve().parent.parent / "README.md"


def readme_receiver(secret):
    """The README's receiver, with its SECRET set, serving on a free port; returns (url, seen)."""
    section = README.read_text().split("## Getting alerted", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {"__name__": "readme_example"}
    exec(code, namespace)  # noqa: S102 - our own README's example
    namespace["SECRET"] = secret
    seen = []

    class Recording(namespace["AlertReceiver"]):
        def do_POST(self):
            length = int(self.headers["Content-Length"])
            body = self.rfile.read(length)
            seen.append((body, namespace["verify"](body, self.headers)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    threading.Thread(target=server.serve_forever, kwargs=SHUTDOWN_POLL, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/alerts", seen


def test_alerts_reach_a_verifying_receiver():
    with LiveServer(CUEAPI_RATE_LIMIT_ENABLED="false") as server, Receiver([(500, b"down")]) as handler:
        auth = {"Authorization": "Bearer " + requests.post(server.url + "/v1/auth/register",
                                                           json={"email": "al@example.com"}, timeout=10).json()["api_key"]}
        secret = requests.get(server.url + "/v1/auth/alert-webhook-secret", headers=auth, timeout=10).json()["alert_webhook_secret"]
        receiver, url, seen = readme_receiver(secret)
        try:
            requests.patch(server.url + "/v1/auth/me", json={"alert_webhook_url": url}, headers=auth,
                           timeout=10).raise_for_status()
            body = {"name": "flaky", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
                    "callback": {"url": handler.url}, "retry": {"max_attempts": 1}, "on_failure": {"email": False}}
            cue = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10).json()["id"]

            def fire_and_fail():
                execution = requests.post(f"{server.url}/v1/cues/{cue}/fire", headers=auth, timeout=10).json()["id"]
                assert wait_for(lambda: requests.get(f"{server.url}/v1/executions/{execution}", headers=auth,
                                                     timeout=10).json()["status"] == "failed", 15), server.output()

            for _ in range(3):
                fire_and_fail()
            assert wait_for(lambda: seen, 15), server.output()
            fire_and_fail()  # the 4th failure: same streak, no second alert
            time.sleep(2)
            assert len(seen) == 1
            raw, verified = seen[0]
            assert verified
            assert b'"alert_type": "consecutive_failures"' in raw

            # outcome_timeout: delivered, then silence past a 1 s deadline.
            handler.responses = [(200, b"ok")]
            body = {"name": "quiet", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
                    "callback": {"url": handler.url}, "delivery": {"outcome_deadline_seconds": 1}}
            quiet = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10).json()["id"]
            requests.post(f"{server.url}/v1/cues/{quiet}/fire", headers=auth, timeout=10)
            assert wait_for(lambda: len(seen) == 2, 20), server.output()
            assert seen[1][1] and b'"alert_type": "outcome_timeout"' in seen[1][0]
            # verification_failed: the handler's reply claims success without the required evidence.
            handler.responses = [(200, {"success": True})]
            body = {"name": "unproven", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
                    "callback": {"url": handler.url}, "verification": {"mode": "require_external_id"}}
            unproven = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10).json()["id"]
            requests.post(f"{server.url}/v1/cues/{unproven}/fire", headers=auth, timeout=10)
            assert wait_for(lambda: len(seen) == 3, 20), server.output()
            assert seen[2][1] and b'"alert_type": "verification_failed"' in seen[2][0]
            alerts = requests.get(server.url + "/v1/alerts", headers=auth, timeout=10).json()
            assert [a["alert_type"] for a in alerts["alerts"]] == [
                "verification_failed", "outcome_timeout", "consecutive_failures"]
        finally:
            receiver.shutdown()
            receiver.server_close()
