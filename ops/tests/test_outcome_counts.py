"""The dashboard counts outcomes, not deliveries: handler-reported failures (a webhook's 2xx
reply `{"success": false}` through a real receiver and the dispatcher, a worker's outcome
through the API), failed verifications and outcome timeouts are failures on the overview,
in "Latest failures", in the execution list's verdict filter and in /metrics; a 2xx with no
outcome expected is its own state."""

from datetime import timedelta

from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from accounts.models import User
from accounts.services import usage_increment
from alerts.models import Alert
from cueapi import metrics
from cueapi.models import MetricSample
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions import poller
from executions.models import Execution
from executions.tests.test_delivery import deliver_all
from tests.receiver import Receiver

TOKEN = "metrics-token-for-tests"


@override_settings(CUEAPI_METRICS_TOKEN=TOKEN)
class OutcomeCountsTests(CueTestCase):
    def setUp(self):
        super().setUp()
        metrics.discard_pending()
        operator = User.objects.create_superuser("ops@example.org", "correct horse battery")
        self.client.force_login(operator)

    def fire_webhook(self, name, reply, times=1, **cue_fields):
        with Receiver([(200, reply)]) as receiver:
            cue = self.create_cue(name=name, callback={"url": receiver.url}, **cue_fields)
            for _ in range(times):
                self.assertEqual(self.post(f"/v1/cues/{cue['id']}/fire").status_code, 200)
                deliver_all()
            self.assertEqual(len(receiver.requests), times)
        return cue

    def run_worker_job(self, cue, outcome):
        execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
        claim = self.post(f"/v1/executions/{execution_id}/claim", {"worker_id": "w1"})
        self.assertEqual(claim.status_code, 200, claim.content)
        reported = self.post(f"/v1/executions/{execution_id}/outcome", outcome)
        self.assertEqual(reported.status_code, 200, reported.content)

    def populate(self):
        """What the handlers report: 6 failures, 3 successes, 1 plain delivery (no outcome
        expected), each by a real transport."""
        self.fire_webhook("disk-cleanup", {"success": False, "error": "disk full"}, times=3)
        self.fire_webhook("report", {"success": True, "result": "done"}, times=2)
        self.fire_webhook("ping", b"ok")
        self.fire_webhook("evidence", {"success": True}, verification={"mode": "require_external_id"})
        self.fire_webhook("slow-report", b"ok", delivery={"outcome_deadline_seconds": 1})
        self.assertEqual(poller.time_out_missing_outcomes(now=timezone.now() + timedelta(seconds=5)), 1)
        worker_cue = self.create_cue(name="worker-job", transport="worker", callback=None,
                                     payload={"task": "crunch"})
        self.run_worker_job(worker_cue, {"success": False, "error": "out of memory"})
        self.run_worker_job(worker_cue, {"success": True, "result": "ok"})
        metrics.flush(force=True)

    def scrape(self):
        response = self.client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        self.assertEqual(response.status_code, 200)
        return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                for family in text_string_to_metric_families(response.content.decode())
                for sample in family.samples}

    def test_the_overview_counts_what_the_handlers_reported(self):
        self.populate()
        page = self.client.get("/admin/")
        self.assertEqual(page.status_code, 200)
        o = page.context["overview"]
        self.assertAlmostEqual(o["failure_rate_24h"], 6 / 10)
        self.assertEqual(o["verdicts_24h"], {"failed": 6, "succeeded": 3, "delivered": 1})
        self.assertContains(page, "60 %")
        self.assertContains(page, "delivered, no outcome")
        failures = page.context["recent_failures"]
        self.assertEqual(len(failures), 6)
        self.assertEqual(sorted({e.cue.name for e in failures}),
                         ["disk-cleanup", "evidence", "slow-report", "worker-job"])
        table = page.content.decode().split('id="recent-failures"')[1]
        for text in ("failed at", "disk full", "out of memory", "verification_failed",
                     "No outcome reported within 1s", " ago"):
            self.assertIn(text, table)

    def test_the_execution_list_filters_by_verdict(self):
        self.populate()
        expected = {"failed": 6, "succeeded": 3, "delivered": 1, "awaiting_outcome": 0, "in_progress": 0}
        for verdict, n in expected.items():
            page = self.client.get(f"/admin/executions/execution/?verdict={verdict}")
            self.assertEqual(page.status_code, 200)
            self.assertEqual(page.context["cl"].result_count, n, verdict)
        page = self.client.get("/admin/executions/execution/?verdict=failed&cue__callback_transport__exact=webhook")
        self.assertEqual(page.context["cl"].result_count, 5)
        self.assertContains(page, "disk full")  # the handler's own error in the "why" column
        self.assertContains(page, '<td class="field-verdict">failed</td>', count=5)

    def test_metrics_count_outcomes(self):
        self.populate()
        samples = self.scrape()
        for verdict, n in {"failed": 6, "succeeded": 3, "delivered": 1}.items():
            self.assertEqual(samples[("cueapi_execution_verdicts_last_24h", (("verdict", verdict),))], n)
        results = {(labels[0][1], labels[1][1]): value for (name, labels), value in samples.items()
                   if name == "cueapi_execution_results_total"}
        self.assertEqual(results, {("failed", "webhook"): 5, ("failed", "worker"): 1,
                                   ("succeeded", "webhook"): 2, ("succeeded", "worker"): 1,
                                   ("delivered", "webhook"): 1})
        # The delivery-status series are kept as they were.
        self.assertEqual(samples[("cueapi_webhook_deliveries_total", (("result", "delivered"),))], 8)

    def test_alerts_name_the_cue_and_its_last_error(self):
        self.populate()
        timeout = Alert.objects.get(alert_type="outcome_timeout")
        self.assertIn("Cue 'slow-report'", timeout.message)
        self.assertIn("Last error: No outcome reported within 1s of delivery", timeout.message)
        verification = Alert.objects.get(alert_type="verification_failed")
        self.assertIn("Cue 'evidence'", verification.message)
        self.assertIn("required evidence missing (verification mode require_external_id)", verification.message)
        streak = Alert.objects.get(alert_type="consecutive_failures")
        self.assertEqual(streak.message, f"Cue 'disk-cleanup' ({streak.cue_id}) has 3 consecutive failed "
                                         "executions. Last error: disk full")


class ResultCountersTests(CueTestCase):
    """cueapi_execution_results_total for the verdicts the poller reaches."""

    def setUp(self):
        super().setUp()
        metrics.discard_pending()

    def results(self):
        metrics.flush(force=True)
        return dict(MetricSample.objects.filter(name="cueapi_execution_results_total").values_list("labels", "value"))

    def test_missed_and_refused_slots_are_counted(self):
        now = timezone.now()
        cue = self.create_cue(catch_up="none", schedule={"type": "recurring", "cron": "0 * * * *"})
        Cue.objects.filter(pk=cue["id"]).update(next_run=now - timedelta(hours=3, minutes=1))
        poller.fire_due_cues(now=now)
        missed = Execution.objects.filter(cue_id=cue["id"], status="missed").count()
        self.assertGreaterEqual(missed, 3)

        worker = self.create_cue(name="w", transport="worker", callback=None, payload={"task": "t"})
        Execution.objects.create(cue_id=worker["id"], scheduled_for=now - timedelta(minutes=20))
        self.assertEqual(poller.miss_unclaimed_worker_executions(now=now), 1)

        # Over the monthly limit: the slot is recorded as failed, never sent.
        User.objects.filter(pk=self.alice.pk).update(monthly_execution_limit=1)  # (0 is "no limit")
        usage_increment(user_id=self.alice.pk, moment=now)  # and that one is used
        over = self.create_cue(name="over")
        Cue.objects.filter(pk=over["id"]).update(next_run=now)
        poller.fire_due_cues(now=now)
        self.assertEqual(Execution.objects.filter(cue_id=over["id"], status="failed").count(), 1)

        self.assertEqual(self.results(), {'result="missed",transport="webhook"': missed,
                                          'result="missed",transport="worker"': 1,
                                          'result="failed",transport="webhook"': 1})
