import signal
import unittest
from unittest import mock

from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import TestCase, TransactionTestCase

from executions.management.commands.run_poller import Command as PollerCommand


class EngineLoopTests(TestCase):
    def test_once_runs_one_cycle_and_records_the_heartbeat(self):
        call_command("run_dispatcher", once=True)
        self.assertIsNotNone(cache.get("dispatcher:last_run"))
        self.assertEqual(cache.get("dispatcher:delivered"), 0)

    def test_a_failing_cycle_is_logged_and_the_loop_goes_on(self):
        command = PollerCommand()
        calls = []

        def cycle():
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("boom")
            command.stopping = True  # stop after the second cycle
            return {"cues_processed": 0}

        command.cycle = cycle
        command.sleep_seconds = lambda: 0
        with self.assertLogs("cueapi.engine", "ERROR") as logs:
            command.handle(once=False)
        self.assertEqual(len(calls), 2)
        self.assertEqual((logs.records[0].getMessage(), logs.records[0].fields), ("cycle_failed", {"process": "poller"}))
        self.assertIn("RuntimeError: boom", logs.output[0])

    def test_a_cache_outage_does_not_stop_the_engine(self):
        with mock.patch.object(cache, "set_many", side_effect=ConnectionError("cache down")):
            with self.assertLogs("cueapi.engine", "ERROR"):
                call_command("run_poller", once=True)

    def test_signal_handlers_are_restored(self):
        before = signal.getsignal(signal.SIGINT)
        call_command("run_poller", once=True)
        self.assertIs(signal.getsignal(signal.SIGINT), before)


class DispatcherSeatsTests(TestCase):
    def test_a_claim_that_fails_gives_its_seats_back(self):
        from executions import dispatcher
        from executions.management.commands.run_dispatcher import Command as DispatcherCommand

        command = DispatcherCommand()
        claims = []

        def claim(*, now, limit):
            claims.append(limit)
            if len(claims) == 1:
                raise RuntimeError("database away")
            command.stopping = True  # stop after the second cycle
            return [], None

        with mock.patch.object(dispatcher, "claim_outbox_rows", side_effect=claim), \
                self.settings(CUEAPI_DISPATCH_CONCURRENCY=4), self.assertLogs("cueapi.engine", "ERROR"):
            command.sleep_seconds = lambda: 0
            command.handle(once=False)
        # The second cycle found all four seats free again: the failed claim leaked none.
        self.assertEqual(claims, [4, 4])


@unittest.skipUnless(connection.vendor == "postgresql", "PostgreSQL session settings")
class EngineSessionTests(TransactionTestCase):
    def session(self):
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_setting('application_name'), current_setting('plan_cache_mode')")
            return cursor.fetchone()

    def test_each_connection_of_an_engine_process_is_named_and_planned_per_run(self):
        seen = []

        def cycle():
            seen.append(self.session())
            connection.close()  # as after CONN_MAX_AGE: the next statement opens a new connection
            seen.append(self.session())
            return {"cues_processed": 0}

        command = PollerCommand()
        command.cycle = cycle
        command.handle(once=True)
        self.assertEqual(seen, [("cueapi-poller", "force_custom_plan")] * 2)
        connection.close()  # other processes' connections keep PostgreSQL's default
        self.assertEqual(self.session()[1], "auto")
