"""The PostgreSQL backend (cueapi/postgresql/base.py): its health check costs no round trip
for a healthy idle connection and still replaces a connection the server closed; its
timestamp loader gives what Django's does; statements repeated on a connection are prepared,
except through a transaction-mode pooler."""

import json
import os
import random
import select
import subprocess
import sys
import time
import unittest
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.db import connection, connections
from django.test import TestCase


@unittest.skipUnless(connection.vendor == "postgresql", "the PostgreSQL backend's own check")
class HealthCheckTests(TestCase):
    def setUp(self):
        self.other = connections.create_connection("default")
        self.addCleanup(self.other.close)
        with self.other.cursor() as cursor:
            cursor.execute("SELECT 'before the check'")
            self.pid = self.other.connection.info.backend_pid
        self.assertTrue(self.other.health_check_enabled)  # settings: CONN_HEALTH_CHECKS

    def last_statement(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # a fresh view inside the test's transaction
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [self.pid])
            return cursor.fetchone()[0]

    def check(self):
        self.other.health_check_done = False  # as at the start of a request
        self.other.close_if_health_check_failed()

    def test_a_healthy_idle_connection_is_kept_without_a_query(self):
        raw = self.other.connection
        self.check()
        self.assertIs(self.other.connection, raw)
        self.assertEqual(self.last_statement(), "SELECT 'before the check'")

    def test_a_connection_the_server_closed_is_replaced(self):
        raw = self.other.connection
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [self.pid])
        # The server's goodbye arrives on the socket.
        poller = select.poll()
        poller.register(raw.pgconn.socket, select.POLLIN)
        deadline = time.monotonic() + 10
        while not poller.poll(100) and time.monotonic() < deadline:
            pass
        self.check()
        self.assertIsNone(self.other.connection)
        with self.other.cursor() as cursor:  # the next query opens a new connection
            cursor.execute("SELECT 1")
            self.assertEqual(cursor.fetchone(), (1,))
        self.assertNotEqual(self.other.connection.info.backend_pid, self.pid)

    def test_a_connection_inside_a_transaction_gets_the_full_check(self):
        self.other.connection.execute("BEGIN")
        self.check()
        self.assertEqual(self.last_statement(), "SELECT 1")
        self.other.connection.execute("ROLLBACK")


@unittest.skipUnless(connection.vendor == "postgresql", "the PostgreSQL backend's own loader")
class TimestampLoaderTests(TestCase):
    def select_both_ways(self, sql, params=()):
        """The rows of `sql` through this backend's loader and through Django's own."""
        from django.db.backends.postgresql.psycopg_any import register_tzloader

        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            fast = cursor.fetchall()
        with connection.cursor() as cursor:
            register_tzloader(connection.timezone, cursor.cursor)  # Django's, on this cursor only
            cursor.execute(sql, params)
            django = cursor.fetchall()
        return fast, django

    def test_the_connection_uses_it(self):
        with connection.cursor() as cursor:
            loader = cursor.cursor.adapters.get_loader(
                cursor.cursor.adapters.types["timestamptz"].oid, 0)
        self.assertEqual(loader.__name__, "UtcIsoTzLoader")
        self.assertIs(loader.timezone, connection.timezone)

    def test_the_same_values_as_djangos_loader(self):
        rng = random.Random(7)
        base = datetime(2026, 1, 1, tzinfo=dt_timezone.utc)
        moments = [base + timedelta(seconds=rng.uniform(-3e9, 3e9)) for _ in range(300)]
        moments += [base, base.replace(microsecond=500000), base.replace(microsecond=1),
                    datetime(1, 1, 1, tzinfo=dt_timezone.utc), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt_timezone.utc)]
        fast, django = self.select_both_ways(
            "SELECT m, m::text FROM unnest(%s::timestamptz[]) AS m", [moments])
        self.assertEqual(fast, django)
        self.assertEqual([row[0] for row in fast], moments)
        self.assertTrue(all(row[0].tzinfo is connection.timezone for row in fast))

    def test_other_session_time_zones_and_infinity_go_to_djangos_loader(self):
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL TIME ZONE 'Asia/Kolkata'")
        fast, django = self.select_both_ways(
            "SELECT '2026-06-01 12:00:00.25+00'::timestamptz, '1999-01-01 00:00:00+00'::timestamptz")
        self.assertEqual(fast, django)
        with self.assertRaises(Exception) as fast_error:
            self.select_both_ways("SELECT 'infinity'::timestamptz")
        self.assertIn("infinity", str(fast_error.exception).lower())


@unittest.skipUnless(connection.vendor == "postgresql", "PostgreSQL's prepared statements")
class PreparedStatementTests(TestCase):
    STATEMENT = "SELECT count(*) FROM cues WHERE id = %s AND name = %s"

    def prepared(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT statement FROM pg_prepared_statements")
            return [row[0] for row in cursor.fetchall()]

    @unittest.skipIf(connection.settings_dict["OPTIONS"].get("prepare_threshold") is None,
                     "DATABASE_POOLER=transaction: this run prepares nothing (checked below)")
    def test_a_statement_run_a_sixth_time_is_prepared_and_its_parameters_bound_by_the_server(self):
        with connection.cursor() as cursor:
            for n in range(6):  # psycopg prepares it on the run after prepare_threshold (5)
                cursor.execute(self.STATEMENT, [f"cue_{n}", "a name with a ' quote"])
                self.assertEqual(cursor.fetchone(), (0,))
        self.assertIn("SELECT count(*) FROM cues WHERE id = $1 AND name = $2", self.prepared())

    def settings_options(self, **env):
        """The database OPTIONS settings.py gives a PostgreSQL DATABASE_URL under `env`."""
        code = ("from django.conf import settings; "
                "print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))")
        env = {**os.environ, "DATABASE_URL": "postgres://u@127.0.0.1:5432/d", "DATABASE_POOLER": "", **env}
        out = subprocess.run([sys.executable, "-c", f"import json, django; django.setup(); {code}"],
                             env=env, capture_output=True, text=True, check=True).stdout
        return json.loads(out)

    def test_not_prepared_through_a_transaction_mode_pooler(self):
        self.assertEqual(self.settings_options(), {"server_side_binding": True, "prepare_threshold": 5})
        self.assertEqual(self.settings_options(DATABASE_POOLER="transaction"), {"server_side_binding": True})
        self.assertEqual(self.settings_options(DATABASE_POOLER="session"),
                         {"server_side_binding": True, "prepare_threshold": 5})
