"""The real `cueapi` CLI 0.2.0 (its own virtualenv, .venv-cli) against a live server: login
by device code and magic link (the test plays the person), then the everyday commands and
`quickstart`, whose webhook goes to this server's echo sink."""

import json
import re
import tempfile
from pathlib import Path

import pytest
import requests

from tests.cli import Cli
from tests.live import LiveServer

pytestmark = [pytest.mark.live, pytest.mark.db_agnostic]


def test_login_and_everyday_commands():
    with tempfile.TemporaryDirectory() as home:
        mail_dir = Path(home) / "mail"
        with LiveServer(EMAIL_URL=f"filemail:///{mail_dir}", CUEAPI_RATE_LIMIT_ENABLED="false") as server:
            cli = Cli(server, home)
            cli.login(email="cli@example.com", mail_dir=mail_dir)
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
