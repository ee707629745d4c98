"""Schedules that fire more often than CUEAPI_MIN_SCHEDULE_INTERVAL_SECONDS are refused."""

import datetime

import time_machine
from django.test import override_settings

from cueapi.testing import CueTestCase, cue_body
from cues.models import Cue

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
EVERY_SECOND = (
    "body.schedule.cron: This schedule fires as often as every 1 second; the minimum interval on "
    "this server is 60 seconds. Use a schedule that fires at most once every 60 seconds (the 6th "
    "field is the seconds: '* * * * * 0' fires once a minute)"
)


@time_machine.travel(NOW, tick=False)
class MinIntervalTests(CueTestCase):
    def assertTooOften(self, response, message):
        error = self.assertError(response, 422, "validation_error", message)
        self.assertEqual(error["details"], [{"field": "body.schedule.cron", "message": message.split(": ", 1)[1]}])

    def test_create_refuses_a_cron_that_fires_every_second(self):
        schedule = {"type": "recurring", "cron": "* * * * * *", "timezone": "UTC"}
        self.assertTooOften(self.post("/v1/cues", cue_body(schedule=schedule)), EVERY_SECOND)
        self.assertFalse(Cue.objects.exists())

    def test_patch_refuses_it_and_changes_nothing(self):
        cue = self.create_cue()
        schedule = {"type": "recurring", "cron": "* * * * * */10"}
        r = self.patch(f"/v1/cues/{cue['id']}", {"name": "renamed", "schedule": schedule})
        self.assertTooOften(r, EVERY_SECOND.replace("every 1 second;", "every 10 seconds;"))
        stored = self.get(f"/v1/cues/{cue['id']}").json()
        self.assertEqual((stored["name"], stored["schedule"], stored["next_run"], stored["updated_at"]),
                         (cue["name"], cue["schedule"], cue["next_run"], cue["updated_at"]))

    def test_once_a_minute_is_fine(self):
        for index, cron in enumerate(["* * * * *", "* * * * * 30", "*/5 * * * * 30", "0,59 0,23 * * *"]):
            with self.subTest(cron):
                body = self.create_cue(name=f"c{index}", schedule={"type": "recurring", "cron": cron})
                self.assertEqual(body["schedule"]["cron"], cron)

    @override_settings(CUEAPI_MIN_SCHEDULE_INTERVAL_SECONDS=300)
    def test_the_minimum_is_a_setting(self):
        self.create_cue(schedule={"type": "recurring", "cron": "*/5 * * * *"})
        r = self.post("/v1/cues", cue_body(name="often", schedule={"type": "recurring", "cron": "55,59 * * * *"}))
        self.assertTooOften(
            r,
            "body.schedule.cron: This schedule fires as often as every 240 seconds; the minimum interval "
            "on this server is 300 seconds. Use a schedule that fires at most once every 300 seconds",
        )

    def test_an_invalid_cron_is_still_invalid_schedule(self):
        r = self.post("/v1/cues", cue_body(schedule={"type": "recurring", "cron": "* * * * * 61"}))
        self.assertError(r, 400, "invalid_schedule", "Invalid cron expression")
