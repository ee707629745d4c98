"""An account created with `curl` (POST /v1/auth/register) logs in with the real `cueapi` CLI
0.2.0 against a live server on default settings: the two onboarding paths meet."""

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


def test_a_registered_account_logs_in_with_the_cli():
    assert CLI.exists(), "make test installs the CLI into .venv-cli"
    with tempfile.TemporaryDirectory() as home:
        mail_dir = Path(home) / "mail"
        with LiveServer(EMAIL_URL=f"filemail:///{mail_dir}", CUEAPI_ALLOW_PRIVATE_URLS="false") as server:
            r = requests.post(server.url + "/v1/auth/register", json={"email": "curl@example.com"}, timeout=10)
            assert r.status_code == 201, r.text
            registered_key = r.json()["api_key"]

            env = {**os.environ, "CUEAPI_API_BASE": server.url + "/v1", "XDG_CONFIG_HOME": home,
                   "HOME": home, "BROWSER": "true", "PYTHONUNBUFFERED": "1"}
            env.pop("CUEAPI_API_KEY", None)
            login = subprocess.Popen([str(CLI), "login"], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
            try:
                url = None
                for line in login.stdout:
                    match = re.search(r"visit: (\S+)", line)
                    if match:
                        url = match.group(1)
                        break
                assert url and url.startswith(server.url + "/auth/device?code="), url
                # The person: types the email they registered with, clicks the emailed link.
                r = requests.post(server.url + "/v1/auth/device-code/submit-email",
                                  json={"device_code": url.split("code=", 1)[1], "email": "curl@example.com"},
                                  timeout=10)
                assert r.status_code == 200, r.text
                assert "You're in." in requests.get(wait_for_magic_link(mail_dir), timeout=10).text
                rest, _ = login.communicate(timeout=30)
            finally:
                if login.poll() is None:
                    login.kill()
                    login.wait()
            assert login.returncode == 0 and "Authenticated as curl@example.com" in rest, rest

            credentials = json.loads((Path(home) / "cueapi" / "credentials.json").read_text())
            assert credentials["default"]["api_key"] == registered_key  # the same key, not rotated
            whoami = subprocess.run([str(CLI), "whoami"], env=env, capture_output=True, text=True, timeout=60)
            assert whoami.returncode == 0 and "curl@example.com" in whoami.stdout, whoami.stdout + whoami.stderr
