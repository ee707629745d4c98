"""One user's bad rows never stall everyone else's jobs, against a live server: cues whose
schedule can't be computed any more, and per-second crons written before the minimum interval
existed, next to another user's one-time cue that must still fire on time."""

import json
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from tests.live import LiveServer, wait_for
from tests.receiver import Receiver
from tests.test_engine_processes import create_once, register

pytestmark = pytest.mark.live

# Rows written straight into the database, as an older version (or a tzdata or croniter
# upgrade) may have left them: the API refuses them today.
WRITE_CUES = """
from datetime import timedelta
from django.utils import timezone
from accounts.services import user_create
from cues.models import Cue
user, _ = user_create(email="{email}")
due = timezone.now() - timedelta(seconds=5)
Cue.objects.bulk_create(
    Cue(user=user, name=f"bad-{{i}}", schedule_type="recurring", schedule_cron="{cron}",
        schedule_timezone="{tz}", callback_url="{url}", next_run=due)
    for i in range({count})
)
"""


def write_cues(server, *, email, count, cron, tz, url):
    server.manage("shell", "-c", WRITE_CUES.format(email=email, count=count, cron=cron, tz=tz, url=url))


def assert_on_time(receiver, at, server):
    assert wait_for(lambda: receiver.requests, 15), server.output()[-3000:]
    lateness = receiver.requests[0]["received_at"] - at.timestamp()
    assert 0 <= lateness < 1.5, lateness


def test_poisoned_cues_are_parked_and_a_healthy_cue_fires_on_time():
    with Receiver() as healthy, Receiver() as other, LiveServer(LOG_LEVEL="INFO") as server:
        write_cues(server, email="poison@example.com", count=150, cron="0 * * * *", tz="Mars/Olympus_Mons",
                   url=other.url)
        auth = register(server, "healthy@example.com")
        at = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=3)
        create_once(server, auth, "healthy", healthy.url, at)
        assert_on_time(healthy, at, server)
        # Every poisoned cue is paused with a reason the API shows, and logged once.
        output = server.output()
        assert output.count('"event": "cue_parked"') == 150, output[-3000:]
        time.sleep(2)  # more cycles: nothing is logged again
        assert server.output().count('"event": "cue_parked"') == 150
        assert output.count("Traceback") == 0
        assert other.requests == []


def test_it_isolates_poisoned_cues_over_the_api():
    with Receiver() as receiver, LiveServer() as server:
        write_cues(server, email="poison@example.com", count=1, cron="0 * * * *", tz="Mars/Olympus_Mons",
                   url=receiver.url)
        key = server.manage("shell", "-c", "from accounts.models import User\n"
                            "from accounts.audit import Actor\nfrom accounts.services import user_regenerate_api_key\n"
                            "print(user_regenerate_api_key(user=User.objects.get(email='poison@example.com'), "
                            "actor=Actor('admin', 'shell')))")
        auth = {"Authorization": f"Bearer {key.split()[-1]}"}  # the shell may print a banner first
        cue = wait_for(lambda: next((c for c in requests.get(server.url + "/v1/cues", headers=auth, timeout=10)
                                     .json()["cues"] if c["status"] == "paused"), None), 10)
        assert cue, server.output()[-3000:]
        assert "Mars/Olympus_Mons" in cue["pause_note"] and "PATCH" in cue["pause_note"], cue
        assert cue["next_run"] is None
        fixed = requests.patch(f"{server.url}/v1/cues/{cue['id']}", headers=auth, timeout=10,
                               json={"schedule": {"type": "recurring", "cron": "0 * * * *", "timezone": "UTC"},
                                     "status": "active"}).json()
        assert (fixed["status"], fixed["pause_note"]) == ("active", None)
        assert fixed["next_run"] is not None


def test_per_second_crons_delay_nobody_and_the_poller_stops_promptly():
    with Receiver() as flood, Receiver() as healthy, LiveServer(LOG_LEVEL="WARNING") as server:
        write_cues(server, email="flood@example.com", count=10, cron="* * * * * *", tz="UTC", url=flood.url)
        auth = register(server, "victim@example.com")
        due = {}
        for offset in (3, 6):
            due[f"victim-{offset}"] = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=offset)
            create_once(server, auth, f"victim-{offset}", healthy.url, due[f"victim-{offset}"])
        assert wait_for(lambda: len(healthy.requests) >= 2, 15), server.output()[-3000:]
        for request in healthy.requests:
            lateness = request["received_at"] - due[json.loads(request["body"])["name"]].timestamp()
            assert 0 <= lateness < 1.5, lateness
        assert wait_for(lambda: flood.requests, 5)  # the per-second cues do fire
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 15
