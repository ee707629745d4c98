"""The real `cueapi` CLI 0.2.0 (its own virtualenv, .venv-cli) against a live server: login
by device code and magic link (the test plays the person), then the everyday commands and
`quickstart`, whose webhook goes to this server's echo sink."""

import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from tests.live import BASE_DIR, LiveServer, wait_for_magic_link

pytestmark = pytest.mark.live
CLI = BASE_DIR / ".venv-cli" / "bin" / "cueapi"


def test_login_and_everyday_commands():
    assert CLI.exists(), "make test installs the CLI into .venv-cli"
    with tempfile.TemporaryDirectory() as home:
        mail_dir = Path(home) / "mail"
        with LiveServer(EMAIL_URL=f"filemail:///{mail_dir}", CUEAPI_RATE_LIMIT_ENABLED="false") as server:
            env = {**os.environ, "CUEAPI_API_BASE": server.url + "/v1", "XDG_CONFIG_HOME": home,
                   "HOME": home, "BROWSER": "true", "PYTHONUNBUFFERED": "1"}
            env.pop("CUEAPI_API_KEY", None)

            def cli(*args, timeout=60):
                result = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=timeout)
                assert result.returncode == 0, result.stdout + result.stderr
                return result.stdout

            login = subprocess.Popen([str(CLI), "login"], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
            url = None
            for line in login.stdout:
                match = re.search(r"visit: (\S+)", line)
                if match:
                    url = match.group(1)
                    break
            assert url and url.startswith(server.url + "/auth/device?code="), url
            code = url.split("code=", 1)[1]
            # The person: opens the page, types an email, clicks the emailed link.
            assert requests.get(url, timeout=10).status_code == 200
            r = requests.post(server.url + "/v1/auth/device-code/submit-email",
                              json={"device_code": code, "email": "cli@example.com"}, timeout=10)
            assert r.status_code == 200, r.text
            link = wait_for_magic_link(mail_dir)
            assert "You're in." in requests.get(link, timeout=10).text
            rest, _ = login.communicate(timeout=30)
            assert login.returncode == 0 and "Authenticated as cli@example.com" in rest, rest
            credentials = json.loads((Path(home) / "cueapi" / "credentials.json").read_text())
            assert credentials["default"]["api_key"].startswith("cue_sk_")

            assert "cli@example.com" in cli("whoami")
            created = cli("create", "--name", "cli-cue", "--cron", "0 9 * * *", "--url", "http://127.0.0.1:9/hook")
            cue_id = re.search(r"(cue_[a-z0-9]{12})", created).group(1)
            assert cue_id in cli("list")
            assert "cli-cue" in cli("get", cue_id)
            cli("pause", cue_id)
            cli("resume", cue_id)
            assert re.search(r"[0-9a-f-]{36}", cli("fire", cue_id))
            assert "60" in cli("usage")
            cli("delete", cue_id, "--yes")
            auth = {"Authorization": f"Bearer {credentials['default']['api_key']}"}
            assert requests.get(f"{server.url}/v1/cues/{cue_id}", headers=auth, timeout=10).status_code == 404
            # `executions get` prints who holds a worker claim (claimed_by_worker, CLIENTS.md §6).
            worker_cue = requests.post(f"{server.url}/v1/cues", headers=auth, timeout=10, json={
                "name": "cli-worker", "transport": "worker", "payload": {"task": "t"},
                "schedule": {"type": "recurring", "cron": "0 9 * * *"}}).json()["id"]
            execution_id = requests.post(f"{server.url}/v1/cues/{worker_cue}/fire", headers=auth, timeout=10).json()["id"]
            requests.post(f"{server.url}/v1/executions/{execution_id}/claim", json={"worker_id": "box-7"},
                          headers=auth, timeout=10).raise_for_status()
            shown = cli("executions", "get", execution_id)
            assert re.search(r"Claimed by:\s+box-7", shown) and "delivering" in shown, shown
            out = cli("quickstart", timeout=120)
            assert "deliver" in out.lower(), out
