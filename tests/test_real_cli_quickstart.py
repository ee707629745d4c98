"""A newcomer's first hour with the real `cueapi` CLI 0.2.0 against a live server on default
settings (private URLs off, default limits): register with curl, then `quickstart`, whose
webhook goes to this server's own echo sink, and `usage`/`whoami` with no quota set."""

import tempfile

import pytest
import requests

from tests.cli import Cli
from tests.live import LiveServer

pytestmark = [pytest.mark.live, pytest.mark.db_agnostic]


def test_quickstart_with_private_urls_off():
    with tempfile.TemporaryDirectory() as home, LiveServer(CUEAPI_ALLOW_PRIVATE_URLS="false") as server:
        r = requests.post(server.url + "/v1/auth/register", json={"email": "new@example.com"}, timeout=10)
        assert r.status_code == 201, r.text
        cli = Cli(server, home, api_key=r.json()["api_key"])
        out = cli("quickstart", timeout=120)
        assert "Callback delivered!" in out, out + server.output()
        usage = cli("usage")
        assert "Rate limit:" in usage and "6000 req/min" in usage, usage
        assert "new@example.com" in cli("whoami")
