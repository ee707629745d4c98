"""The verdict (executions/selectors.py), the one answer to "did the job work?": a reported
outcome wins over the delivery; a 2xx with no outcome expected is its own state."""

from datetime import timedelta

from django.utils import timezone

from cueapi.testing import CueTestCase
from executions.models import Execution
from executions.selectors import failure_rate, verdict_counts, with_verdict

S, O = Execution.Status, Execution.OutcomeState


class VerdictTests(CueTestCase):
    def test_every_state_has_one_verdict(self):
        cue = self.create_cue()
        now = timezone.now()
        cases = [
            # (status, outcome_state, outcome deadline set, verdict)
            (S.FAILED, None, False, "failed"),
            (S.OUTCOME_TIMEOUT, None, True, "failed"),
            (S.SUCCESS, O.REPORTED_FAILURE, False, "failed"),  # a webhook's 2xx {"success": false}
            (S.FAILED, O.REPORTED_FAILURE, False, "failed"),  # a worker's failure
            (S.SUCCESS, O.VERIFICATION_FAILED, False, "failed"),
            (S.SUCCESS, O.REPORTED_SUCCESS, False, "succeeded"),
            (S.SUCCESS, O.VERIFIED_SUCCESS, False, "succeeded"),
            (S.OUTCOME_TIMEOUT, O.REPORTED_SUCCESS, True, "succeeded"),  # a late outcome still lands
            (S.SUCCESS, O.VERIFICATION_PENDING, False, "verification_pending"),
            (S.SUCCESS, None, False, "delivered"),
            (S.SUCCESS, None, True, "awaiting_outcome"),
            (S.MISSED, None, False, "missed"),
            (S.PENDING, None, False, "in_progress"),
            (S.DELIVERING, None, False, "in_progress"),
            (S.RETRYING, None, False, "in_progress"),
            (S.RETRY_READY, None, False, "in_progress"),
        ]
        ids = {}
        for i, (status, state, deadline, verdict) in enumerate(cases):
            execution = Execution.objects.create(
                cue_id=cue["id"], scheduled_for=now - timedelta(minutes=i), status=status, outcome_state=state,
                outcome_deadline_at=now if deadline else None)
            ids[execution.id] = ((status, state, deadline), verdict)
        for execution in with_verdict(Execution.objects.all()):
            case, verdict = ids[execution.id]
            self.assertEqual(execution.verdict, verdict, case)

        counts = verdict_counts(Execution.objects.all())
        self.assertEqual(counts["failed"], 5)
        self.assertEqual(counts["succeeded"], 3)
        # failed over succeeded + failed + delivered, no outcome
        self.assertAlmostEqual(failure_rate(counts), 5 / 9)
        self.assertIsNone(failure_rate({"in_progress": 3, "missed": 1}))
