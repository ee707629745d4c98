from accounts.models import User
from alerts.models import Alert
from cueapi.testing import CueTestCase


class AlertAdminTests(CueTestCase):
    def test_pages_filters_and_link_to_the_execution(self):
        alert = Alert.objects.create(user=self.alice, alert_type="outcome_timeout", message="quiet",
                                     cue_id="cue_x", execution_id="6f1c1b1e-0000-4000-8000-000000000001")
        self.client.force_login(User.objects.create_superuser("ops@example.org", "correct horse battery"))
        for url in ("/admin/alerts/alert/", "/admin/alerts/alert/?alert_type__exact=outcome_timeout",
                    "/admin/alerts/alert/?q=cue_x", "/admin/alerts/notification/"):
            with self.subTest(url):
                self.assertEqual(self.client.get(url).status_code, 200)
        page = self.client.get(f"/admin/alerts/alert/{alert.pk}/change/")
        self.assertContains(page, f"/admin/executions/execution/{alert.execution_id}/change/")
