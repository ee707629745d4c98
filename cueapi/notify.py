"""Wake-ups between processes: PostgreSQL LISTEN/NOTIFY (DESIGN.md §2).

The database sends the notifications itself, from triggers (cueapi/wakeups.py), at commit.
`Listener` runs a thread on its own connection and sets an Event on each notification. It is a
hint that work may be waiting: the engine loops still poll, so a lost notification only costs
latency. On SQLite there is nothing to listen to, nor through a transaction-mode pooler, and
the loops poll more often instead.
"""

import logging
import threading
import time

from django.conf import settings
from django.db import connection

logger = logging.getLogger("cueapi.notify")

CUES_CHANNEL = "cueapi_cues"  # a cue became due sooner: the poller looks again
OUTBOX_CHANNEL = "cueapi_outbox"  # an outbox row or a notification was written: the dispatcher looks


def listening_supported():
    """False on SQLite, and behind a transaction-mode pooler (DATABASE_POOLER=transaction):
    there LISTEN runs on whichever server connection the pooler lends, the notifications
    arrive on that connection after it went back to the pool, and PgBouncer drops them."""
    return connection.vendor == "postgresql" and settings.DATABASE_POOLER != "transaction"


class Listener(threading.Thread):
    """LISTEN on a channel; set `event` on each notification. Reconnects after errors."""

    HEALTH_CHECK_SECONDS = 30

    def __init__(self, channel, event):
        super().__init__(name=f"listen-{channel}", daemon=True)
        self.channel = channel
        self.event = event
        self.stopped = threading.Event()
        self.settings_dict = connection.settings_dict

    def connect(self):
        import psycopg

        s = self.settings_dict
        conn = psycopg.connect(
            dbname=s["NAME"], user=s.get("USER") or None, password=s.get("PASSWORD") or None,
            host=s.get("HOST") or None, port=s.get("PORT") or None, autocommit=True,
            application_name=f"cueapi-listen-{self.channel}",
        )
        conn.execute(f"LISTEN {self.channel}")
        return conn

    def run(self):
        while not self.stopped.is_set():
            try:
                with self.connect() as conn:
                    self.event.set()  # anything sent while we were not listening
                    checked = time.monotonic()
                    while not self.stopped.is_set():
                        # Short waits, so stop() is noticed within a second.
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.event.set()
                        if time.monotonic() - checked > self.HEALTH_CHECK_SECONDS:
                            conn.execute("SELECT 1")  # notice a dead socket
                            checked = time.monotonic()
            except Exception:  # noqa: BLE001 - reconnect after any failure
                logger.warning("listener on %s lost its connection; reconnecting", self.channel)
                self.stopped.wait(1)

    def stop(self):
        self.stopped.set()
