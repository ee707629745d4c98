"""A newcomer's first hour with the real `cueapi` CLI 0.2.0 against a live server on default
settings (private URLs off, default limits): register with curl, then `quickstart`, whose
webhook goes to this server's own echo sink, and `usage`/`whoami` with no quota set."""

import os
import subprocess
import tempfile

import pytest
import requests

from tests.live import BASE_DIR, LiveServer

pytestmark = pytest.mark.live
CLI = BASE_DIR / ".venv-cli" / "bin" / "cueapi"


def test_quickstart_with_private_urls_off():
    assert CLI.exists(), "make test installs the CLI into .venv-cli"
    with tempfile.TemporaryDirectory() as home, LiveServer(CUEAPI_ALLOW_PRIVATE_URLS="false") as server:
        r = requests.post(server.url + "/v1/auth/register", json={"email": "new@example.com"}, timeout=10)
        assert r.status_code == 201, r.text
        env = {**os.environ, "CUEAPI_API_BASE": server.url + "/v1", "CUEAPI_API_KEY": r.json()["api_key"],
               "XDG_CONFIG_HOME": home, "HOME": home, "PYTHONUNBUFFERED": "1"}

        def cli(*args, timeout=60):
            result = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=timeout)
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout

        out = cli("quickstart", timeout=120)
        assert "Callback delivered!" in out, out + server.output()
        usage = cli("usage")
        assert "Rate limit:" in usage and "6000 req/min" in usage, usage
        assert "new@example.com" in cli("whoami")
