"""A cue's `alerts` object: defaults, create, PATCH of single keys, validation (422 with the
field's path, nothing saved), channel ids that must be the caller's."""

from alerts.models import AlertChannel
from cueapi.testing import CueTestCase
from cues.models import Cue

DEFAULTS = {"failure_threshold": 3, "recovery_threshold": 1, "repeat_every_minutes": None,
            "notify_recovery": True, "muted_until": None, "channels": None}


class CueAlertSettingsTests(CueTestCase):
    def channel(self, user=None, name="ops"):
        return AlertChannel.objects.create(user=user or self.alice, name=name, kind="email", email="ops@example.org")

    def test_defaults_everywhere(self):
        cue = self.create_cue()
        self.assertEqual(cue["alerts"], DEFAULTS)
        self.assertEqual(self.get(f"/v1/cues/{cue['id']}").json()["alerts"], DEFAULTS)
        self.assertEqual(self.get("/v1/cues").json()["cues"][0]["alerts"], DEFAULTS)

    def test_create_with_settings(self):
        channel = self.channel()
        cue = self.create_cue(alerts={"failure_threshold": 2, "repeat_every_minutes": 60,
                                      "muted_until": "2030-01-01T00:00:00Z", "channels": [channel.id]})
        self.assertEqual(cue["alerts"], {**DEFAULTS, "failure_threshold": 2, "repeat_every_minutes": 60,
                                         "muted_until": "2030-01-01T00:00:00Z", "channels": [channel.id]})

    def test_patch_changes_only_the_keys_sent(self):
        channel = self.channel()
        cue = self.create_cue(alerts={"failure_threshold": 2, "channels": [channel.id, channel.id]})
        self.assertEqual(cue["alerts"]["channels"], [channel.id])  # no repeats
        url = f"/v1/cues/{cue['id']}"
        body = self.patch(url, {"alerts": {"repeat_every_minutes": 60}}).json()
        self.assertEqual(body["alerts"], {**DEFAULTS, "failure_threshold": 2, "repeat_every_minutes": 60,
                                          "channels": [channel.id]})
        body = self.patch(url, {"alerts": {"repeat_every_minutes": None, "channels": None,
                                           "notify_recovery": False}}).json()
        self.assertEqual(body["alerts"], {**DEFAULTS, "failure_threshold": 2, "notify_recovery": False})
        self.assertEqual(self.patch(url, {"name": "renamed"}).json()["alerts"]["failure_threshold"], 2)
        self.assertEqual(self.patch(url, {"alerts": None}).json()["alerts"]["failure_threshold"], 2)

    def test_invalid_values(self):
        cue = self.create_cue()
        cases = [
            ({"failure_threshold": 0}, "body.alerts.failure_threshold"),
            ({"failure_threshold": 101}, "body.alerts.failure_threshold"),
            ({"failure_threshold": None}, "body.alerts.failure_threshold"),
            ({"recovery_threshold": 0}, "body.alerts.recovery_threshold"),
            ({"repeat_every_minutes": 4}, "body.alerts.repeat_every_minutes"),
            ({"repeat_every_minutes": 10081}, "body.alerts.repeat_every_minutes"),
            ({"notify_recovery": "yes"}, "body.alerts.notify_recovery"),
            ({"muted_until": "tomorrow"}, "body.alerts.muted_until"),
            ({"channels": "ach_x"}, "body.alerts.channels"),
            ({"channels": ["ach_000000000000"]}, "body.alerts.channels"),
            ({"channels": ["ach_no_such_channel_of_mine"]}, "body.alerts.channels"),
            ({"loud": True}, "body.alerts.loud"),
            # Wrong types, as for notify_recovery: a JSON integer only.
            ({"failure_threshold": "3"}, "body.alerts.failure_threshold"),
            ({"failure_threshold": 3.0}, "body.alerts.failure_threshold"),
            ({"failure_threshold": True}, "body.alerts.failure_threshold"),
            ({"recovery_threshold": "1"}, "body.alerts.recovery_threshold"),
            ({"repeat_every_minutes": "60"}, "body.alerts.repeat_every_minutes"),
            ({"failure_threshold": 10**30}, "body.alerts.failure_threshold"),
        ]
        for alerts, field in cases:
            with self.subTest(alerts):
                error = self.assertError(self.patch(f"/v1/cues/{cue['id']}", {"alerts": alerts}), 422,
                                         "validation_error")
                self.assertEqual(error["details"][0]["field"], field)
                error = self.assertError(self.post("/v1/cues", {**self.body(), "alerts": alerts}), 422,
                                         "validation_error")
                self.assertEqual(error["details"][0]["field"], field)
        self.assertEqual(Cue.objects.count(), 1)
        self.assertEqual(self.get(f"/v1/cues/{cue['id']}").json()["alerts"], DEFAULTS)

    def body(self):
        from cueapi.testing import cue_body
        return cue_body(name="other")

    def test_bobs_channel_is_not_yours(self):
        bobs = self.channel(user=self.bob)
        error = self.assertError(self.post("/v1/cues", {**self.body(), "alerts": {"channels": [bobs.id]}}), 422,
                                 "validation_error")
        self.assertEqual(error["details"][0]["field"], "body.alerts.channels")
        self.assertIn(bobs.id, error["message"])
        self.assertFalse(Cue.objects.exists())
