"""API mix: `python -m bench api`.

A server as users run it (gunicorn with the project's default settings, the rate limiter on
with the default cache backend unless --cache-url is given) with only the per-user quotas
raised, on a fresh PostgreSQL database. 8 client threads, each on its own keep-alive
connection, cycle GET /v1/cues, GET /v1/executions, POST /v1/cues, DELETE /v1/cues/{id} for
--seconds; prints one Markdown row per run: requests/s, p50/p99 per route, errors, and the
CPU time the gunicorn workers and the PostgreSQL backends spent per request (a figure that a
machine shared with other work disturbs less than requests/s).

The clients use http.client rather than requests: it costs the load generator, which shares
the machine with the server, about a third of the CPU per request.
"""

import http.client
import json
import os
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from bench import SERVER_ENV  # noqa: E402
from tests.live import LiveServer

ROUTES = ["GET /v1/cues", "GET /v1/executions", "POST /v1/cues", "DELETE /v1/cues/{id}"]
STANDING_CUES = 20
STANDING_EXECUTIONS = 50


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def seed(server, auth):
    """A user with some standing cues and executions, so the lists have rows to render."""
    for i in range(STANDING_CUES):
        body = {"name": f"standing-{i}", "schedule": {"type": "recurring", "cron": "0 0 1 1 *"},
                "callback": {"url": "http://127.0.0.1:9/hook"}}
        response = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=30)
        response.raise_for_status()
    body = {"name": "standing-worker", "transport": "worker", "payload": {"task": "t"},
            "schedule": {"type": "recurring", "cron": "0 0 1 1 *"}}
    cue_id = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=30).json()["id"]
    for _ in range(STANDING_EXECUTIONS):
        requests.post(f"{server.url}/v1/cues/{cue_id}/fire", headers=auth, timeout=30).raise_for_status()


class Client(threading.Thread):
    """One client thread: list cues, list executions, create a cue, delete it; repeat."""

    def __init__(self, url, key, index, stop_at):
        super().__init__(daemon=True)
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.index = index
        self.stop_at = stop_at
        self.latencies = {route: [] for route in ROUTES}
        self.errors = 0
        self.connection = None

    def request(self, route, method, path, body=None, expected=200):
        started = time.perf_counter()
        try:
            if self.connection is None:
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
            self.connection.request(method, path, body=body, headers=self.headers)
            response = self.connection.getresponse()
            data = response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            self.connection = None
            self.errors += 1
            return None
        self.latencies[route].append(time.perf_counter() - started)
        if status != expected:
            self.errors += 1
            return None
        return data

    def run(self):
        n = 0
        while time.monotonic() < self.stop_at:
            self.request("GET /v1/cues", "GET", "/v1/cues")
            self.request("GET /v1/executions", "GET", "/v1/executions")
            body = json.dumps({"name": f"mix-{self.index}-{n}", "schedule": {"type": "recurring", "cron": "0 9 * * *"},
                               "callback": {"url": "http://127.0.0.1:9/hook"}, "payload": {"n": n}})
            n += 1
            created = self.request("POST /v1/cues", "POST", "/v1/cues", body=body, expected=201)
            if created is not None:
                cue_id = json.loads(created)["id"]
                self.request("DELETE /v1/cues/{id}", "DELETE", f"/v1/cues/{cue_id}", expected=204)


def gunicorn_workers(server):
    """Process ids of the gunicorn workers (children of the arbiter)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(server.process.pid)],
                         capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def cpu_seconds(pids):
    """{pid: user + system CPU seconds} of the processes still alive."""
    ticks = os.sysconf("SC_CLK_TCK")
    result = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        result[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return result


def postgres_backends(server):
    """Process ids of the PostgreSQL backends serving this server's database."""
    import psycopg

    with psycopg.connect(server.pg_admin_url, autocommit=True) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", [server.pg_database]).fetchall()
    return [pid for (pid,) in rows]


def cpu_used(before, after):
    return sum(after[pid] - before.get(pid, 0.0) for pid in after)


def run_mix(database_url, seconds, threads, cache_url=None, profile_dir=None, extra_env=None):
    env = dict(SERVER_ENV, **(extra_env or {}))
    if cache_url:
        env["CACHE_URL"] = cache_url
    os.environ["DATABASE_URL"] = database_url
    with LiveServer(api_only=True, **env) as server:
        key = requests.post(server.url + "/v1/auth/register", json={"email": "api-bench@example.com"},
                            timeout=30).json()["api_key"]
        seed(server, {"Authorization": f"Bearer {key}"})
        # Warm up every worker and thread (imports, connections) before the clock starts.
        warm_stop = time.monotonic() + 2
        warm = [Client(server.url, key, 100 + i, warm_stop) for i in range(threads)]
        for c in warm:
            c.start()
        for c in warm:
            c.join()
        profilers = []
        if profile_dir:
            py_spy = shutil.which("py-spy") or str(Path(os.sys.executable).parent / "py-spy")
            Path(profile_dir).mkdir(parents=True, exist_ok=True)
            for pid in gunicorn_workers(server):
                profilers.append(subprocess.Popen(
                    [py_spy, "record", "--format", "raw", "-o", f"{profile_dir}/worker-{pid}.txt",
                     "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        workers = gunicorn_workers(server)
        web_before, db_before = cpu_seconds(workers), cpu_seconds(postgres_backends(server))
        stop_at = time.monotonic() + seconds
        started = time.monotonic()
        clients = [Client(server.url, key, i, stop_at) for i in range(threads)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        elapsed = time.monotonic() - started
        web_cpu = cpu_used(web_before, cpu_seconds(workers))
        db_cpu = cpu_used(db_before, cpu_seconds(postgres_backends(server)))
        for p in profilers:
            p.wait(timeout=60)
    latencies = {route: [x for c in clients for x in c.latencies[route]] for route in ROUTES}
    total = sum(len(v) for v in latencies.values())
    return {
        "rps": total / elapsed,
        "web_cpu_ms": web_cpu * 1000 / max(1, total),
        "db_cpu_ms": db_cpu * 1000 / max(1, total),
        "p50": {r: percentile(v, 50) * 1000 for r, v in latencies.items()},
        "p99": {r: percentile(v, 99) * 1000 for r, v in latencies.items()},
        "errors": sum(c.errors for c in clients),
    }


def header():
    routes = " | ".join(f"{r} p50 / p99" for r in ROUTES)
    return (f"| database | cache | req/s | {routes} | errors | CPU ms/request: gunicorn + PostgreSQL |\n"
            f"|---|---|---|{'---|' * len(ROUTES)}---|---|")


def row(cache_name, result, label="PostgreSQL"):
    cells = " | ".join(f"{result['p50'][r]:.1f} / {result['p99'][r]:.1f} ms" for r in ROUTES)
    cpu = f"{result['web_cpu_ms']:.2f} + {result['db_cpu_ms']:.2f}"
    return f"| {label} | {cache_name} | {result['rps']:.0f} | {cells} | {result['errors']} | {cpu} |"


def median_result(results):
    return {
        "rps": statistics.median(r["rps"] for r in results),
        "web_cpu_ms": statistics.median(r["web_cpu_ms"] for r in results),
        "db_cpu_ms": statistics.median(r["db_cpu_ms"] for r in results),
        "p50": {route: statistics.median(r["p50"][route] for r in results) for route in ROUTES},
        "p99": {route: statistics.median(r["p99"][route] for r in results) for route in ROUTES},
        "errors": sum(r["errors"] for r in results),
    }


def main(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/cueapi_bench",
                        help="PostgreSQL URL (a fresh database is created next to it)")
    parser.add_argument("--cache-url", default="", help="CACHE_URL for the server (default: the database cache)")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3, help="runs; a median row follows when > 1")
    parser.add_argument("--profile", default="", help="directory for py-spy folded stacks of each gunicorn worker")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server (e.g. WEB_CONCURRENCY=3)")
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.env)
    cache_name = args.cache_url.split("://")[0] if args.cache_url else "database (default)"
    if extra_env:
        cache_name += " " + " ".join(args.env)
    print(f"API mix: {args.threads} threads x {args.seconds:.0f} s; {os.cpu_count()} cores; "
          f"load {os.getloadavg()[0]:.2f}\n")
    print(header(), flush=True)
    results = []
    for run in range(args.runs):
        result = run_mix(args.postgres, args.seconds, args.threads, args.cache_url,
                         args.profile if run == 0 else None, extra_env)
        results.append(result)
        print(row(cache_name, result), flush=True)
    if len(results) > 1:
        print(row(cache_name + ", median", median_result(results)), flush=True)
