"""`make run`'s server over real HTTP: register, use the key, limits, Ctrl-C."""

import socket
import time

import pytest
import requests

from tests.live import LiveServer, hosted_limits_env

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def server():
    with LiveServer(**hosted_limits_env()) as live:
        yield live


def test_register_then_use_the_key(server):
    r = requests.post(server.url + "/v1/auth/register", json={"email": "live@example.com"}, timeout=10)
    assert r.status_code == 201, r.text
    key = r.json()["api_key"]
    me = requests.get(server.url + "/v1/auth/me", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert me.status_code == 200
    assert me.json()["email"] == "live@example.com"
    assert me.headers["X-RateLimit-Limit"] == "60"
    assert me.headers["X-Request-Id"]


def test_engine_processes_are_running(server):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        body = requests.get(server.url + "/health", timeout=5).json()
        if body["services"]["poller"] == "ok":
            break
        time.sleep(0.5)
    assert body["services"]["poller"] == "ok", body


def send_chunked(server, path, body, chunk=65536):
    """A raw HTTP/1.1 request with a chunked body; returns the status code."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        sock.sendall(head.encode())
        try:
            for i in range(0, len(body), chunk):
                part = body[i:i + chunk]
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer 413 and close before reading everything
        response = sock.recv(65536).decode(errors="replace")
    return int(response.split(" ", 2)[1])


def test_chunked_body_over_the_limit_is_413(server):
    body = b'{"email": "' + b"a" * 1_100_000 + b'"}'
    assert send_chunked(server, "/v1/auth/register", body) == 413


def test_small_chunked_body_is_read(server):
    assert send_chunked(server, "/v1/auth/register", b'{"email": "chunked@example.com"}') == 201


def test_ctrl_c_stops_everything():
    with LiveServer() as live:
        assert live.stop() == 0
        with pytest.raises(requests.ConnectionError):
            requests.get(live.url + "/health", timeout=2)
