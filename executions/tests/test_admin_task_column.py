"""The execution list shows each execution's payload.task, what cueapi-worker routes on, so an
operator sees at a glance the worker executions that no handler will claim."""

import datetime

from accounts.models import User
from cueapi.testing import CueTestCase
from executions.models import Execution

WHEN = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


class ExecutionAdminTaskTests(CueTestCase):
    def test_the_list_shows_the_task(self):
        routed = self.create_cue(name="routed", transport="worker", payload={"task": "nightly-report"})
        unrouted = self.create_cue(name="unrouted", transport="worker", payload={"day": "mon"})
        Execution.objects.create(cue_id=routed["id"], scheduled_for=WHEN)
        # A fire's payload override is what the worker receives.
        Execution.objects.create(cue_id=unrouted["id"], scheduled_for=WHEN, payload={"task": "one-off-fix"})
        Execution.objects.create(cue_id=unrouted["id"], scheduled_for=WHEN + datetime.timedelta(minutes=1))
        self.client.force_login(User.objects.create_superuser("ops@example.org", "correct horse battery"))

        page = self.client.get("/admin/executions/execution/")
        self.assertContains(page, '<th scope="col" class="column-task">', html=False)
        cells = [cell.strip() for cell in page.content.decode().split('<td class="field-task">')[1:]]
        tasks = sorted(cell.split("</td>", 1)[0] for cell in cells)
        self.assertEqual(tasks, ["-", "nightly-report", "one-off-fix"])
