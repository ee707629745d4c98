"""An account created with `curl` (POST /v1/auth/register) logs in with the real `cueapi` CLI
0.2.0 against a live server on default settings: the two onboarding paths meet."""

import json
import tempfile
from pathlib import Path

import pytest
import requests

from tests.cli import Cli
from tests.live import LiveServer

pytestmark = [pytest.mark.live, pytest.mark.db_agnostic]


def test_a_registered_account_logs_in_with_the_cli():
    with tempfile.TemporaryDirectory() as home:
        mail_dir = Path(home) / "mail"
        with LiveServer(EMAIL_URL=f"filemail:///{mail_dir}", CUEAPI_ALLOW_PRIVATE_URLS="false") as server:
            r = requests.post(server.url + "/v1/auth/register", json={"email": "curl@example.com"}, timeout=10)
            assert r.status_code == 201, r.text
            registered_key = r.json()["api_key"]

            cli = Cli(server, home)
            cli.login(email="curl@example.com", mail_dir=mail_dir)
            credentials = json.loads((Path(home) / "cueapi" / "credentials.json").read_text())
            assert credentials["default"]["api_key"] == registered_key  # the same key, not rotated
            assert "curl@example.com" in cli("whoami")
