import datetime
from unittest import mock

import time_machine
from django.core.cache import cache
from django.core.management import call_command

from cueapi.testing import BaseTestCase

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


class HealthTests(BaseTestCase):
    def test_it_works_before_the_engine_ran(self):
        r = self.get("/health", anonymous=True)
        self.assertEqual(r.status_code, 200)
        body = r.json()
        self.assertEqual(body["status"], "healthy")
        self.assertEqual(body["version"], "1.0.0")
        self.assertEqual(
            body["services"], {"postgres": "ok", "redis": "ok", "poller": "unknown", "worker": "none"}
        )
        self.assertEqual(body["poller"], {"status": "unknown"})
        self.assertEqual(body["workers"], {"active_count": 0})
        self.assertEqual(body["queue"], {"pending_outbox": 0, "stale_executions": 0, "pending_retries": 0,
                                         "pending_worker_claims": 0})
        self.assertTrue(body["timestamp"].endswith("+00:00"))

    def test_it_sees_the_poller(self):
        with time_machine.travel(NOW, tick=False):
            call_command("run_poller", once=True)
        with time_machine.travel(NOW + datetime.timedelta(seconds=10), tick=False):
            body = self.get("/health", anonymous=True).json()
            self.assertEqual(self.get("/status", anonymous=True).json(), {"status": "healthy"})
        self.assertEqual(body["services"]["poller"], "ok")
        self.assertEqual(body["poller"]["last_run"], "2026-11-24T12:00:00+00:00")
        self.assertEqual(body["poller"]["seconds_ago"], 10)
        self.assertEqual(body["poller"]["cues_last_cycle"], 0)
        self.assertIn("cycle_duration_ms", body["poller"])

    def test_a_stale_poller_degrades(self):
        with time_machine.travel(NOW, tick=False):
            call_command("run_poller", once=True)
        with time_machine.travel(NOW + datetime.timedelta(seconds=31), tick=False):
            health = self.get("/health", anonymous=True)
            status = self.get("/status", anonymous=True)
        self.assertEqual(health.status_code, 200)
        self.assertEqual(health.json()["status"], "degraded")
        self.assertEqual(health.json()["services"]["poller"], "stale")
        self.assertEqual(status.status_code, 200)
        self.assertEqual(status.json(), {"status": "degraded", "reason": "poller stale"})

    def test_cache_down(self):
        with mock.patch.object(cache, "set", side_effect=ConnectionError("down")):
            health = self.get("/health", anonymous=True)
            status = self.get("/status", anonymous=True)
        self.assertEqual(health.status_code, 200)
        self.assertEqual(health.json()["status"], "degraded")
        self.assertEqual(health.json()["services"]["redis"], "error")
        self.assertEqual(status.status_code, 503)
        self.assertEqual(status.json(), {"status": "down", "reason": "redis unreachable"})

    def test_database_down(self):
        with mock.patch("ops.health._database_ok", return_value=False):
            status = self.get("/status", anonymous=True)
            health = self.get("/health", anonymous=True)
        self.assertEqual(status.status_code, 503)
        self.assertEqual(status.json(), {"status": "down", "reason": "postgres unreachable"})
        self.assertEqual(health.json()["services"]["postgres"], "error")
        self.assertEqual(health.json()["queue"], {})


class HealthWorkersAndStrictTests(BaseTestCase):
    def test_a_live_worker_is_counted(self):
        with time_machine.travel(NOW, tick=False):
            self.post("/v1/worker/heartbeat", {"worker_id": "w1"})
        with time_machine.travel(NOW + datetime.timedelta(seconds=60), tick=False):
            body = self.get("/health", anonymous=True).json()
        self.assertEqual(body["services"]["worker"], "ok")
        self.assertEqual(body["workers"], {"active_count": 1, "last_heartbeat": "2026-11-24T12:00:00Z"})
        with time_machine.travel(NOW + datetime.timedelta(seconds=181), tick=False):
            body = self.get("/health", anonymous=True).json()
        self.assertEqual((body["services"]["worker"], body["workers"]), ("none", {"active_count": 0}))
        self.assertEqual(body["status"], "healthy")  # no worker does not degrade

    def test_strict_is_503_until_both_engine_processes_run_and_again_when_they_stop(self):
        strict = self.get("/health?strict=1", anonymous=True)
        self.assertEqual(strict.status_code, 503)
        self.assertEqual(strict.json()["engine"]["dispatcher"]["last_run"], None)
        self.assertEqual(self.get("/health", anonymous=True).status_code, 200)  # the contract's endpoint
        with time_machine.travel(NOW, tick=False):
            call_command("run_poller", once=True)
            call_command("run_dispatcher", once=True)
        with time_machine.travel(NOW + datetime.timedelta(seconds=5), tick=False):
            strict = self.get("/health?strict=true", anonymous=True)
        self.assertEqual(strict.status_code, 200)
        self.assertEqual(strict.json()["engine"]["poller"]["seconds_ago"], 5)
        with time_machine.travel(NOW + datetime.timedelta(seconds=31), tick=False):
            self.assertEqual(self.get("/health?strict=1", anonymous=True).status_code, 503)
