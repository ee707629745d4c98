"""The PostgreSQL backend's health check (cueapi/postgresql/base.py): no round trip for a
healthy idle connection, and a connection the server closed is still replaced."""

import select
import time
import unittest

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
