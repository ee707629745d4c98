"""A cue's `require_payload_override` and `required_payload_keys` on POST /v1/cues/{id}/fire."""

import datetime

import time_machine

from accounts.selectors import user_executions_this_month
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions import poller
from executions.models import DispatchOutbox, Execution

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


@time_machine.travel(NOW, tick=False)
class FireRequiredPayloadTests(CueTestCase):
    def fire(self, cue, body=None, **kwargs):
        return self.post(f"/v1/cues/{cue['id']}/fire", body, **kwargs)

    def assertNothingCreated(self):
        self.assertEqual(Execution.objects.count(), 0)
        self.assertEqual(DispatchOutbox.objects.count(), 0)
        self.assertEqual(user_executions_this_month(user=self.alice), 0)

    def test_a_fire_without_override_is_400_when_one_is_required(self):
        cue = self.create_cue(payload={"task": "t"}, require_payload_override=True)
        message = "This cue requires payload_override on every fire"
        self.assertError(self.fire(cue), 400, "payload_override_required", message)
        self.assertError(self.fire(cue, {}), 400, "payload_override_required", message)
        self.assertError(self.fire(cue, {"payload_override": None}), 400, "payload_override_required", message)
        self.assertError(self.fire(cue, {"send_at": "2099-01-01T00:00:00Z"}), 400, "payload_override_required")
        self.assertNothingCreated()

    def test_a_fire_with_override_passes(self):
        cue = self.create_cue(payload={"task": "t"}, require_payload_override=True)
        r = self.fire(cue, {"payload_override": {"text": "hi"}})
        self.assertEqual(r.status_code, 200, r.content)
        self.assertEqual(Execution.objects.get(pk=r.json()["id"]).payload, {"task": "t", "text": "hi"})
        # An empty override is still an override.
        with time_machine.travel(NOW + datetime.timedelta(seconds=1), tick=False):
            self.assertEqual(self.fire(cue, {"payload_override": {}}).status_code, 200)
        self.assertEqual(user_executions_this_month(user=self.alice), 2)

    def test_missing_keys_are_400_and_named(self):
        cue = self.create_cue(payload={"task": "t"}, required_payload_keys=["channel", "task", "text"])
        self.assertError(self.fire(cue), 400, "missing_required_payload_keys",
                         "Payload is missing required keys: channel, text")
        self.assertError(self.fire(cue, {"payload_override": {"channel": "#ops"}}), 400,
                         "missing_required_payload_keys", "Payload is missing required keys: text")
        # replace: the cue's own payload no longer counts.
        self.assertError(self.fire(cue, {"payload_override": {"channel": "#ops", "text": "hi"},
                                         "merge_strategy": "replace"}),
                         400, "missing_required_payload_keys", "Payload is missing required keys: task")
        self.assertNothingCreated()

    def test_the_resolved_payload_is_what_counts(self):
        cue = self.create_cue(payload={"task": "t"}, required_payload_keys=["channel", "text"])
        merged = self.fire(cue, {"payload_override": {"channel": "#ops", "text": "hi"}})
        self.assertEqual(merged.status_code, 200, merged.content)
        self.assertEqual(Execution.objects.get(pk=merged.json()["id"]).payload,
                         {"task": "t", "channel": "#ops", "text": "hi"})
        with time_machine.travel(NOW + datetime.timedelta(seconds=1), tick=False):
            replaced = self.fire(cue, {"payload_override": {"channel": "#ops", "text": None},
                                       "merge_strategy": "replace"})
        self.assertEqual(replaced.status_code, 200, replaced.content)  # a key with a null value is present
        # Without an override the cue's own payload is checked.
        complete = self.create_cue(name="complete", payload={"channel": "#ops", "text": "x"},
                                   required_payload_keys=["channel", "text"])
        self.assertEqual(self.fire(complete).status_code, 200)

    def test_an_empty_list_requires_nothing(self):
        cue = self.create_cue(required_payload_keys=[])
        self.assertEqual(self.fire(cue).status_code, 200)

    def test_both_at_once(self):
        cue = self.create_cue(require_payload_override=True, required_payload_keys=["text"])
        self.assertError(self.fire(cue), 400, "payload_override_required")
        self.assertError(self.fire(cue, {"payload_override": {"x": 1}}), 400, "missing_required_payload_keys")
        self.assertNothingCreated()
        self.assertEqual(self.fire(cue, {"payload_override": {"text": "hi"}}).status_code, 200)

    def test_after_the_patch_that_clears_them_a_plain_fire_works(self):
        cue = self.create_cue(require_payload_override=True, required_payload_keys=["text"])
        self.patch(f"/v1/cues/{cue['id']}", {"require_payload_override": False, "required_payload_keys": None})
        self.assertEqual(self.fire(cue).status_code, 200)

    def test_bobs_cue_is_404_whatever_its_rules(self):
        cue = self.create_cue(key=self.bob_key, require_payload_override=True, required_payload_keys=["text"])
        self.assertError(self.fire(cue), 404, "cue_not_found")
        self.assertEqual(Execution.objects.count(), 0)

    def test_the_schedule_is_not_held_to_them(self):
        cue = self.create_cue(payload={"task": "t"}, require_payload_override=True, required_payload_keys=["text"])
        Cue.objects.filter(pk=cue["id"]).update(next_run=NOW - datetime.timedelta(seconds=1))
        self.assertEqual(poller.fire_due_cues(now=NOW), 1)
        execution = Execution.objects.get(cue_id=cue["id"])
        self.assertEqual((execution.triggered_by, execution.payload), (None, None))
