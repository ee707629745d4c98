"""`idempotency_key` on POST /v1/cues/{id}/fire: one execution per key and cue for 24 h.
Several processes racing with one key: tests/test_fire_idempotency_race.py."""

import datetime
from unittest import mock

import time_machine
from django.core.management import call_command

from accounts.models import User
from accounts.selectors import user_executions_this_month
from cueapi.testing import CueTestCase
from executions import firing
from executions.models import DispatchOutbox, Execution, FireIdempotencyKey

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
CONFLICT = "This idempotency_key was already used with a different request body"


@time_machine.travel(NOW, tick=False)
class FireIdempotencyTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue(payload={"task": "report"})
        self.url = f"/v1/cues/{self.cue['id']}/fire"

    def fire(self, body=None, *, url=None, status=200, **kwargs):
        r = self.post(url or self.url, body, **kwargs)
        self.assertEqual(r.status_code, status, r.content)
        return r.json()

    def assertCounts(self, executions):
        """Executions, outbox rows and the month's usage all agree."""
        self.assertEqual(Execution.objects.count(), executions)
        self.assertEqual(DispatchOutbox.objects.count(), executions)
        self.assertEqual(user_executions_this_month(user=self.alice), executions)

    def test_the_same_key_and_body_answers_with_the_same_execution(self):
        body = {"idempotency_key": "k-1", "payload_override": {"n": 1}}
        first = self.fire(body)
        with time_machine.travel(NOW + datetime.timedelta(hours=1), tick=False):
            again = self.fire(body)
        self.assertEqual(again, first)
        self.assertEqual(set(again), {"id", "cue_id", "scheduled_for", "status", "triggered_by"})
        self.assertEqual(again["scheduled_for"], "2026-11-24T12:00:00+00:00")
        self.assertCounts(1)
        row = FireIdempotencyKey.objects.get()
        self.assertEqual((row.cue_id, row.key, str(row.execution_id), row.created_at),
                         (self.cue["id"], "k-1", first["id"], NOW))

    def test_the_answer_shows_the_executions_current_status(self):
        first = self.fire({"idempotency_key": "k-1"})
        Execution.objects.filter(pk=first["id"]).update(status="success")
        self.assertEqual(self.fire({"idempotency_key": "k-1"}), {**first, "status": "success"})

    def test_key_order_and_whitespace_do_not_matter(self):
        first = self.fire('{"idempotency_key": "k", "payload_override": {"a": 1, "b": [1, 2]}}')
        again = self.fire('{"payload_override":{"b":[1,2],"a":1},\n  "idempotency_key":"k"}')
        self.assertEqual(again["id"], first["id"])
        self.assertCounts(1)

    def test_another_body_with_the_same_key_is_409(self):
        self.fire({"idempotency_key": "k", "payload_override": {"a": 1}})
        for body in ({"idempotency_key": "k", "payload_override": {"a": 2}},
                     {"idempotency_key": "k"},
                     {"idempotency_key": "k", "payload_override": {"a": 1}, "merge_strategy": "replace"},
                     # Keys this server ignores are part of the body all the same.
                     {"idempotency_key": "k", "payload_override": {"a": 1}, "exit_criteria": ["max"]}):
            with self.subTest(body=body):
                self.assertError(self.post(self.url, body), 409, "idempotency_key_conflict", CONFLICT)
        self.assertCounts(1)

    def test_a_send_at_is_answered_as_the_first_time(self):
        body = {"idempotency_key": "k", "send_at": "2099-01-01T00:00:00+02:00"}
        first = self.fire(body)
        self.assertEqual(first["scheduled_for"], "2099-01-01T00:00:00+02:00")
        self.assertEqual(self.fire(body), first)
        # A send_at in the past fired at once: the answer is the time it fired.
        past = {"idempotency_key": "p", "send_at": "2020-01-01T00:00:00Z"}
        first = self.fire(past)
        self.assertEqual(first["scheduled_for"], "2026-11-24T12:00:00+00:00")
        self.assertEqual(self.fire(past), first)
        self.assertCounts(2)

    def test_keys_are_per_cue(self):
        other = self.create_cue(name="other")
        a = self.fire({"idempotency_key": "same"})
        b = self.fire({"idempotency_key": "same"}, url=f"/v1/cues/{other['id']}/fire")
        self.assertNotEqual(a["id"], b["id"])
        self.assertEqual(b["cue_id"], other["id"])
        self.assertCounts(2)

    def test_different_keys_and_no_key_each_fire(self):
        ids = {self.fire({"idempotency_key": "a"})["id"], self.fire({"idempotency_key": "b"})["id"],
               self.fire()["id"], self.fire({"idempotency_key": None})["id"]}
        self.assertEqual(len(ids), 4)
        self.assertCounts(4)
        self.assertEqual(FireIdempotencyKey.objects.count(), 2)

    def test_bad_keys_are_422(self):
        cases = [("", "String should have at least 1 character"),
                 ("k" * 257, "String should have at most 256 characters"),
                 (5, "Input should be a valid string"),
                 ("a\x00b", "String should not contain NUL characters")]
        for key, message in cases:
            with self.subTest(key=key):
                self.assertError(self.post(self.url, {"idempotency_key": key}), 422, "validation_error",
                                 f"body.idempotency_key: {message}")
        self.assertCounts(0)
        self.assertEqual(self.fire({"idempotency_key": "k" * 256})["cue_id"], self.cue["id"])

    def test_bobs_cue_is_404_whatever_the_key(self):
        self.fire({"idempotency_key": "k"})
        for body in ({"idempotency_key": "k"}, {"idempotency_key": "new"}):
            self.assertError(self.post(self.url, body, key=self.bob_key), 404, "cue_not_found")
        self.assertError(self.post("/v1/cues/cue_nope00000000/fire", {"idempotency_key": "k"}), 404, "cue_not_found")
        self.assertCounts(1)
        self.assertEqual(user_executions_this_month(user=self.bob), 0)

    def test_bob_may_use_the_same_key_on_his_own_cue(self):
        first = self.fire({"idempotency_key": "k"})
        bobs = self.create_cue(key=self.bob_key)
        theirs = self.fire({"idempotency_key": "k"}, url=f"/v1/cues/{bobs['id']}/fire", key=self.bob_key)
        self.assertNotEqual(theirs["id"], first["id"])

    def test_the_key_is_looked_up_before_the_other_checks(self):
        first = self.fire({"idempotency_key": "k"})
        # The cue now demands an override and the month is full: a repeat is still the same fire.
        self.patch(f"/v1/cues/{self.cue['id']}", {"require_payload_override": True})
        User.objects.filter(pk=self.alice.pk).update(monthly_execution_limit=1)
        self.assertEqual(self.fire({"idempotency_key": "k"}), first)
        self.assertError(self.post(self.url, {"idempotency_key": "new", "payload_override": {}}), 403,
                         "execution_limit_exceeded")
        self.assertCounts(1)

    def test_a_refused_fire_leaves_its_key_unused(self):
        self.patch(f"/v1/cues/{self.cue['id']}", {"required_payload_keys": ["text"]})
        self.assertError(self.post(self.url, {"idempotency_key": "k"}), 400, "missing_required_payload_keys")
        self.assertEqual(FireIdempotencyKey.objects.count(), 0)
        self.assertError(self.post(self.url, {"idempotency_key": "k", "send_at": "2099-01-01T00:00:00Z"}), 400,
                         "missing_required_payload_keys")
        self.fire({"idempotency_key": "k", "payload_override": {"text": "hi"}})
        self.assertCounts(1)

    def test_a_duplicate_send_at_leaves_its_key_unused(self):
        self.fire({"send_at": "2099-01-01T00:00:00Z"})
        self.assertError(self.post(self.url, {"idempotency_key": "k", "send_at": "2099-01-01T00:00:00Z"}), 409,
                         "duplicate_execution")
        self.assertEqual(FireIdempotencyKey.objects.count(), 0)
        self.assertCounts(1)

    def test_after_24_hours_the_key_fires_again(self):
        body = {"idempotency_key": "k"}
        first = self.fire(body)
        FireIdempotencyKey.objects.update(created_at=NOW - datetime.timedelta(hours=23, minutes=59))
        self.assertEqual(self.fire(body)["id"], first["id"])
        FireIdempotencyKey.objects.update(created_at=NOW - datetime.timedelta(hours=24))
        second = self.fire(body)
        self.assertNotEqual(second["id"], first["id"])
        self.assertCounts(2)
        row = FireIdempotencyKey.objects.get()  # the expired row was replaced
        self.assertEqual((str(row.execution_id), row.created_at), (second["id"], NOW))
        self.assertEqual(self.fire(body)["id"], second["id"])
        # An expired key may come with another body too.
        FireIdempotencyKey.objects.update(created_at=NOW - datetime.timedelta(days=3))
        self.fire({"idempotency_key": "k", "payload_override": {"x": 1}})
        self.assertCounts(3)

    def test_the_same_key_from_a_lost_race_answers_with_the_winner(self):
        """The interleaving the unique (cue, key) is for: a fire finds no row, then another
        fire with the key commits before this one inserts. Here the winner's row is in place
        and the first lookup is made to miss it; tests/test_fire_idempotency_race.py is the
        real race."""
        winner = self.fire({"idempotency_key": "k"})
        real = firing._idempotent_answer
        with mock.patch.object(firing, "_idempotent_answer", side_effect=_first_call_misses(real)) as lookup:
            self.assertEqual(self.fire({"idempotency_key": "k"}), winner)
            self.assertCounts(1)  # the loser's execution and usage were rolled back
            lookup.side_effect = _first_call_misses(real)
            self.assertError(self.post(self.url, {"idempotency_key": "k", "payload_override": {}}), 409,
                             "idempotency_key_conflict", CONFLICT)
        self.assertCounts(1)
        self.assertEqual(FireIdempotencyKey.objects.count(), 1)

    def test_deleting_the_cue_deletes_its_keys(self):
        self.fire({"idempotency_key": "k"})
        self.delete(f"/v1/cues/{self.cue['id']}")
        self.assertEqual(FireIdempotencyKey.objects.count(), 0)


def _first_call_misses(real):
    calls = []

    def lookup(**kwargs):
        calls.append(1)
        return None if len(calls) == 1 else real(**kwargs)

    return lookup


class PruneTests(CueTestCase):
    def make_keys(self, count, created_at):
        cue = self.create_cue(name=f"c{created_at:%H%M%S}")
        for i in range(count):
            execution = Execution.objects.create(cue_id=cue["id"], scheduled_for=NOW + datetime.timedelta(seconds=i))
            FireIdempotencyKey.objects.create(cue_id=cue["id"], key=f"k{i}", body_sha256="0" * 64,
                                              execution=execution, created_at=created_at)

    def test_keys_older_than_24_hours_are_pruned_in_batches(self):
        self.make_keys(5, NOW - datetime.timedelta(hours=25))
        self.make_keys(2, NOW - datetime.timedelta(hours=23))
        self.assertEqual(firing.delete_expired_idempotency_keys(now=NOW, batch=2), 5)
        self.assertEqual(FireIdempotencyKey.objects.count(), 2)
        self.assertEqual(Execution.objects.count(), 7)  # the executions stay
        self.assertEqual(firing.delete_expired_idempotency_keys(now=NOW), 0)

    def test_the_poller_prunes_them(self):
        self.make_keys(3, datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
        self.make_keys(1, datetime.datetime.now(datetime.timezone.utc))
        call_command("run_poller", once=True)
        self.assertEqual(FireIdempotencyKey.objects.count(), 1)
