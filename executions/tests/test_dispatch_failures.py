"""Whatever goes wrong while sending ends as a recorded failed attempt, a row that keeps getting
cut off is not sent forever, and one user's backlog or slow handler can't take every seat."""

from datetime import timedelta

from django.test import override_settings
from django.utils import timezone

from accounts.models import User
from cueapi.testing import CueTestCase
from executions import dispatcher
from executions.models import DeliveryAttempt, DispatchOutbox, Execution
from executions.tests.test_delivery import deliver_all
from tests.receiver import Receiver


class DeliveryCrashTests(CueTestCase):
    def fire(self, receiver, **cue_fields):
        cue = self.create_cue(callback={"url": receiver.url}, **cue_fields)
        return cue, self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]

    def test_a_crash_while_preparing_the_request_is_a_recorded_failed_attempt(self):
        with Receiver() as receiver:
            cue, execution_id = self.fire(receiver, retry={"max_attempts": 2})
            # A secret the server never issues (a hand edit, a bad restore): signing raises.
            User.objects.filter(pk=self.alice.pk).update(webhook_secret="whsec_not*base64")
            with self.assertLogs("cueapi.engine", "ERROR") as logs:
                deliver_all()
        self.assertEqual(receiver.requests, [])
        execution = Execution.objects.get(pk=execution_id)
        self.assertEqual((execution.status, execution.attempts, execution.error_message),
                         ("retrying", 1, dispatcher.INTERNAL_ERROR))
        self.assertEqual(DeliveryAttempt.objects.get(execution=execution).result, "failed")
        self.assertTrue(DispatchOutbox.objects.get(execution=execution).dispatched_at)
        self.assertIn("delivery_crashed", logs.output[0])

    def test_a_row_cut_off_too_often_fails_for_good_without_another_send(self):
        with Receiver() as receiver:
            cue, execution_id = self.fire(receiver)
            # Each interrupted send (dispatcher killed mid-request) left the lease to lapse.
            DispatchOutbox.objects.update(dispatch_attempts=dispatcher.MAX_DISPATCHES)
            deliver_all()
        self.assertEqual(receiver.requests, [])
        execution = Execution.objects.get(pk=execution_id)
        self.assertEqual(execution.status, "failed")
        self.assertEqual(execution.error_message, dispatcher.GAVE_UP.format(n=dispatcher.MAX_DISPATCHES))

    def test_below_the_cap_a_lapsed_row_is_sent_again(self):
        with Receiver() as receiver:
            _, execution_id = self.fire(receiver)
            DispatchOutbox.objects.update(dispatch_attempts=dispatcher.MAX_DISPATCHES - 1)
            deliver_all()
        self.assertEqual(len(receiver.requests), 1)
        self.assertEqual(Execution.objects.get(pk=execution_id).status, "success")


@override_settings(CUEAPI_DISPATCH_PER_USER_IN_FLIGHT=3)
class FairClaimTests(CueTestCase):
    def backlog(self, key, count, name):
        cue = self.create_cue(key=key, name=name)
        for _ in range(count):
            self.assertEqual(self.post(f"/v1/cues/{cue['id']}/fire", key=key).status_code, 200)
        return cue

    def owners(self, ids):
        return list(DispatchOutbox.objects.filter(id__in=ids).order_by("id")
                    .values_list("execution__cue__user__email", flat=True))

    def test_one_users_backlog_does_not_go_first(self):
        self.backlog(self.alice_key, 10, "flood")  # older than bob's row
        self.backlog(self.bob_key, 1, "one")
        ids, _ = dispatcher.claim_outbox_rows(now=timezone.now() + timedelta(seconds=1), limit=2)
        self.assertEqual(sorted(self.owners(ids)), ["alice@example.org", "bob@example.org"])

    def test_a_user_never_has_more_than_the_cap_in_flight(self):
        self.backlog(self.alice_key, 10, "flood")
        now = timezone.now() + timedelta(seconds=1)
        first, _ = dispatcher.claim_outbox_rows(now=now, limit=16)
        self.assertEqual(len(first), 3)
        again, _ = dispatcher.claim_outbox_rows(now=now, limit=16)  # still in flight: nothing more
        self.assertEqual(again, [])
        self.backlog(self.bob_key, 1, "one")
        bobs, _ = dispatcher.claim_outbox_rows(now=timezone.now() + timedelta(seconds=1), limit=16)
        self.assertEqual(self.owners(bobs), ["bob@example.org"])
