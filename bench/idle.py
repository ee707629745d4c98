"""Idle cost of the poller: `python -m bench idle`.

What an idle installation costs the poller per cycle, on a fresh PostgreSQL database (the one
--postgres names, dropped and created again; dropped afterwards unless --keep):

1. empty: no cues, no executions;
2. + N active recurring cues, none due (next_run weeks ahead), bulk-inserted;
3. + M delivered executions awaiting an outcome (deadline ahead) and M worker executions
   claimed with a live lease;
4. + M executions waiting for a retry (an hour ahead) and M worker executions fired a minute
   ago, waiting for a worker to claim them.

A cycle is what `run_poller` does between two sleeps: its `cycle()` (fire due cues, expire
leases, release retries, miss unclaimed worker executions, time out outcomes) and
`sleep_seconds()` (the next-due lookups), called here in-process against that database, so
it is the poller's own code and queries. After each seeding step the tables are ANALYZEd, as
autovacuum would. Prints Markdown rows: the wall time of a cycle (median of --cycles after
three warm-up ones), the time in its statements, and what the database itself does for them
(EXPLAIN ANALYZE execution time and buffers touched: the part the database's size can change,
and steady on a loaded machine); then the time per statement, and the
EXPLAIN (ANALYZE, BUFFERS) of every query a cycle runs on the fully seeded database.
"""

import argparse
import os
import re
import statistics
import time
from datetime import timedelta

DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/cueapi_bench_idle"
SEED_BATCH = 5000
WORKER_CUES = 1000  # of the idle cues, these use the worker transport (the leased executions' cues)


def fresh_database(url):
    import psycopg

    admin_url, name = url.rsplit("/", 1)
    with psycopg.connect(admin_url + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url + "/postgres", name


def drop_database(admin_url, name):
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(url):
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cueapi.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def analyze():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def seed_cues(count):
    """`count` active recurring cues due weeks from now (WORKER_CUES of them worker-transport),
    spread over 100 users. Returns the worker cues."""
    from django.utils import timezone

    from accounts.models import User
    from cues.models import Cue

    users = User.objects.bulk_create([User(email=f"idle{i}@example.com") for i in range(100)])
    now = timezone.now()
    worker_cues = []
    for start in range(0, count, SEED_BATCH):
        batch = []
        for i in range(start, min(count, start + SEED_BATCH)):
            worker = i < WORKER_CUES
            batch.append(Cue(
                user=users[i % len(users)], name=f"idle-{i}", schedule_type=Cue.ScheduleType.RECURRING,
                schedule_cron="0 9 * * *", status=Cue.Status.ACTIVE,
                # Weeks ahead, spread over a day so the next_run index is not one value.
                next_run=now + timedelta(days=30, seconds=i % 86400),
                callback_transport=Cue.Transport.WORKER if worker else Cue.Transport.WEBHOOK,
                callback_url=None if worker else "https://example.com/hook",
            ))
        created = Cue.objects.bulk_create(batch)
        worker_cues.extend(c for c in created if c.callback_transport == Cue.Transport.WORKER)
    return worker_cues


def seed_executions(count, worker_cues):
    """`count` webhook executions delivered and awaiting an outcome (deadline an hour ahead) and
    `count` worker executions claimed with a lease an hour ahead."""
    from django.utils import timezone

    from cues.models import Cue
    from executions.models import Execution

    now = timezone.now()
    webhook_cues = list(Cue.objects.filter(callback_transport=Cue.Transport.WEBHOOK).order_by("pk")[:count])
    awaiting = [Execution(cue=cue, scheduled_for=now - timedelta(minutes=5), status=Execution.Status.SUCCESS,
                          attempts=1, http_status=200, delivered_at=now, last_attempt_at=now,
                          outcome_deadline_seconds=3600, outcome_deadline_at=now + timedelta(hours=1))
                for cue in webhook_cues]
    leased = [Execution(cue=worker_cues[i % len(worker_cues)], scheduled_for=now - timedelta(seconds=i),
                        status=Execution.Status.DELIVERING, attempts=1, claimed_by_worker=f"w{i % 8}",
                        claimed_at=now, started_at=now, last_attempt_at=now,
                        lease_expires_at=now + timedelta(hours=1))
              for i in range(count)]
    Execution.objects.bulk_create(awaiting + leased, batch_size=SEED_BATCH)


def seed_waiting_executions(count, worker_cues):
    """`count` webhook executions waiting for a retry an hour ahead and `count` worker
    executions waiting for a worker to claim them (fired a minute ago, within the 15 minutes)."""
    from django.utils import timezone

    from cues.models import Cue
    from executions.models import Execution

    now = timezone.now()
    webhook_cues = list(Cue.objects.filter(callback_transport=Cue.Transport.WEBHOOK).order_by("-pk")[:count])
    retrying = [Execution(cue=cue, scheduled_for=now - timedelta(minutes=10), status=Execution.Status.RETRYING,
                          attempts=1, http_status=503, last_attempt_at=now, next_retry=now + timedelta(hours=1))
                for cue in webhook_cues]
    unclaimed = [Execution(cue=worker_cues[i % len(worker_cues)], scheduled_for=now - timedelta(minutes=1, milliseconds=i),
                           status=Execution.Status.PENDING)
                 for i in range(count)]
    Execution.objects.bulk_create(retrying + unclaimed, batch_size=SEED_BATCH)


def poller_command():
    from django.db import connection

    from executions.management.commands.run_poller import Command

    command = Command()
    command.stopping = False
    command.once = False
    connection.ensure_connection()
    command.configure_session(connection=connection)  # as run_poller sets up its connections
    return command


def one_cycle(command):
    """What the poller does between two sleeps; returns seconds."""
    started = time.perf_counter()
    stats = command.cycle()
    command.sleep_seconds()
    elapsed = time.perf_counter() - started
    if stats["cues_processed"]:
        raise RuntimeError(f"the idle database had work to do: {stats}")
    return elapsed


def statement_label(sql):
    """A short name for a statement: its verb, table and the first condition."""
    sql = re.sub(r'"', "", sql)
    verb = sql.split(None, 1)[0].upper()
    table = re.search(r"\b(?:FROM|UPDATE)\s+(\w+)", sql, re.IGNORECASE)
    where = re.search(r"\bWHERE\s+\(?(.{0,60})", sql, re.IGNORECASE)
    aggregate = re.match(r"SELECT (MIN\(\S+?\))", sql, re.IGNORECASE)
    what = aggregate.group(1) if aggregate else verb
    return f"{what} {table.group(1) if table else '?'} WHERE {where.group(1) if where else ''}…"


def time_cycles(cycles):
    """(seconds per cycle, {statement label: [seconds per execution]}) over `cycles` cycles."""
    from django.db import connection

    statements = {}

    def record(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.setdefault(statement_label(sql), []).append(time.perf_counter() - started)

    command = poller_command()
    for _ in range(3):  # warm-up: connection, first-cycle cleanup, Django's query caches
        one_cycle(command)
    with connection.execute_wrapper(record):
        times = [one_cycle(command) for _ in range(cycles)]
    return times, statements


def cycle_queries(cleanup=False):
    """(sql, params) of every statement one cycle runs (with the hourly cleanup's if asked)."""
    from django.db import connection

    captured = []

    def record(execute, sql, params, many, context):
        captured.append((sql, params))
        return execute(sql, params, many, context)

    command = poller_command()
    command.last_cleanup = 0 if cleanup else time.time()
    with connection.execute_wrapper(record):
        command.cycle()
        command.sleep_seconds()
    return [(sql, params) for sql, params in captured
            if re.match(r"\s*(SELECT|UPDATE|DELETE|WITH)\b", sql, re.IGNORECASE)]


def explain(sql, params):
    """EXPLAIN (ANALYZE, BUFFERS) lines, in a transaction that is rolled back (ANALYZE runs it)."""
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
            lines = [row[0] for row in cursor.fetchall()]
        transaction.set_rollback(True)
    return lines


def plan_summary(lines):
    scans = []
    for line in lines:
        match = re.search(r"(Seq Scan|Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)?"
                          r"(?: using (\S+))? on (\S+)", line)
        if match:
            kind, index, table = match.groups()
            rows = re.search(r"actual time=\S+ rows=(\d+) loops=(\d+)", line)
            read = f" ({int(rows.group(1)) * int(rows.group(2))} rows)" if rows else " (never executed)"
            scans.append(f"{kind} {index or ''} on {table}{read}".replace("  ", " "))
    took = next((line for line in lines if line.startswith("Execution Time")), "")
    return "; ".join(scans) or "no table scan", took


def buffers_touched(lines):
    """Shared buffers the statement's execution hit or read (its plan's root node; planning's
    own buffers left out)."""
    for line in lines:
        if line.startswith("Planning"):
            return 0
        if "Buffers:" in line:
            return sum(int(n) for n in re.findall(r"shared (?:hit|read)=(\d+)", line))
    return 0


def server_work(repeats=5):
    """(median of the summed EXPLAIN ANALYZE execution times in seconds, buffers touched) of
    one cycle's statements: what the database does, not what the machine's load adds."""
    queries = cycle_queries()
    totals, buffers = [], 0
    for _ in range(repeats):
        plans = [explain(sql, params) for sql, params in queries]
        totals.append(sum(float(re.search(r"Execution Time: ([\d.]+)", "\n".join(lines)).group(1))
                          for lines in plans) / 1000)
        buffers = sum(buffers_touched(lines) for lines in plans)
    return statistics.median(totals), buffers


def measure(cycles):
    times, statements = time_cycles(cycles)
    return times, statements, server_work()


def run(url, cues, executions, cycles, keep, verbose_plans):
    admin_url, name = fresh_database(url)
    try:
        setup_django(url)
        rows = []
        analyze()
        rows.append(("empty", 0, 0, measure(cycles)))
        started = time.monotonic()
        worker_cues = seed_cues(cues)
        analyze()
        print(f"(seeded {cues} cues in {time.monotonic() - started:.0f} s)", flush=True)
        rows.append((f"{cues:,} idle cues", cues, 0, measure(cycles)))
        started = time.monotonic()
        seed_executions(executions, worker_cues)
        analyze()
        print(f"(seeded {2 * executions} executions in {time.monotonic() - started:.0f} s)", flush=True)
        rows.append((f"{cues:,} idle cues + {executions:,} awaiting outcome + {executions:,} leased",
                     cues, executions, measure(cycles)))
        seed_waiting_executions(executions, worker_cues)
        analyze()
        rows.append((f"… + {executions:,} waiting to retry + {executions:,} worker ones waiting for a claim",
                     cues, executions, measure(cycles)))

        print(f"\npoller cycle = run_poller's cycle() + sleep_seconds(), median of {cycles} after 3 warm-up ones; "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}\n")
        # The cycle's wall time moves with the machine's load; its statements' time (sum of
        # each statement's median round trip) is the part the database's size can change.
        print("| database state | cycle median | min | added vs empty (median) | statements, round trips "
              "(sum of medians) | server execution time (EXPLAIN ANALYZE, sum) | buffers touched |")
        print("|---|---|---|---|---|---|---|")
        empty = None
        for label, _, _, (times, statements, (server_seconds, buffers)) in rows:
            median = statistics.median(times)
            in_statements = sum(statistics.median(t) * len(t) / cycles for t in statements.values())
            empty = median if empty is None else empty
            print(f"| {label} | {median * 1000:.2f} ms | {min(times) * 1000:.2f} ms | "
                  f"{(median - empty) * 1000:+.2f} ms | {in_statements * 1000:.2f} ms | "
                  f"{server_seconds * 1000:.2f} ms | {buffers} |")

        print("\nWhere a cycle's time goes: median ms per statement as the poller sees it (round trip "
              "included), per database state:\n")
        print("| statement | runs per cycle | " + " | ".join(f"state {i + 1}" for i in range(len(rows))) + " |")
        print("|---|---|" + "---|" * len(rows))
        for statement in rows[-1][3][1]:
            per_state = [row[3][1].get(statement, []) for row in rows]
            cells = " | ".join(f"{statistics.median(t) * 1000:.2f}" if t else "-" for t in per_state)
            print(f"| `{statement}` | {len(per_state[-1]) / cycles:g} | {cells} |")

        print("\nEXPLAIN (ANALYZE, BUFFERS) of each statement of one cycle (incl. hourly cleanup), "
              "fully seeded database:\n")
        for sql, params in cycle_queries(cleanup=True):
            lines = explain(sql, params)
            scans, took = plan_summary(lines)
            print(f"- `{sql[:160]}{'…' if len(sql) > 160 else ''}`\n  {scans} — {took}")
            if verbose_plans:
                print("\n".join("      " + line for line in lines))
    finally:
        from django.db import connections

        connections.close_all()
        if not keep:
            drop_database(admin_url, name)


def main(argv):
    parser = argparse.ArgumentParser(prog="python -m bench idle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES,
                        help="PostgreSQL URL of the database to (re)create for the run")
    parser.add_argument("--cues", type=int, default=100_000)
    parser.add_argument("--executions", type=int, default=10_000,
                        help="executions awaiting an outcome, and as many leased worker executions")
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="leave the database for a look afterwards")
    parser.add_argument("--plans", action="store_true", help="print the full plans, not only their scans")
    args = parser.parse_args(argv)
    run(args.postgres, args.cues, args.executions, args.cycles, args.keep, args.plans)
