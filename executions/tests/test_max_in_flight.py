"""`delivery.max_in_flight`: at most that many of a cue's webhooks in flight at once; the rest
wait in the outbox (not failed), and the cue's backlog doesn't hold up its owner's other cues.
(Two dispatcher processes on PostgreSQL: tests/test_max_in_flight_live.py.)"""

from datetime import timedelta

from django.utils import timezone

from cueapi.testing import CueTestCase
from cues.models import Cue
from executions import dispatcher
from executions.models import DispatchOutbox, Execution
from tests.receiver import Receiver


class MaxInFlightApiTests(CueTestCase):
    def test_it_is_null_by_default_and_kept_by_a_partial_patch(self):
        cue = self.create_cue()
        self.assertEqual(cue["delivery"], {"timeout_seconds": 30, "outcome_deadline_seconds": 0,
                                           "max_in_flight": None})
        r = self.patch(f"/v1/cues/{cue['id']}", {"delivery": {"max_in_flight": 5}})
        self.assertEqual(r.json()["delivery"]["max_in_flight"], 5)
        r = self.patch(f"/v1/cues/{cue['id']}", {"delivery": {"timeout_seconds": 10}})
        self.assertEqual(r.json()["delivery"], {"timeout_seconds": 10, "outcome_deadline_seconds": 0,
                                                "max_in_flight": 5})
        r = self.patch(f"/v1/cues/{cue['id']}", {"delivery": {"max_in_flight": None}})
        self.assertEqual(r.json()["delivery"]["max_in_flight"], None)
        self.assertEqual(self.create_cue(name="b", delivery={"max_in_flight": 1000})["delivery"]["max_in_flight"],
                         1000)

    def test_it_validates(self):
        # A wrong type is 422 too (#19), "5" and 5.0 included: a JSON integer (or null) only.
        for value in (0, 1001, "many", -1, "5", 5.0, True, 10**30, [1], {"n": 1}):
            r = self.post("/v1/cues", {"name": "x", "schedule": {"type": "recurring", "cron": "0 9 * * *"},
                                       "callback": {"url": "http://127.0.0.1:9/hook"},
                                       "delivery": {"max_in_flight": value}})
            error = self.assertError(r, 422, "validation_error")
            self.assertIn("body.delivery.max_in_flight", error["message"])


class MaxInFlightClaimTests(CueTestCase):
    def fire(self, cue, times):
        return [self.post(f"/v1/cues/{cue['id']}/fire").json()["id"] for _ in range(times)]

    def claim(self):
        return dispatcher.claim_outbox_rows(now=timezone.now(), limit=100)

    def test_only_the_cap_is_claimed_and_the_rest_waits(self):
        capped = self.create_cue(name="capped", delivery={"max_in_flight": 2})
        other = self.create_cue(name="other")
        self.fire(capped, 5)
        self.fire(other, 3)  # newer than the capped backlog: not held up by it
        ids, token = self.claim()
        claimed = DispatchOutbox.objects.filter(id__in=ids)
        self.assertEqual(claimed.filter(execution__cue_id=capped["id"]).count(), 2)
        self.assertEqual(claimed.filter(execution__cue_id=other["id"]).count(), 3)
        # The capped cue's oldest went first; the rest wait, pending, not failed.
        self.assertEqual(Execution.objects.filter(cue_id=capped["id"], status="pending").count(), 3)
        self.assertEqual(self.claim()[0], [])  # at its cap: nothing more
        self.assertIsNotNone(dispatcher.next_available(now=timezone.now()))  # locked rows' lease end
        self.assertGreater(dispatcher.next_available(now=timezone.now()), timezone.now())  # no spinning

    def test_a_recorded_delivery_frees_a_place(self):
        with Receiver() as receiver:
            capped = self.create_cue(name="capped", callback={"url": receiver.url}, delivery={"max_in_flight": 2})
            self.fire(capped, 5)
            ids, token = self.claim()
            self.assertEqual(len(ids), 2)
            dispatcher.deliver_outbox_row(ids[0], token)
            ids2, token2 = self.claim()
            self.assertEqual(len(ids2), 1)
            for row_id in ids[1:]:
                dispatcher.deliver_outbox_row(row_id, token)
            for row_id in ids2:
                dispatcher.deliver_outbox_row(row_id, token2)
            ids3, token3 = self.claim()
            self.assertEqual(len(ids3), 2)
            for row_id in ids3:
                dispatcher.deliver_outbox_row(row_id, token3)
        self.assertEqual(len(receiver.requests), 5)
        self.assertEqual(Execution.objects.filter(cue_id=capped["id"], status="success").count(), 5)

    def test_a_lapsed_lease_stops_counting(self):
        capped = self.create_cue(name="capped", delivery={"max_in_flight": 1})
        self.fire(capped, 2)
        ids, _ = self.claim()
        self.assertEqual(len(ids), 1)
        DispatchOutbox.objects.filter(id__in=ids).update(locked_until=timezone.now() - timedelta(seconds=1))
        # The dead holder's row is due again, and it is the one place the cap allows.
        self.assertEqual(self.claim()[0], ids)

    def test_raising_the_cap_applies_to_the_next_claim(self):
        capped = self.create_cue(name="capped", delivery={"max_in_flight": 1})
        self.fire(capped, 4)
        self.assertEqual(len(self.claim()[0]), 1)
        Cue.objects.filter(pk=capped["id"]).update(max_in_flight=3)
        self.assertEqual(len(self.claim()[0]), 2)
        Cue.objects.filter(pk=capped["id"]).update(max_in_flight=None)
        self.assertEqual(len(self.claim()[0]), 1)

    def test_the_guarded_step_drops_rows_picked_with_a_stale_count(self):
        # What a dispatcher that picked before another one's claim committed would hold.
        capped = self.create_cue(name="capped", delivery={"max_in_flight": 2})
        self.fire(capped, 4)
        now = timezone.now()
        stale, capped_rows = dispatcher._fair_pick(now=now, limit=100)
        self.assertEqual(len(stale), 2)
        claimed, _ = self.claim()  # another dispatcher takes the same two first
        self.assertEqual(sorted(claimed), sorted(stale))
        rest = list(DispatchOutbox.objects.exclude(id__in=claimed).values_list("id", flat=True))
        rows = {row_id: capped["id"] for row_id in rest}
        self.assertEqual(dispatcher._within_cue_caps(rest, rows, timezone.now()), [])
        Cue.objects.filter(pk=capped["id"]).update(max_in_flight=3)
        self.assertEqual(dispatcher._within_cue_caps(rest, rows, timezone.now()), sorted(rest)[:1])
