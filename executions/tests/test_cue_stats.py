"""`stats` on GET /v1/cues/{id}: the last 7 days of the cue's executions by outcome, in one query."""

import datetime
from datetime import timedelta

import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cueapi.testing import CueTestCase
from executions.models import Execution

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
S, O = Execution.Status, Execution.OutcomeState


@time_machine.travel(NOW, tick=False)
class CueStatsTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue()
        self.n = 0

    def execution(self, *, status, outcome_state=None, age=timedelta(hours=1), deadline=False, **fields):
        self.n += 1
        execution = Execution.objects.create(cue_id=self.cue["id"], scheduled_for=NOW - timedelta(minutes=self.n),
                                             status=status, outcome_state=outcome_state,
                                             outcome_deadline_at=NOW if deadline else None, **fields)
        Execution.objects.filter(pk=execution.pk).update(created_at=NOW - age, updated_at=NOW - age)
        return execution

    def stats(self):
        r = self.get(f"/v1/cues/{self.cue['id']}")
        self.assertEqual(r.status_code, 200, r.content)
        return r.json()["stats"]

    def test_nothing_yet(self):
        self.assertEqual(self.stats(), {
            "window_days": 7, "executions": 0, "succeeded": 0, "failed": 0, "missed": 0,
            "success_rate": None, "miss_rate": None, "last_success_at": None, "last_failure_at": None})

    def test_counts_by_outcome_over_the_last_seven_days(self):
        self.execution(status=S.SUCCESS, outcome_state=O.REPORTED_SUCCESS, age=timedelta(hours=3))
        self.execution(status=S.SUCCESS, outcome_state=O.VERIFIED_SUCCESS, age=timedelta(hours=2))
        self.execution(status=S.SUCCESS, outcome_state=O.REPORTED_FAILURE, age=timedelta(hours=5))  # a 2xx saying it failed
        self.execution(status=S.FAILED, age=timedelta(days=2))
        self.execution(status=S.OUTCOME_TIMEOUT, age=timedelta(hours=1))
        self.execution(status=S.MISSED)
        self.execution(status=S.SUCCESS, age=timedelta(minutes=30))  # delivered, no outcome expected: a success
        self.execution(status=S.SUCCESS, deadline=True)  # delivered, outcome still due
        self.execution(status=S.PENDING)
        self.execution(status=S.SUCCESS, outcome_state=O.REPORTED_SUCCESS, age=timedelta(days=8))  # too old
        stats = self.stats()
        self.assertEqual(stats, {
            "window_days": 7, "executions": 9, "succeeded": 3, "failed": 3, "missed": 1,
            "success_rate": round(3 / 7, 4), "miss_rate": round(1 / 7, 4),
            "last_success_at": "2026-11-24T11:30:00Z", "last_failure_at": "2026-11-24T11:00:00Z"})

    def test_one_query_and_only_on_the_detail(self):
        self.execution(status=S.MISSED)
        with CaptureQueriesContext(connection) as queries:
            stats = self.stats()
        self.assertEqual((stats["missed"], stats["miss_rate"], stats["success_rate"]), (1, 1.0, 0.0))
        self.assertEqual(sum("COUNT(" in q["sql"].upper() and "MAX(" in q["sql"].upper()
                             for q in queries.captured_queries), 1)
        self.assertNotIn("stats", self.get("/v1/cues").json()["cues"][0])
        self.assertNotIn("stats", self.patch(f"/v1/cues/{self.cue['id']}", {"description": "d"}).json())

    def test_bobs_cue_is_404(self):
        r = self.get(f"/v1/cues/{self.cue['id']}", key=self.bob_key)
        self.assertError(r, 404, "cue_not_found")
