"""The real cueapi-sdk drives the cue and execution APIs of a live server (scenarios in
clients/sdk_cues.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.live import LiveServer, hosted_limits_env

pytestmark = [pytest.mark.live, pytest.mark.db_agnostic]
SCRIPT = Path(__file__).parent / "clients" / "sdk_cues.py"
SCENARIOS = [
    "test_recurring_cue_lifecycle",
    "test_one_time_and_worker_cues",
    "test_error_classes",
    "test_rate_limit_error_carries_retry_after",
    "test_executions",
]


@pytest.fixture(scope="module")
def server():
    # The scenarios meet the cue limit and the rate limit of a server that hosts others.
    with LiveServer(**hosted_limits_env()) as live:
        yield live


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_sdk(server, scenario):
    result = subprocess.run([sys.executable, "-P", str(SCRIPT), server.url, scenario],
                            capture_output=True, text=True, timeout=120, cwd="/")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"ok {scenario}" in result.stdout
