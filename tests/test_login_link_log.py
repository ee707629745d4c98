"""A live server with the default email backend (the console, i.e. its log) prints the login
email without a working token."""

import re

import pytest
import requests

from tests.live import LiveServer, wait_for

pytestmark = [pytest.mark.live, pytest.mark.db_agnostic]


def test_the_server_log_holds_no_working_login_link():
    with LiveServer(api_only=True, EMAIL_URL="consolemail://") as server:
        code = "LOGS-1234"
        requests.post(server.url + "/v1/auth/device-code", json={"device_code": code}, timeout=10)
        r = requests.post(server.url + "/v1/auth/device-code/submit-email",
                          json={"device_code": code, "email": "log@example.com"}, timeout=10)
        assert r.json() == {"status": "email_sent"}, r.text
        link = wait_for(lambda: re.search(r"http://\S+/v1/auth/verify\?\S+", server.output()), 10)
        assert link, server.output()
        token = server.manage("shell", "-c", "from accounts.models import DeviceCode; "
                              f"print(DeviceCode.objects.get(device_code='{code}').verification_token)").split()[-1]
        assert re.fullmatch(r"[0-9a-f]{64}", token) and token not in server.output()
        assert requests.get(link.group(0), timeout=10).status_code == 400  # the logged link logs no one in
        assert "You're in." in requests.get(f"{server.url}/v1/auth/verify?token={token}&device_code={code}",
                                            timeout=10).text
