"""The shape both engine processes share (STYLE.md "Engine command").

A process runs cycles. Each cycle drains its units of work (each returns whether it found
some), records a heartbeat, then waits for the poll interval or until woken. SIGTERM and
SIGINT only set a flag: the current cycle finishes and the process exits 0.
"""

import logging
import math
import signal
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection
from django.db.backends.signals import connection_created
from django.utils import timezone

from cueapi import metrics
from cueapi.heartbeat import engine_heartbeat
from cueapi.logs import log_event
from cueapi.notify import Listener, listening_supported

logger = logging.getLogger("cueapi.engine")


# Without LISTEN/NOTIFY (SQLite) nothing wakes a sleeping loop, so it looks this often.
UNNOTIFIED_POLL_SECONDS = 0.25
HEARTBEAT_EVERY_SECONDS = 1.0


class EngineCommand(BaseCommand):
    process_name = "engine"  # "poller" / "dispatcher": heartbeat keys and application_name
    # Cycles start at most this often when work keeps waking the loop: each cycle's database
    # work then covers more rows (a batch of claims and results costs about what one does).
    min_cycle_seconds = 0.0
    listen_channel = None  # NOTIFY channel that wakes this loop early

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="run one cycle and exit")

    def handle(self, *args, once=False, **options):
        self.stopping = False
        self.once = once
        self.last_heartbeat = -math.inf
        self.wakeup = threading.Event()
        listener = None
        previous_handlers = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous_handlers[signum] = signal.signal(signum, self.request_stop)
        connection_created.connect(self.configure_session)
        try:
            if connection.connection is not None:  # opened before this command ran (tests)
                self.configure_session(connection=connection)
            if self.listen_channel and not once and listening_supported():
                listener = Listener(self.listen_channel, self.wakeup)
                listener.start()
            log_event(logger, "engine_started", process=self.process_name)
            while not self.stopping:
                self.wakeup.clear()  # before the cycle, so a wake-up during it is not lost
                started = time.monotonic()
                self.run_cycle()
                if once:
                    break
                if not self.wakeup.is_set():  # woken during the cycle: go again at once
                    self.wakeup.wait(self.safe_sleep_seconds())
                pause = self.min_cycle_seconds - (time.monotonic() - started)
                if pause > 0 and not self.stopping:
                    time.sleep(pause)
            self.shutdown()
            self.flush_metrics(force=True)
            log_event(logger, "engine_stopped", process=self.process_name)
        finally:
            connection_created.disconnect(self.configure_session)
            if listener is not None:
                listener.stop()
                listener.join(timeout=5)
            # Called in-process (tests, `--once` from a script): leave the caller's handlers.
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)

    def run_cycle(self):
        """One cycle. A failure is logged and the next cycle runs: one bad row or a cache
        outage must not stop the engine (the reference's poller does the same)."""
        if not connection.in_atomic_block:  # inside a test's transaction: keep it
            close_old_connections()
        started = time.monotonic()
        try:
            stats = self.cycle()
            # A busy loop cycles many times a second; the heartbeat (read by /health, stale
            # after 30 s) needs one write a second at most.
            if self.once or started - self.last_heartbeat >= HEARTBEAT_EVERY_SECONDS:
                engine_heartbeat(
                    self.process_name,
                    cycle_duration_ms=int((time.monotonic() - started) * 1000),
                    **stats,
                )
                self.last_heartbeat = started
        except Exception:
            logger.exception("cycle_failed", extra={"fields": {"process": self.process_name}})
        self.flush_metrics()

    def flush_metrics(self, force=False):
        try:
            metrics.flush(force=force)
        except Exception:  # kept for the next flush; metrics never stop the engine
            logger.exception("metrics_flush_failed", extra={"fields": {"process": self.process_name}})

    def request_stop(self, signum, frame):
        self.stopping = True
        self.wakeup.set()

    def configure_session(self, sender=None, connection=None, **kwargs):
        """Every database connection of this process (a new one each CONN_MAX_AGE, one per
        thread): named in pg_stat_activity, so an operator can tell the processes apart, and
        planned on every run. Repeated statements are prepared (settings.py), and a prepared
        statement's generic plan can't see its parameters: for the poller's sweeps, a time range
        under a LIMIT, it chose a scan of the whole table (5 ms instead of 0.1 ms with 40,000
        executions, bench/idle.py). The engine's statements run a few times a second at most,
        so planning each costs little; they still skip parsing."""
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('application_name', %s, false), "
                               "set_config('plan_cache_mode', 'force_custom_plan', false)",
                               [f"cueapi-{self.process_name}"])

    def safe_sleep_seconds(self):
        try:
            return self.sleep_seconds()
        except Exception:  # the database is away: try again after the usual interval
            logger.exception("sleep_computation_failed", extra={"fields": {"process": self.process_name}})
            return self.poll_ceiling()

    def poll_ceiling(self):
        """The longest sleep: the poll interval, or much less when nothing can wake us."""
        interval = settings.CUEAPI_POLL_INTERVAL_SECONDS
        return interval if listening_supported() else min(interval, UNNOTIFIED_POLL_SECONDS)

    def sleep_seconds(self):
        return self.poll_ceiling()

    def sleep_until(self, due):
        """Seconds until `due` (an instant, or None for nothing known), at most the ceiling."""
        if due is None:
            return self.poll_ceiling()
        return max(0.0, min(self.poll_ceiling(), (due - timezone.now()).total_seconds()))

    def cycle(self):
        """Do one cycle's work; return stats for the heartbeat."""
        raise NotImplementedError

    def shutdown(self):
        """Finish in-flight work before exiting."""
