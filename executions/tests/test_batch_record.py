"""The dispatcher's batch path (claim N rows, send them, record N results in a few statements)
and the poller's batch advance: the same end state as one row at a time, and when something
changed under a batch, the careful one-at-a-time path sorts it out."""

from datetime import timedelta
from unittest import mock

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.test import override_settings
from django.utils import timezone

from cueapi.testing import CueTestCase
from cues.models import Cue
from executions import dispatcher, lifecycle, poller
from executions.delivery import DeliveryResult
from executions.models import DeliveryAttempt, DispatchOutbox, Execution
from tests.receiver import Receiver


def ok(status=200, text="ok"):
    return DeliveryResult(delivered=True, http_status=status, response_text=text, duration_ms=7)


@override_settings(CUEAPI_DISPATCH_PER_USER_IN_FLIGHT=100)
class RecordDeliveriesTests(CueTestCase):
    def claim(self, count, **cue_fields):
        """`count` fired executions of one-time cues (unless cue_fields say otherwise), claimed."""
        for index in range(count):
            cue = self.create_cue(name=f"job-{index}", **cue_fields)
            self.post(f"/v1/cues/{cue['id']}/fire")
        ids, token = dispatcher.claim_outbox_rows(now=timezone.now() + timedelta(seconds=1), limit=100)
        deliveries = dispatcher.load_deliveries(ids, token)
        self.assertEqual(len(deliveries), count)
        return deliveries

    def test_a_batch_of_plain_answers_is_recorded_in_a_few_statements(self):
        deliveries = self.claim(10)
        for index, delivery in enumerate(deliveries):
            delivery.result = ok(status=200 + index % 2, text=f"reply {index}")
        with CaptureQueriesContext(connection) as queries:
            dispatcher.record_deliveries(deliveries, now=timezone.now())
        self.assertLessEqual(len(queries), 10)  # one at a time it was ~6 per delivery
        for index, delivery in enumerate(deliveries):
            execution = Execution.objects.get(pk=delivery.execution.pk)
            self.assertEqual(execution.status, Execution.Status.SUCCESS)
            self.assertEqual(execution.http_status, 200 + index % 2)
            self.assertEqual(execution.response_body, f"reply {index}")
            self.assertEqual(execution.attempts, 1)
            self.assertIsNotNone(execution.delivered_at)
            attempt = DeliveryAttempt.objects.get(execution=execution)
            self.assertEqual((attempt.attempt, attempt.result, attempt.http_status, attempt.duration_ms),
                             (1, DeliveryAttempt.Result.DELIVERED, 200 + index % 2, 7))
            self.assertIsNotNone(DispatchOutbox.objects.get(pk=delivery.row_id).dispatched_at)
        # Fired by hand, the cues are recurring: each ran once and stays active.
        for cue in Cue.objects.all():
            self.assertEqual((cue.run_count, cue.status), (1, Cue.Status.ACTIVE))
            self.assertIsNotNone(cue.last_run)

    def test_one_time_cues_complete_and_outcome_deadlines_start(self):
        at = (timezone.now() + timedelta(hours=1)).isoformat()
        deliveries = self.claim(3, schedule={"type": "once", "at": at},
                                delivery={"outcome_deadline_seconds": 120})
        for delivery in deliveries:
            delivery.result = ok()
        now = timezone.now()
        dispatcher.record_deliveries(deliveries, now=now)
        for delivery in deliveries:
            execution = Execution.objects.get(pk=delivery.execution.pk)
            self.assertEqual(execution.outcome_deadline_seconds, 120)
            self.assertEqual(execution.outcome_deadline_at, now + timedelta(seconds=120))
            self.assertEqual(Cue.objects.get(pk=delivery.cue.pk).status, Cue.Status.COMPLETED)

    def test_a_cue_paused_meanwhile_stays_paused(self):
        at = (timezone.now() + timedelta(hours=1)).isoformat()
        deliveries = self.claim(2, schedule={"type": "once", "at": at})
        Cue.objects.filter(pk=deliveries[0].cue.pk).update(status=Cue.Status.PAUSED)
        for delivery in deliveries:
            delivery.result = ok()
        dispatcher.record_deliveries(deliveries, now=timezone.now())
        self.assertEqual(Cue.objects.get(pk=deliveries[0].cue.pk).status, Cue.Status.PAUSED)
        self.assertEqual(Cue.objects.get(pk=deliveries[1].cue.pk).status, Cue.Status.COMPLETED)

    def test_an_execution_that_moved_on_sends_the_batch_down_the_careful_path(self):
        deliveries = self.claim(4)
        moved = deliveries[1].execution.pk
        Execution.objects.filter(pk=moved).update(status=Execution.Status.FAILED, error_message="by hand")
        for delivery in deliveries:
            delivery.result = ok()
        dispatcher.record_deliveries(deliveries, now=timezone.now())
        self.assertEqual(Execution.objects.get(pk=moved).error_message, "by hand")
        self.assertFalse(DeliveryAttempt.objects.filter(execution_id=moved).exists())
        for delivery in deliveries[:1] + deliveries[2:]:
            self.assertEqual(Execution.objects.get(pk=delivery.execution.pk).status, Execution.Status.SUCCESS)
            self.assertEqual(DeliveryAttempt.objects.filter(execution_id=delivery.execution.pk).count(), 1)

    def test_a_row_another_dispatcher_took_over_is_not_recorded_by_us(self):
        deliveries = self.claim(3)
        lost = deliveries[0]
        DispatchOutbox.objects.filter(pk=lost.row_id).update(lock_token=None)
        for delivery in deliveries:
            delivery.result = ok()
        dispatcher.record_deliveries(deliveries, now=timezone.now())
        self.assertEqual(Execution.objects.get(pk=lost.execution.pk).status, Execution.Status.DELIVERING)
        self.assertFalse(DeliveryAttempt.objects.filter(execution_id=lost.execution.pk).exists())
        for delivery in deliveries[1:]:
            self.assertEqual(Execution.objects.get(pk=delivery.execution.pk).status, Execution.Status.SUCCESS)

    def test_failures_and_outcome_replies_beside_plain_answers(self):
        deliveries = self.claim(3)
        deliveries[0].result = ok()
        deliveries[1].result = DeliveryResult(delivered=False, http_status=500, error="boom", duration_ms=3)
        deliveries[2].result = DeliveryResult(delivered=True, http_status=200, response_text="{}", duration_ms=3,
                                              reported_outcome={"success": False, "error": "disk full"})
        dispatcher.record_deliveries(deliveries, now=timezone.now())
        statuses = [Execution.objects.get(pk=d.execution.pk) for d in deliveries]
        self.assertEqual(statuses[0].status, Execution.Status.SUCCESS)
        self.assertEqual((statuses[1].status, statuses[1].error_message), (Execution.Status.RETRYING, "boom"))
        self.assertEqual((statuses[2].status, statuses[2].outcome_state), (Execution.Status.SUCCESS, "reported_failure"))

    def test_two_executions_of_one_cue_in_a_batch_count_two_runs(self):
        cue = self.create_cue()
        self.post(f"/v1/cues/{cue['id']}/fire")
        self.post(f"/v1/cues/{cue['id']}/fire", {"payload_override": {"n": 2}})
        ids, token = dispatcher.claim_outbox_rows(now=timezone.now() + timedelta(seconds=1), limit=100)
        deliveries = dispatcher.load_deliveries(ids, token)
        self.assertEqual(len(deliveries), 2)
        for delivery in deliveries:
            delivery.result = ok()
        dispatcher.record_deliveries(deliveries, now=timezone.now())
        self.assertEqual(Cue.objects.get(pk=cue["id"]).run_count, 2)

    def test_a_row_whose_recording_fails_does_not_lose_the_others(self):
        deliveries = self.claim(2)
        deliveries[0].result = DeliveryResult(delivered=False, http_status=500, error="boom", duration_ms=1)
        deliveries[0].cue.retry_max_attempts = "not a number"  # a bug in one row's recording
        deliveries[1].result = DeliveryResult(delivered=False, http_status=500, error="boom", duration_ms=1)
        with self.assertLogs("cueapi.engine", "ERROR") as logs:
            dispatcher.record_deliveries(deliveries, now=timezone.now())
        self.assertIn("record_failed", logs.output[0])
        self.assertEqual(Execution.objects.get(pk=deliveries[0].execution.pk).status, Execution.Status.DELIVERING)
        self.assertEqual(Execution.objects.get(pk=deliveries[1].execution.pk).status, Execution.Status.RETRYING)

    def test_a_batch_that_fails_to_record_is_recorded_row_by_row(self):
        deliveries = self.claim(3)
        for delivery in deliveries:
            delivery.result = ok()
        with mock.patch.object(lifecycle, "webhooks_delivered", side_effect=RuntimeError("a bug")), \
                self.assertLogs("cueapi.engine", "ERROR") as logs:
            dispatcher.record_deliveries(deliveries, now=timezone.now())
        self.assertIn("batch_record_failed", logs.output[0])
        for delivery in deliveries:
            self.assertEqual(Execution.objects.get(pk=delivery.execution.pk).status, Execution.Status.SUCCESS)
            self.assertEqual(DeliveryAttempt.objects.filter(execution_id=delivery.execution.pk).count(), 1)

    def test_sending_touches_no_database(self):
        with Receiver() as receiver:
            (delivery,) = self.claim(1, callback={"url": receiver.url})
            with CaptureQueriesContext(connection) as queries:
                dispatcher.send_delivery(delivery)
        self.assertEqual(len(queries), 0)
        self.assertTrue(delivery.result.delivered)
        self.assertEqual(len(receiver.requests), 1)


class PollerBatchTests(CueTestCase):
    def test_a_batch_advances_each_cue_to_its_own_next_run(self):
        # At :12 the three crons' next slots differ (from :55 on, */5 and hourly would share one).
        now = timezone.now().replace(minute=12, second=0, microsecond=0)
        crons = ["*/5 * * * *", "0 * * * *", "30 2 * * *"]
        for index, cron in enumerate(crons):
            self.create_cue(name=f"c{index}", schedule={"type": "recurring", "cron": cron, "timezone": "UTC"})
        Cue.objects.update(next_run=now - timedelta(seconds=1))
        with CaptureQueriesContext(connection) as queries:
            self.assertEqual(poller.fire_due_cues(now=now), 3)
        updates = [q for q in queries.captured_queries if q["sql"].startswith('UPDATE "cues')]
        self.assertEqual(len(updates), 1)
        for cue in Cue.objects.all():
            self.assertGreater(cue.next_run, now)
            self.assertEqual(cue.fired_count, 1)
            self.assertEqual(Execution.objects.filter(cue=cue).count(), 1)
        next_runs = {cue.name: cue.next_run for cue in Cue.objects.all()}
        self.assertEqual(len(set(next_runs.values())), 3)

    def test_a_cue_changed_under_the_batch_is_left_and_the_others_fire(self):
        now = timezone.now()
        for index in range(3):
            self.create_cue(name=f"c{index}")
        Cue.objects.update(next_run=now - timedelta(seconds=1))
        changed = Cue.objects.order_by("pk").first()
        plans = [(cue, *poller._plan(cue, now)) for cue in Cue.objects.order_by("pk")]
        Cue.objects.filter(pk=changed.pk).update(next_run=now + timedelta(days=1))  # a PATCH meanwhile
        with self.assertRaises(poller._CueChanged), transaction.atomic():  # rolled back, as in the poller
            poller._advance(plans, now)
        advanced = [plan for plan in plans if poller._advance_one(plan, now)]
        self.assertEqual([plan[0].pk for plan in advanced], [plan[0].pk for plan in plans[1:]])
        self.assertEqual(Cue.objects.get(pk=changed.pk).next_run, now + timedelta(days=1))


class NulInRepliesTests(CueTestCase):
    """PostgreSQL can't store NUL: a reply carrying one must still be recorded (once), not
    fail to record and be sent again and again."""

    def test_a_reply_with_nul_is_recorded(self):
        reply = b'{"success": true, "result": "a\\u0000b", "metadata": {"k\\u0000": ["\\u0000"]}}'
        with Receiver(responses=((200, reply),)) as receiver:
            cue = self.create_cue(callback={"url": receiver.url})
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
            ids, token = dispatcher.claim_outbox_rows(now=timezone.now() + timedelta(seconds=1), limit=10)
            result = dispatcher.deliver_outbox_row(ids[0], token)
        self.assertTrue(result.delivered)
        execution = Execution.objects.get(pk=execution_id)
        self.assertEqual((execution.status, execution.outcome_state), (Execution.Status.SUCCESS, "reported_success"))
        self.assertEqual(execution.outcome_result, "a\ufffdb")
        self.assertEqual(execution.outcome_metadata, {"k\ufffd": ["\ufffd"]})
        self.assertEqual(len(receiver.requests), 1)

    def test_a_plain_reply_with_nul_is_recorded(self):
        with Receiver(responses=((200, b"ok\x00"),)) as receiver:
            cue = self.create_cue(callback={"url": receiver.url})
            execution_id = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
            ids, token = dispatcher.claim_outbox_rows(now=timezone.now() + timedelta(seconds=1), limit=10)
            dispatcher.deliver_outbox_row(ids[0], token)
        execution = Execution.objects.get(pk=execution_id)
        self.assertEqual((execution.status, execution.response_body), (Execution.Status.SUCCESS, "ok\ufffd"))
