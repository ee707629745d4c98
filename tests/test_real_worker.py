"""The real cueapi-worker 0.3.0 daemon (a subprocess with a YAML config, CLIENTS.md §4) runs
worker cues fired through the API of a live server; it needs no inbound port."""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests
import yaml

from tests.live import LiveServer, wait_for, wait_for_magic_link

pytestmark = pytest.mark.live
WORKER_BIN = Path(sys.executable).parent / "cueapi-worker"

CONFIG = """\
api_key: {key}
api_base: {base}
worker_id: test-worker
poll_interval: 1
heartbeat_interval: 5
handlers:
  greet:
    cmd: >-
      echo "hello {{{{ payload.name }}}}" &&
      printf '{{"external_id": "job-42", "result_url": "https://example.com/r/42", "summary": "greeted"}}'
      > "$CUEAPI_OUTCOME_FILE"
  fail:
    cmd: echo broken >&2; exit 3
"""


def test_the_real_worker_runs_handlers_and_reports_outcomes_with_evidence():
    with LiveServer() as server, tempfile.TemporaryDirectory() as home:
        key = requests.post(server.url + "/v1/auth/register", json={"email": "w@example.com"}, timeout=10).json()["api_key"]
        auth = {"Authorization": f"Bearer {key}"}

        def create(name, payload, **extra):
            body = {"name": name, "transport": "worker", "payload": payload,
                    "schedule": {"type": "recurring", "cron": "0 0 1 1 *"}, **extra}
            response = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10)
            assert response.status_code == 201, response.text
            return response.json()["id"]

        # The greet cue is created with the real SDK (its module name clashes with ours: a child
        # process outside the project directory); SDK 0.1.3 can't set verification, so PATCH.
        sdk = ("import sys; from cueapi import CueAPI; c = CueAPI(sys.argv[1], base_url=sys.argv[2]); "
               "print(c.cues.create('greet', cron='0 0 1 1 *', transport='worker', "
               "payload={'task': 'greet', 'name': 'Ada'}).id)")
        greet = subprocess.run([sys.executable, "-P", "-c", sdk, key, server.url], cwd=home, check=True,
                               capture_output=True, text=True).stdout.strip()
        requests.patch(f"{server.url}/v1/cues/{greet}", json={"verification": {"mode": "require_external_id"}},
                       headers=auth, timeout=10).raise_for_status()
        fail = create("fail", {"task": "fail"})
        fired = {cue: requests.post(f"{server.url}/v1/cues/{cue}/fire", headers=auth, timeout=10).json()["id"]
                 for cue in (greet, fail)}

        config = Path(home) / "worker.yaml"
        config.write_text(CONFIG.format(key=key, base=server.url))
        worker = subprocess.Popen([str(WORKER_BIN), "start", "--config", str(config)], cwd=home,
                                  env={**os.environ, "HOME": home}, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            def outcomes():
                got = {cue: requests.get(f"{server.url}/v1/executions/{eid}", headers=auth, timeout=10).json()
                       for cue, eid in fired.items()}
                return got if all(e["outcome"] for e in got.values()) else None

            got = wait_for(outcomes, 60)
            assert got, server.output()
            workers = requests.get(server.url + "/v1/workers", headers=auth, timeout=10).json()["workers"]
        finally:
            worker.terminate()
            output = worker.communicate(timeout=30)[0]

        ok, bad = got[greet], got[fail]
        assert (ok["status"], ok["outcome"]["success"], ok["attempts"]) == ("success", True, 1), output
        assert "hello Ada" in ok["outcome"]["result"]
        assert (bad["status"], bad["outcome"]["success"]) == ("failed", False), output
        assert "broken" in bad["outcome"]["error"]
        assert bad["error_message"] == bad["outcome"]["error"]
        # The evidence from CUEAPI_OUTCOME_FILE satisfied the cue's verification mode.
        verified = requests.get(server.url + "/v1/executions?outcome_state=verified_success", headers=auth,
                                timeout=10).json()
        assert [e["id"] for e in verified["executions"]] == [fired[greet]]
        assert [(w["worker_id"], w["heartbeat_status"], w["handlers"]) for w in workers] == [
            ("test-worker", "active", ["greet", "fail"])]

        # An operator sees the evidence on the execution's admin page.
        server.manage("createsuperuser", "--noinput", "--email", "ops@example.com",
                      DJANGO_SUPERUSER_PASSWORD="correct horse battery")
        admin = requests.Session()
        login = admin.get(server.url + "/admin/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
        admin.post(server.url + "/admin/login/", timeout=10, headers={"Referer": server.url + "/admin/login/"},
                   data={"csrfmiddlewaretoken": token, "username": "ops@example.com",
                         "password": "correct horse battery", "next": "/admin/"})
        page = admin.get(f"{server.url}/admin/executions/execution/{fired[greet]}/change/", timeout=10)
        assert page.status_code == 200
        assert "job-42" in page.text and "https://example.com/r/42" in page.text and "verified_success" in page.text


@pytest.mark.db_agnostic
def test_worker_login_by_email_writes_the_key():
    """`cueapi-worker login --email`: device code (201), email, magic link, poll every 5 s."""
    with tempfile.TemporaryDirectory() as home:
        mail_dir = Path(home) / "mail"
        with LiveServer(api_only=True, EMAIL_URL=f"filemail:///{mail_dir}") as server:
            def login(email, config):
                config.write_text(f"api_base: {server.url}\nworker_id: login-test\n")
                process = subprocess.Popen([str(WORKER_BIN), "login", "--email", email, "--config", str(config)],
                                           cwd=home, env={**os.environ, "HOME": home},
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                try:
                    # The person clicks the emailed link.
                    assert "You're in." in requests.get(wait_for_magic_link(mail_dir), timeout=10).text
                    return process.communicate(timeout=30)[0], process.returncode
                finally:
                    if process.poll() is None:
                        process.kill()

            config = Path(home) / "worker.yaml"
            output, code = login("new-worker@example.com", config)
            assert code == 0 and "Key saved to config" in output, output
            saved = yaml.safe_load(config.read_text())
            assert saved["api_base"] == server.url and saved["worker_id"] == "login-test"
            me = requests.get(server.url + "/v1/auth/me", headers={"Authorization": f"Bearer {saved['api_key']}"},
                              timeout=10)
            assert me.status_code == 200 and me.json()["email"] == "new-worker@example.com"

            for message in mail_dir.iterdir():
                message.unlink()
            # Logging in again (an existing account whose key is revealable, SERVER.md §1.6)
            # hands the worker the same key, not a new one.
            other = Path(home) / "other.yaml"
            output, code = login("new-worker@example.com", other)
            assert code == 0 and "Key saved to config" in output, output
            assert yaml.safe_load(other.read_text())["api_key"] == saved["api_key"]


def test_the_real_worker_runs_with_a_worker_scoped_key():
    """Issue #20: a `worker` key is all cueapi-worker needs (claimable, claim, outcome, worker
    heartbeat), and it can do nothing else."""
    with LiveServer() as server, tempfile.TemporaryDirectory() as home:
        key = requests.post(server.url + "/v1/auth/register", json={"email": "scoped@example.com"},
                            timeout=10).json()["api_key"]
        auth = {"Authorization": f"Bearer {key}"}
        made = requests.post(server.url + "/v1/auth/keys", json={"name": "worker box", "scope": "worker"},
                             headers=auth, timeout=10)
        assert made.status_code == 201, made.text
        worker_key, worker_auth = made.json()["key"], {"Authorization": f"Bearer {made.json()['key']}"}
        body = {"name": "greet", "transport": "worker", "payload": {"task": "greet", "name": "Lin"},
                "schedule": {"type": "recurring", "cron": "0 0 1 1 *"}}
        cue = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=10).json()["id"]
        execution = requests.post(f"{server.url}/v1/cues/{cue}/fire", headers=auth, timeout=10).json()["id"]
        refused = requests.post(server.url + "/v1/cues", json={**body, "name": "x"}, headers=worker_auth, timeout=10)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "insufficient_scope"

        config = Path(home) / "worker.yaml"
        config.write_text(CONFIG.format(key=worker_key, base=server.url))
        worker = subprocess.Popen([str(WORKER_BIN), "start", "--config", str(config)], cwd=home,
                                  env={**os.environ, "HOME": home}, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        try:
            def outcome():
                got = requests.get(f"{server.url}/v1/executions/{execution}", headers=worker_auth, timeout=10).json()
                return got if got["outcome"] else None

            got = wait_for(outcome, 60)
            workers = requests.get(server.url + "/v1/workers", headers=auth, timeout=10).json()["workers"]
        finally:
            worker.terminate()
            output = worker.communicate(timeout=30)[0]
        assert got, output + server.output()[-3000:]
        assert (got["status"], got["outcome"]["success"]) == ("success", True), output
        assert "hello Lin" in got["outcome"]["result"]
        assert [w["worker_id"] for w in workers] == ["test-worker"]
        # As whole numbers: the server's port (e.g. 47403) may hold the digits.
        assert not re.search(r"\b40[13]\b", output), output
        keys = requests.get(server.url + "/v1/auth/keys", headers=auth, timeout=10).json()["keys"]
        assert [k["last_used_at"] is not None for k in keys] == [True, True]

        # Revoked, the worker's key stops at once.
        requests.delete(f"{server.url}/v1/auth/keys/{made.json()['id']}", headers=auth, timeout=10).raise_for_status()
        assert requests.get(server.url + "/v1/executions/claimable", headers=worker_auth, timeout=10).status_code == 401
