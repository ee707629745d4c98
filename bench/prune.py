"""Retention under load: `python -m bench prune [--rows 1000000]`.

A server as users run it (gunicorn + one run_poller + one run_dispatcher) on a fresh
PostgreSQL database that holds --rows executions finished 400 days ago (each with a delivery
attempt and a dispatched outbox row). The poller starts, and prunes them in batches while
one-time cues come due every --every seconds; it prints the prune's duration and rate, the
fire latency (receipt - due) of the cues due during the prune next to a baseline after it,
the longest transaction the poller held open and the most lock waits seen at once.
"""

import argparse
import statistics
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg
import requests

from bench import SERVER_ENV
from bench.__main__ import create_cues, lateness_ms, percentile
from tests.live import LiveServer
from tests.receiver import Receiver

SEED = """
INSERT INTO executions (id, cue_id, scheduled_for, status, attempts, created_at, updated_at, http_status)
SELECT gen_random_uuid(), %(cue)s, now() - interval '400 days' - i * interval '1 second', 'success', 1,
       now() - interval '400 days', now() - interval '400 days', 200
FROM generate_series(1, %(rows)s) AS i;
INSERT INTO delivery_attempts (execution_id, attempt, transport, result, started_at, finished_at)
SELECT id, 1, 'webhook', 'success', created_at, created_at FROM executions WHERE cue_id = %(cue)s;
INSERT INTO dispatch_outbox (execution_id, task_type, available_at, dispatch_attempts, dispatched_at, created_at)
SELECT id, 'deliver', created_at, 1, created_at, created_at FROM executions WHERE cue_id = %(cue)s;
"""


class Sampler(threading.Thread):
    """Every 50 ms: the poller's open transaction age and the number of ungranted locks."""

    def __init__(self, dsn):
        super().__init__(daemon=True)
        self.dsn, self.stop, self.longest_xact, self.most_waiting = dsn, threading.Event(), 0.0, 0

    def run(self):
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                age = conn.execute("SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0) "
                                   "FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND application_name = 'cueapi-poller' AND state <> 'idle'").fetchone()[0]
                waiting = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND database = "
                                       "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()[0]
                self.longest_xact, self.most_waiting = max(self.longest_xact, float(age)), max(self.most_waiting, waiting)
                time.sleep(0.05)


def remaining(dsn, cue):
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM executions WHERE cue_id = %s", [cue]).fetchone()[0]


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m bench prune")
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/cueapi_bench")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between latency cues")
    parser.add_argument("--minutes", type=float, default=30, help="latency cues cover this long at most")
    args = parser.parse_args(argv)

    import os
    os.environ["DATABASE_URL"] = args.postgres
    with Receiver() as receiver, LiveServer(api_only=True, **SERVER_ENV) as server:
        dsn = server.env["DATABASE_URL"]
        auth = {"Authorization": "Bearer " + requests.post(server.url + "/v1/auth/register",
                                                           json={"email": "prune@example.com"}, timeout=30).json()["api_key"]}
        body = {"name": "old", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"}, "callback": {"url": receiver.url}}
        cue = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=30).json()["id"]
        started = time.monotonic()
        with psycopg.connect(dsn) as conn:
            for statement in filter(str.strip, SEED.split(";")):
                conn.execute(statement, {"cue": cue, "rows": args.rows})
            conn.execute("ANALYZE")
        print(f"seeded {args.rows:,} executions (+ attempts, outbox rows) in {time.monotonic() - started:.0f} s", flush=True)

        count = int(args.minutes * 60 / args.every)
        first = datetime.now(timezone.utc) + timedelta(seconds=max(20, count * 0.2))
        instants = [first + timedelta(seconds=i * args.every) for i in range(count)]
        create_cues(server, auth, receiver.url, instants, "latency")
        sampler = Sampler(dsn)
        sampler.start()
        while datetime.now(timezone.utc) < first - timedelta(seconds=3):
            time.sleep(0.1)
        server.spawn("run_poller")
        server.spawn("run_dispatcher")
        prune_started = time.monotonic()
        while remaining(dsn, cue) and time.monotonic() - prune_started < args.minutes * 60:
            time.sleep(1)
        prune_seconds = time.monotonic() - prune_started
        prune_ended = datetime.now(timezone.utc)
        left = remaining(dsn, cue)
        # A baseline: cues due after the prune, same server.
        deadline = min(instants[-1], prune_ended + timedelta(seconds=60)) + timedelta(seconds=5)
        while datetime.now(timezone.utc) < deadline:
            time.sleep(0.5)
        sampler.stop.set()
        sampler.join()

    during = [ms for r, ms in zip(receiver.requests, lateness_ms(receiver.requests))
              if datetime.fromisoformat(r["headers"]["X-CueAPI-Scheduled-For"]) <= prune_ended]
    after = [ms for r, ms in zip(receiver.requests, lateness_ms(receiver.requests))
             if datetime.fromisoformat(r["headers"]["X-CueAPI-Scheduled-For"]) > prune_ended]

    def row(values):
        if not values:
            return "n/a"
        return (f"{len(values)} cues: p50 {statistics.median(values):.0f} / p99 {percentile(values, 99):.0f} / "
                f"max {max(values):.0f} ms")

    pruned = args.rows - left
    print(f"pruned {pruned:,} of {args.rows:,} in {prune_seconds:.0f} s ({pruned / prune_seconds:,.0f} rows/s)")
    print(f"fire latency during the prune: {row(during)}")
    print(f"fire latency after the prune:  {row(after)}")
    print(f"longest poller transaction (sampled every 50 ms): {sampler.longest_xact * 1000:.0f} ms; "
          f"most lock waits at once in this database: "
          f"{sampler.most_waiting}")
