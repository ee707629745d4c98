"""The real `cueapi` CLI 0.2.0 (its own virtualenv, .venv-cli), driven by the live tests."""

import os
import re
import subprocess

import requests

from tests.live import BASE_DIR, wait_for_magic_link

CLI = BASE_DIR / ".venv-cli" / "bin" / "cueapi"


class Cli:
    """The CLI pointed at a live server, with its config in `home`; `api_key` as the
    environment would give it (None: only what `login` stores)."""

    def __init__(self, server, home, api_key=None):
        assert CLI.exists(), "make test installs the CLI into .venv-cli"
        self.server = server
        self.env = {**os.environ, "CUEAPI_API_BASE": server.url + "/v1", "XDG_CONFIG_HOME": str(home),
                    "HOME": str(home), "BROWSER": "true", "PYTHONUNBUFFERED": "1"}
        self.env.pop("CUEAPI_API_KEY", None)
        if api_key:
            self.env["CUEAPI_API_KEY"] = api_key

    def __call__(self, *args, timeout=60):
        """Run a command that must succeed; return what it printed."""
        result = subprocess.run([str(CLI), *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def login(self, *, email, mail_dir):
        """`cueapi login`, with the test playing the person: open the page, type the email,
        click the emailed link. Returns what the CLI printed after the link was followed."""
        login = subprocess.Popen([str(CLI), "login"], env=self.env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
        try:
            url = None
            for line in login.stdout:
                match = re.search(r"visit: (\S+)", line)
                if match:
                    url = match.group(1)
                    break
            assert url and url.startswith(self.server.url + "/auth/device?code="), url
            assert requests.get(url, timeout=10).status_code == 200
            r = requests.post(self.server.url + "/v1/auth/device-code/submit-email",
                              json={"device_code": url.split("code=", 1)[1], "email": email}, timeout=10)
            assert r.status_code == 200, r.text
            assert "You're in." in requests.get(wait_for_magic_link(mail_dir), timeout=10).text
            rest, _ = login.communicate(timeout=30)
        finally:
            if login.poll() is None:
                login.kill()
                login.wait()
        assert login.returncode == 0 and f"Authenticated as {email}" in rest, rest
        return rest
