from django.contrib.admin.utils import quote

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


class AlertChannelAdminTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.client.force_login(User.objects.create_superuser("ops@example.org", "correct horse battery"))

    def test_channels_per_user_and_deliveries_per_alert(self):
        from alerts.models import AlertChannel, Notification

        channel = AlertChannel.objects.create(user=self.alice, name="team slack", kind="slack",
                                              url="http://127.0.0.1:9/s")
        alert = Alert.objects.create(user=self.alice, alert_type="consecutive_failures", message="down")
        Notification.objects.create(user=self.alice, alert=alert, channel=channel, kind="slack", url=channel.url,
                                    body="{}", available_at=alert.created_at, attempts=2, last_error="boom")
        for url in ("/admin/alerts/alertchannel/", f"/admin/alerts/alertchannel/?q={self.alice.email}",
                    f"/admin/alerts/alertchannel/{quote(channel.pk)}/change/", "/admin/alerts/alert/?muted__exact=1"):
            with self.subTest(url):
                self.assertEqual(self.client.get(url).status_code, 200)
        by_user = self.client.get(f"/admin/alerts/alertchannel/?user__id__exact={self.alice.pk}")
        self.assertContains(by_user, "team slack")
        self.assertNotContains(self.client.get(f"/admin/alerts/alertchannel/?user__id__exact={self.bob.pk}"),
                               "team slack")
        self.assertContains(self.client.get("/admin/alerts/alert/"), "1 pending")
        page = self.client.get(f"/admin/alerts/alert/{alert.pk}/change/")
        self.assertContains(page, "team slack")
        self.assertContains(page, "boom")

    def test_send_test_action(self):
        from alerts.models import AlertChannel
        from tests.receiver import Receiver

        with Receiver() as receiver:
            channel = AlertChannel.objects.create(user=self.alice, name="hook", kind="discord", url=receiver.url)
            r = self.client.post("/admin/alerts/alertchannel/", {"action": "send_test",
                                                                  "_selected_action": [channel.pk]}, follow=True)
        self.assertContains(r, "Hook: test alert delivered.")
        self.assertEqual(len(receiver.requests), 1)

    def test_cue_page_shows_settings_and_streak(self):
        from alerts.models import AlertStreak

        cue = self.create_cue(alerts={"failure_threshold": 7, "repeat_every_minutes": 45})
        AlertStreak.objects.create(cue_id=cue["id"], failures=4, last_error="disk full")
        page = self.client.get(f"/admin/cues/cue/{quote(cue['id'])}/change/")
        self.assertContains(page, "Current failure streak")
        self.assertContains(page, "disk full")
        self.assertContains(page, "Alert repeat minutes")
        self.assertContains(page, "45")
