"""Black-box benchmark over HTTP: `make bench` (or `python -m bench --help`).

For each database (SQLite, PostgreSQL) and each dispatcher count (1, 2) it starts a fresh
server (gunicorn + one run_poller + N run_dispatcher processes, as in production) and a local
receiver, then measures:

* fire latency: one-time cues due at staggered instants; receipt time - scheduled time
  (p50/p95/p99/max);
* burst: many cues due at one instant; deliveries per second from that instant to the last
  receipt, plus duplicates and missing;
* memory: resident set size of each engine process after the burst.

`python -m bench memory` measures the dispatcher's memory with 1,000 deliveries in flight to
a receiver that answers after a minute.

`python -m bench claims` measures worker claims instead: 4 claimer processes (half
claim-next, half list + claim-by-id, each claim followed by its outcome) over 1,000 claimable
executions on PostgreSQL, server as users run it (rate limiter on); claims per second and the
double-claim count. `python -m bench api` measures the API mix (bench/api.py).

`python -m bench idle` measures the poller's idle cost (bench/idle.py): one cycle on an empty
database, with 100,000 idle cues, and with 10,000 executions awaiting an outcome + 10,000 leased.

Nothing here is a pass/fail test: it prints Markdown table rows for the README.
"""

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import SERVER_ENV  # noqa: E402
from tests.live import LiveServer  # noqa: E402
from tests.receiver import Receiver  # noqa: E402

CREATE_THREADS = 8


def percentile(values, p):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def create_cues(server, auth, receiver_url, instants, prefix):
    def create(item):
        index, at = item
        body = {"name": f"{prefix}-{index}", "schedule": {"type": "once", "at": at.isoformat()},
                "callback": {"url": receiver_url}}
        response = requests.post(server.url + "/v1/cues", json=body, headers=auth, timeout=30)
        if response.status_code != 201:
            raise RuntimeError(f"create failed: {response.status_code} {response.text}")

    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        list(pool.map(create, enumerate(instants)))


def wait_for_count(receiver, count, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(receiver.requests) < count:
        time.sleep(0.05)
    time.sleep(1.0)  # let duplicates, if any, arrive


def rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def lateness_ms(requests_):
    return [(r["received_at"] - datetime.fromisoformat(r["headers"]["X-CueAPI-Scheduled-For"]).timestamp()) * 1000
            for r in requests_]


FIRED_BY = """
from django.db.models import Max
from executions.models import Execution
print(Execution.objects.filter(cue__name__startswith="burst").aggregate(t=Max("created_at"))["t"].timestamp() - {due})
"""


def cpu_seconds(pid):
    """User + system CPU time a process has used so far (from /proc): a cost that, unlike
    wall time, a busy machine does not inflate much."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def cpu_by_program():
    """CPU seconds used so far by every process of the machine, grouped: PostgreSQL, gunicorn,
    the engine processes, this process (the receiver and load generator), anything else."""
    groups = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        group = ("postgres" if command.startswith("postgres") else "gunicorn" if "gunicorn" in command
                 else "run_poller" if "run_poller" in command else "run_dispatcher" if "run_dispatcher" in command
                 else "bench (receiver)" if int(pid) == os.getpid() else "other")
        groups[group] = groups.get(group, 0.0) + cpu_seconds(pid)
    return groups


def run_config(database_url, dispatchers, latency_cues, burst_cues, concurrency=None, pollers=1):
    env = dict(SERVER_ENV, **({"CUEAPI_DISPATCH_CONCURRENCY": str(concurrency)} if concurrency else {}))
    previous = os.environ.get("DATABASE_URL")
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    try:
        with Receiver() as receiver, LiveServer(api_only=True, **env) as server:
            engine = ([server.spawn("run_poller") for _ in range(pollers)]
                      + [server.spawn("run_dispatcher") for _ in range(dispatchers)])
            key = requests.post(server.url + "/v1/auth/register", json={"email": "bench@example.com"},
                                timeout=30).json()["api_key"]
            auth = {"Authorization": f"Bearer {key}"}

            # Fire latency: cues due every 50 ms, starting once they all exist.
            latency_row = None
            start = datetime.now(timezone.utc) + timedelta(seconds=10 + latency_cues * 0.04)
            instants = [start + timedelta(milliseconds=50 * i) for i in range(latency_cues)]
            if latency_cues:
                create_cues(server, auth, receiver.url, instants, "latency")
                if datetime.now(timezone.utc) >= start:
                    raise RuntimeError("creating the cues took longer than planned")
                wait_for_count(receiver, latency_cues,
                               (instants[-1] - datetime.now(timezone.utc)).total_seconds() + 30)
                lateness = lateness_ms(receiver.requests)
                latency_ids = {r["headers"]["X-CueAPI-Execution-Id"] for r in receiver.requests}
                latency_row = {
                    "p50": percentile(lateness, 50), "p95": percentile(lateness, 95),
                    "p99": percentile(lateness, 99), "max": max(lateness),
                    "missing": latency_cues - len(latency_ids),
                    "duplicates": len(receiver.requests) - len(latency_ids),
                }

            # Burst: every cue due at the same instant.
            with receiver.lock:
                receiver.requests.clear()
            due = datetime.now(timezone.utc) + timedelta(seconds=10 + burst_cues * 0.02)
            create_cues(server, auth, receiver.url, [due] * burst_cues, "burst")
            if datetime.now(timezone.utc) >= due:
                raise RuntimeError("creating the burst took longer than planned")
            cpu_before = [cpu_seconds(p.pid) for p in engine]
            machine_before = cpu_by_program()
            wait_for_count(receiver, burst_cues, (due - datetime.now(timezone.utc)).total_seconds() + 120)
            ids = [r["headers"]["X-CueAPI-Execution-Id"] for r in receiver.requests]
            last = max(r["received_at"] for r in receiver.requests)
            machine_after = cpu_by_program()
            # When the poller had created the last execution: tells a poller-bound burst from a
            # dispatcher-bound one.
            fired_by = float(server.manage("shell", "-c", FIRED_BY.format(due=due.timestamp())).strip().splitlines()[-1])
            spent = {group: machine_after[group] - machine_before.get(group, 0.0) for group in machine_after}
            print("burst CPU, ms per delivery: " + ", ".join(
                f"{group} {seconds * 1000 / burst_cues:.2f}" for group, seconds in
                sorted(spent.items(), key=lambda item: -item[1]) if seconds > 0), file=sys.stderr)
            lateness = lateness_ms(receiver.requests)
            burst_row = {
                "p50": percentile(lateness, 50), "p99": percentile(lateness, 99),
                "seconds": last - due.timestamp(),
                "fired_by": fired_by,
                "per_second": len(set(ids)) / max(0.001, last - due.timestamp()),
                "missing": burst_cues - len(set(ids)),
                "duplicates": len(ids) - len(set(ids)),
                "rss_mb": [rss_mb(p.pid) for p in engine],
                # Engine CPU per delivery, ms: pollers, then dispatchers.
                "cpu_ms": [(cpu_seconds(p.pid) - before) * 1000 / burst_cues for p, before in zip(engine, cpu_before)],
            }
            return latency_row, burst_row
    finally:
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous


def run_memory(database_url, in_flight):
    """Dispatcher RSS with `in_flight` deliveries open at once on a receiver that answers after
    60 s (concurrency raised to match). Returns (RSS with them in flight, RSS before, how many
    were in flight when measured)."""
    os.environ["DATABASE_URL"] = database_url
    env = dict(SERVER_ENV, CUEAPI_DISPATCH_CONCURRENCY=str(in_flight), CUEAPI_WEBHOOK_TIMEOUT_SECONDS="120",
               CUEAPI_DISPATCH_PER_USER_IN_FLIGHT=str(in_flight))
    with Receiver(responses=((200, b"ok", 60),)) as receiver, LiveServer(api_only=True, **env) as server:
        server.spawn("run_poller")
        dispatcher = server.spawn("run_dispatcher")
        key = requests.post(server.url + "/v1/auth/register", json={"email": "memory@example.com"},
                            timeout=30).json()["api_key"]
        due = datetime.now(timezone.utc) + timedelta(seconds=5 + in_flight * 0.025)
        create_cues(server, {"Authorization": f"Bearer {key}"}, receiver.url, [due] * in_flight, "slow")
        idle = rss_mb(dispatcher.pid)
        deadline = time.monotonic() + (due - datetime.now(timezone.utc)).total_seconds() + 50
        while len(receiver.requests) < in_flight and time.monotonic() < deadline:
            time.sleep(0.2)
        return rss_mb(dispatcher.pid), idle, len(receiver.requests)


def run_claims(database_url, executions, claimers, cache_url=""):
    """Worker claims as users run the server (gunicorn defaults, rate limiter on, quotas
    raised): `claimers` processes (half claim-next, half list + claim-by-id) over `executions`
    claimable executions, each claim followed by its outcome. Returns (claims per second,
    double claims, missing, gunicorn and PostgreSQL CPU ms per claim)."""
    import subprocess

    from bench.api import cpu_seconds, cpu_used, gunicorn_workers, postgres_backends
    from tests.test_claim_race import CLAIMER, fire_many

    os.environ["DATABASE_URL"] = database_url
    env = dict(SERVER_ENV, **({"CACHE_URL": cache_url} if cache_url else {}))
    with LiveServer(api_only=True, **env) as server:
        key = requests.post(server.url + "/v1/auth/register", json={"email": "claims@example.com"},
                            timeout=30).json()["api_key"]
        fired = fire_many(server, {"Authorization": f"Bearer {key}"}, executions)
        workers = gunicorn_workers(server)
        web_before, db_before = cpu_seconds(workers), cpu_seconds(postgres_backends(server))
        started = time.monotonic()
        procs = [subprocess.Popen([sys.executable, str(CLAIMER), server.url, key, "next" if i % 2 else "by-id",
                                   f"w{i}", "report"], stdout=subprocess.PIPE, text=True) for i in range(claimers)]
        claimed = [line for p in procs for line in p.communicate(timeout=600)[0].split()]
        elapsed = time.monotonic() - started
        web_ms = cpu_used(web_before, cpu_seconds(workers)) * 1000 / max(1, len(claimed))
        db_ms = cpu_used(db_before, cpu_seconds(postgres_backends(server))) * 1000 / max(1, len(claimed))
        if any(p.returncode for p in procs):
            raise RuntimeError(f"a claimer failed:\n{server.output()[-3000:]}")
    return len(claimed) / elapsed, len(claimed) - len(set(claimed)), len(fired - set(claimed)), web_ms, db_ms


def main():
    if sys.argv[1:2] == ["idle"]:
        from bench import idle

        return idle.main(sys.argv[2:])
    if sys.argv[1:2] == ["prune"]:
        from bench import prune

        return prune.main(sys.argv[2:])
    if sys.argv[1:2] == ["api"]:
        from bench import api

        api.main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["claims"]:
        parser = argparse.ArgumentParser(prog="python -m bench claims")
        parser.add_argument("claims")
        parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/cueapi_bench")
        parser.add_argument("--executions", type=int, default=1000)
        parser.add_argument("--claimers", type=int, default=4)
        parser.add_argument("--cache-url", default="", help="CACHE_URL for the server (default: the database cache)")
        parser.add_argument("--runs", type=int, default=3, help="runs; a median row follows when > 1")
        args = parser.parse_args()
        cache = args.cache_url.split("://")[0] if args.cache_url else "database (default)"
        print(f"claims: claim + outcome per execution; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}\n")
        print("| database | cache | claimers | executions | claims/s | double claims | unclaimed "
              "| CPU ms/claim: gunicorn + PostgreSQL |")
        print("|---|---|---|---|---|---|---|---|", flush=True)
        runs = []
        for _ in range(args.runs):
            rate, doubles, missing, web_ms, db_ms = run_claims(args.postgres, args.executions, args.claimers,
                                                               args.cache_url)
            runs.append((rate, web_ms, db_ms))
            print(f"| PostgreSQL | {cache} | {args.claimers} | {args.executions} | {rate:.0f} | {doubles} | {missing} "
                  f"| {web_ms:.1f} + {db_ms:.1f} |", flush=True)
        if len(runs) > 1:
            rate, web_ms, db_ms = (statistics.median(run[i] for run in runs) for i in range(3))
            print(f"| PostgreSQL | {cache}, median | {args.claimers} | {args.executions} | {rate:.0f} | | "
                  f"| {web_ms:.1f} + {db_ms:.1f} |", flush=True)
        return
    if sys.argv[1:2] == ["memory"]:
        parser = argparse.ArgumentParser(prog="python -m bench memory")
        parser.add_argument("memory")
        parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/cueapi_bench")
        parser.add_argument("--in-flight", type=int, default=1000)
        args = parser.parse_args()
        rss, idle, arrived = run_memory(args.postgres, args.in_flight)
        print(f"| PostgreSQL | {arrived} of {args.in_flight} deliveries in flight to a slow receiver | "
              f"dispatcher RSS {rss:.0f} MB (idle {idle:.0f} MB) |")
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/cueapi_bench",
                        help="PostgreSQL URL (a fresh database is created next to it); '' to skip")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--dispatchers", default="1,2", help="dispatcher process counts to run, e.g. 1,2,4")
    parser.add_argument("--pollers", default="1", help="poller process counts to run, e.g. 1,2")
    parser.add_argument("--latency-cues", type=int, default=200, help="0 skips the latency part")
    parser.add_argument("--burst-cues", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="CUEAPI_DISPATCH_CONCURRENCY (default: the project's default)")
    parser.add_argument("--runs", type=int, default=1, help="runs per configuration (median reported)")
    args = parser.parse_args()

    databases = ([] if args.skip_sqlite else [("SQLite", "")]) + ([("PostgreSQL", args.postgres)] if args.postgres else [])
    print(f"fire latency: {args.latency_cues} one-time cues 50 ms apart; burst: {args.burst_cues} cues "
          f"due at one instant; dispatch concurrency {args.concurrency or 'default'}; {os.cpu_count()} cores; "
          f"load {os.getloadavg()[0]:.1f}\n")
    print("| database | pollers | dispatchers | latency p50 | p99 | max | burst deliveries/s | "
          "burst last delivery | last fired | burst lateness p50 | p99 | missing | duplicates | engine RSS (MB) | "
          "engine CPU ms/delivery |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, url in databases:
        for pollers in [int(n) for n in args.pollers.split(",")]:
            for dispatchers in [int(n) for n in args.dispatchers.split(",")]:
                runs = [run_config(url, dispatchers, args.latency_cues, args.burst_cues, args.concurrency, pollers)
                        for _ in range(args.runs)]
                # The median run by burst rate (latency figures from that same run).
                latency, burst = sorted(runs, key=lambda run: run[1]["per_second"])[len(runs) // 2]
                missing = sum(r[1]["missing"] + (r[0]["missing"] if r[0] else 0) for r in runs)
                duplicates = sum(r[1]["duplicates"] + (r[0]["duplicates"] if r[0] else 0) for r in runs)
                rss = " / ".join(f"{m:.0f}" for m in burst["rss_mb"])
                cpu = " / ".join(f"{m:.2f}" for m in burst["cpu_ms"])
                latency_cells = (f"{latency['p50']:.0f} ms | {latency['p99']:.0f} ms | {latency['max']:.0f} ms"
                                 if latency else "– | – | –")
                rates = ", ".join(f"{r[1]['per_second']:.0f}" for r in runs)
                print(f"| {name} | {pollers} | {dispatchers} | {latency_cells} | {burst['per_second']:.0f}"
                      f"{f' ({rates})' if len(runs) > 1 else ''} | {burst['seconds']:.2f} s | "
                      f"{burst['fired_by']:.2f} s | "
                      f"{burst['p50']:.0f} ms | {burst['p99']:.0f} ms | {missing} | {duplicates} | {rss} | {cpu} |",
                      flush=True)


if __name__ == "__main__":
    main()
