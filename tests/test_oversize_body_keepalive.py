"""A 413 leaves the client's keep-alive connection usable: a real `requests.Session` against
gunicorn sends oversize bodies (by Content-Length and chunked) and then normal requests."""

import pytest
import requests

from tests.live import LiveServer

pytestmark = pytest.mark.live

LIMIT = 1_048_576


def test_requests_after_a_413_on_the_same_session_succeed():
    with LiveServer(api_only=True, CUEAPI_RATE_LIMIT_ENABLED="false") as server:
        key = requests.post(server.url + "/v1/auth/register", json={"email": "big@example.com"},
                            timeout=10).json()["api_key"]
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        oversize = b'{"name": "' + b"a" * LIMIT + b'"}'

        def chunks():  # a generator body: requests sends it chunked, without Content-Length
            for start in range(0, len(oversize), 65536):
                yield oversize[start:start + 65536]

        with session:
            for round_number in range(5):
                for body in (oversize, chunks()):
                    refused = session.post(server.url + "/v1/cues", data=body, timeout=10)
                    assert refused.status_code == 413, (round_number, refused.text)
                    assert refused.json()["error"]["code"] == "request_too_large"
                    me = session.get(server.url + "/v1/auth/me", timeout=10)
                    assert me.status_code == 200, (round_number, me.text)
            # Small bodies keep the connection alive as before.
            assert session.get(server.url + "/v1/cues", timeout=10).headers["Connection"] == "keep-alive"
