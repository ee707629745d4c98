"""Alerts judge a failure streak by the execution's verdict (a failed verification is a
failure) and say which cue and what went wrong last."""

from cueapi.testing import CueTestCase
from alerts.models import Alert
from executions.tests.test_delivery import deliver_all
from tests.receiver import Receiver


class FailureStreakTests(CueTestCase):
    def test_failed_verifications_count_toward_the_streak(self):
        with Receiver([(200, {"success": True})]) as receiver:
            cue = self.create_cue(name="invoices", callback={"url": receiver.url},
                                  verification={"mode": "require_external_id"}, on_failure={"email": False})
            for _ in range(2):  # success without the required external_id: verification fails
                self.post(f"/v1/cues/{cue['id']}/fire")
                deliver_all()
            receiver.responses = [(200, {"success": False, "error": "ledger locked"})]
            self.post(f"/v1/cues/{cue['id']}/fire")
            deliver_all()
        self.assertEqual(Alert.objects.filter(alert_type="verification_failed").count(), 2)
        streak = Alert.objects.get(alert_type="consecutive_failures")
        self.assertEqual(streak.message, f"Cue 'invoices' ({cue['id']}) has 3 consecutive failed executions. "
                                         "Last error: ledger locked")
