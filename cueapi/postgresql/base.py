"""Django's PostgreSQL backend with a health check that costs no round trip, and a faster
loader for `timestamptz` values.

Health check:

With CONN_HEALTH_CHECKS, Django runs `SELECT 1` before the first query of every request on a
reused connection, so a connection PostgreSQL closed (a restart, an idle timeout, a
terminated backend) is replaced instead of failing the request. That is one more round trip
per API request. A server that closes a connection tells the client first (a FATAL message,
then end of file), so an idle connection whose socket has nothing to read was not closed by
the server; this backend checks that with a zero-timeout poll and only runs Django's
`SELECT 1` when the poll finds something, or when the connection is not idle and quiet.
Django's own check still runs after a query error (`close_if_unusable_or_obsolete`).

A connection lost without a word (a host gone, a cable pulled) fails the next request either
way: `SELECT 1` would fail or hang on it just the same.

Timestamps: psycopg parses a `timestamptz` in Python (about 10 µs each here), and a list of 50
executions holds hundreds. The session's time zone is UTC (Django sets it), so PostgreSQL
sends ISO text ending in `+00`, which the C-coded `datetime.fromisoformat` parses in under a
microsecond into the same value. Anything else (another session time zone or DateStyle,
infinity, BC dates) goes to Django's loader unchanged.
"""

import select
from datetime import datetime

from django.db.backends.postgresql import base
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg.pq import ConnStatus, TransactionStatus


class UtcIsoTzLoader(BaseTzLoader):
    """Django's timestamptz loader, with the common case (ISO text in UTC) parsed in C."""

    def load(self, data):
        text = bytes(data)
        if text.endswith(b"+00"):
            try:
                # As Django's loader: the session-zone (UTC) wall time, tagged with its zone.
                return datetime.fromisoformat(text.decode()).replace(tzinfo=self.timezone)
            except ValueError:
                pass
        return super().load(data)


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        # Django's create_cursor() compares the loader's `timezone` with its own before each
        # cursor; this one carries the same, so no cursor re-registers Django's.
        loader = type("UtcIsoTzLoader", (UtcIsoTzLoader,), {"timezone": self.timezone})
        connection.adapters.register_loader("timestamptz", loader)
        return connection

    def close_if_health_check_failed(self):
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and not self.pool
            and self.idle_and_quiet()
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()

    def idle_and_quiet(self):
        """The connection is open, outside a transaction, and the server sent nothing since
        the last answer (nothing to read on its socket)."""
        pgconn = self.connection.pgconn
        if pgconn.status != ConnStatus.OK or pgconn.transaction_status != TransactionStatus.IDLE:
            return False
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN)
        return not poller.poll(0)
