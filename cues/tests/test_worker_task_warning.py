"""cueapi-worker runs the handler named by payload.task: a worker cue without one is claimed by
no worker, so creating or changing such a cue says so in `warning`."""

import datetime

import time_machine

from cueapi.testing import CueTestCase
from executions.models import Worker

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
NO_TASK = (
    "payload.task is not set. cueapi-worker runs the handler named by payload.task (not the cue's "
    "name), so no worker will claim this cue and its executions will be missed. "
    'Set e.g. "payload": {"task": "report"} and a handler named report in worker.yaml.'
)
NO_WORKER = "No active workers found. Start a cueapi-worker to process this cue."


@time_machine.travel(NOW, tick=False)
class WorkerTaskWarningTests(CueTestCase):
    def setUp(self):
        super().setUp()
        Worker.objects.create(user=self.alice, worker_id="w1", last_heartbeat=NOW)

    def test_create_without_task_warns(self):
        for i, payload in enumerate([None, {}, {"day": "mon"}, {"task": ""}, {"task": "  "}, {"task": 7}]):
            with self.subTest(payload=payload):
                self.assertEqual(self.create_cue(name=f"c{i}", transport="worker", payload=payload)["warning"],
                                 NO_TASK)

    def test_create_with_task_does_not_warn(self):
        self.assertIsNone(self.create_cue(transport="worker", payload={"task": "report"})["warning"])

    def test_both_warnings_together(self):
        Worker.objects.all().delete()
        self.assertEqual(self.create_cue(transport="worker")["warning"], f"{NO_TASK} {NO_WORKER}")

    def test_a_webhook_cue_needs_no_task(self):
        self.assertIsNone(self.create_cue(payload={})["warning"])

    def test_patch_warns_until_the_task_is_set(self):
        cue_id = self.create_cue(transport="worker", payload={"task": "report"})["id"]
        r = self.patch(f"/v1/cues/{cue_id}", {"payload": {"day": "mon"}})
        self.assertEqual((r.status_code, r.json()["warning"]), (200, NO_TASK))
        r = self.patch(f"/v1/cues/{cue_id}", {"description": "still no task"})
        self.assertEqual(r.json()["warning"], NO_TASK)
        r = self.patch(f"/v1/cues/{cue_id}", {"payload": {"task": "report", "day": "mon"}})
        self.assertIsNone(r.json()["warning"])
