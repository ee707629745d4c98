"""GET /metrics: access rules, the Prometheus text format (parsed with prometheus_client's own
parser), and counters that move when the engine fires and delivers."""

from datetime import timedelta

from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from cueapi import metrics
from cueapi.models import MetricSample
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions.models import Execution
from executions import poller
from executions.tests.test_delivery import deliver_all
from tests.receiver import Receiver

TOKEN = "scrape-me-0123456789"


@override_settings(CUEAPI_METRICS_TOKEN=TOKEN)
class MetricsTests(CueTestCase):
    def setUp(self):
        super().setUp()
        metrics.discard_pending()

    def scrape(self):
        response = self.client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response["Content-Type"].startswith("text/plain; version="))
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples

    def fire_due(self, receiver, **cue_fields):
        cue = self.create_cue(callback={"url": receiver.url}, **cue_fields)
        due = timezone.now() - timedelta(milliseconds=40)
        Cue.objects.filter(pk=cue["id"]).update(next_run=due)
        poller.fire_due_cues(now=timezone.now())
        deliver_all()
        metrics.flush(force=True)

    def test_access(self):
        self.assertError(self.client.get("/metrics"), 401, "invalid_metrics_token")
        self.assertError(self.client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong"), 401, "invalid_metrics_token")
        # An API key is not a metrics token.
        self.assertError(self.client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {self.alice_key}"), 401,
                         "invalid_metrics_token")
        self.assertError(self.client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"), 405, "http_error")
        with override_settings(CUEAPI_METRICS_TOKEN=""):
            self.assertError(self.client.get("/metrics", HTTP_AUTHORIZATION="Bearer "), 404, "http_error")

    def test_every_family_is_present_on_an_empty_database(self):
        names = {family.name for family in text_string_to_metric_families(
            self.client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode())}
        self.assertLessEqual({"cueapi_executions_fired", "cueapi_webhook_deliveries", "cueapi_retries_scheduled",
                              "cueapi_fire_lag_seconds", "cueapi_delivery_latency_seconds", "cueapi_cues",
                              "cueapi_executions_in_flight", "cueapi_executions_last_24h", "cueapi_outbox_depth",
                              "cueapi_workers", "cueapi_alerts", "cueapi_engine_last_cycle_age_seconds"}, names)

    def test_counters_move_when_executions_are_delivered(self):
        before = self.scrape()
        with Receiver([(200, b"ok")]) as receiver:
            self.fire_due(receiver)
        after = self.scrape()

        def moved(name, **labels):
            key = (name, tuple(sorted(labels.items())))
            return after.get(key, 0) - before.get(key, 0)

        self.assertEqual(moved("cueapi_executions_fired_total", transport="webhook"), 1)
        self.assertEqual(moved("cueapi_webhook_deliveries_total", result="delivered"), 1)
        self.assertEqual(moved("cueapi_delivery_latency_seconds_count"), 1)
        self.assertEqual(moved("cueapi_fire_lag_seconds_count"), 1)
        # Due 40 ms ago: the fire lag lands in a small bucket, and +Inf holds everything.
        self.assertEqual(moved("cueapi_fire_lag_seconds_bucket", le="0.01"), 0)
        self.assertEqual(moved("cueapi_fire_lag_seconds_bucket", le="5.0"), 1)
        self.assertEqual(moved("cueapi_fire_lag_seconds_bucket", le="+Inf"), 1)
        self.assertGreaterEqual(after[("cueapi_delivery_latency_seconds_sum", ())], 0.04)
        self.assertEqual(after[("cueapi_executions_last_24h", (("status", "success"),))], 1)
        self.assertEqual(after[("cueapi_cues", (("status", "active"),))], 1)
        self.assertEqual(after[("cueapi_outbox_depth", ())], 0)

    def test_a_failed_attempt_counts_a_retry(self):
        with Receiver([(500, b"no")]) as receiver:
            self.fire_due(receiver, retry={"max_attempts": 2, "backoff_minutes": [1]})
        after = self.scrape()
        self.assertEqual(after[("cueapi_webhook_deliveries_total", (("result", "retrying"),))], 1)
        self.assertEqual(after[("cueapi_retries_scheduled_total", (("transport", "webhook"),))], 1)
        self.assertEqual(after[("cueapi_executions_in_flight", (("status", "retrying"),))], 1)

    def test_flush_adds_to_what_is_stored_and_keeps_deltas_when_it_fails(self):
        metrics.count("cueapi_outcome_timeouts", 2)
        metrics.flush(force=True)
        metrics.count("cueapi_outcome_timeouts", 3)
        metrics.flush(force=True)
        self.assertEqual(MetricSample.objects.get(name="cueapi_outcome_timeouts_total").value, 5)

        from unittest import mock
        metrics.count("cueapi_outcome_timeouts")
        with mock.patch.object(metrics, "_add_all", side_effect=RuntimeError("database away")):
            with self.assertRaises(RuntimeError):
                metrics.flush(force=True)
        metrics.flush(force=True)
        self.assertEqual(MetricSample.objects.get(name="cueapi_outcome_timeouts_total").value, 6)


@override_settings(CUEAPI_METRICS_TOKEN=TOKEN)
class PollerCountersTests(CueTestCase):
    def setUp(self):
        super().setUp()
        metrics.discard_pending()

    def stored(self, name, labels=""):
        metrics.flush(force=True)
        sample = MetricSample.objects.filter(name=name, labels=labels).first()
        return sample.value if sample else 0

    def test_missed_slots_lease_expiries_and_outcome_timeouts_are_counted(self):
        now = timezone.now()
        cue = Cue.objects.get(pk=self.create_cue(catch_up="none", schedule={"type": "recurring", "cron": "0 * * * *"})["id"])
        Cue.objects.filter(pk=cue.pk).update(next_run=now - timedelta(hours=3, minutes=1))
        poller.fire_due_cues(now=now)
        self.assertEqual(self.stored("cueapi_executions_missed_total", 'reason="catch_up"'),
                         Execution.objects.filter(cue=cue, status="missed").count())
        self.assertGreaterEqual(self.stored("cueapi_executions_missed_total", 'reason="catch_up"'), 3)

        worker = Cue.objects.get(pk=self.create_cue(name="w", transport="worker", callback=None)["id"])
        Execution.objects.create(cue=worker, scheduled_for=now - timedelta(minutes=5), status="delivering", attempts=1,
                                 claimed_by_worker="w1", claimed_at=now - timedelta(minutes=5),
                                 lease_expires_at=now - timedelta(seconds=1))
        self.assertEqual(poller.expire_worker_leases(now=now), 1)
        self.assertEqual(self.stored("cueapi_worker_leases_expired_total"), 1)
        self.assertEqual(self.stored("cueapi_retries_scheduled_total", 'transport="worker"'), 1)

        Execution.objects.create(cue=cue, scheduled_for=now - timedelta(days=9), status="success",
                                 outcome_deadline_seconds=60, outcome_deadline_at=now - timedelta(seconds=1))
        self.assertEqual(poller.time_out_missing_outcomes(now=now), 1)
        self.assertEqual(self.stored("cueapi_outcome_timeouts_total"), 1)
