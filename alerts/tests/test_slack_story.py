"""The issue's "done when", end to end on real parts: told on Slack after the 2nd failure,
reminded hourly, told when it recovers, and quiet during a maintenance mute. The cue's own
webhook and the Slack webhook are real receivers on 127.0.0.1; the dispatcher's and the
poller's units do the work."""

import datetime
import json
from datetime import timedelta

import time_machine
from django.core.management import call_command
from django.utils import timezone

from alerts.delivery import claim_notifications
from cueapi.testing import CueTestCase
from executions.tests.test_delivery import deliver_all
from tests.receiver import Receiver

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


def send_notifications():
    for send in claim_notifications(now=timezone.now(), limit=100):
        send()


class SlackStoryTests(CueTestCase):
    def test_told_reminded_recovered_and_muted(self):
        with time_machine.travel(NOW, tick=False) as clock, Receiver([(500, b"down")]) as job, \
                Receiver() as slack:
            channel = self.post("/v1/alert-channels", {"name": "ops", "kind": "slack", "url": slack.url}).json()
            cue = self.create_cue(callback={"url": job.url}, retry={"max_attempts": 1}, on_failure={"email": False},
                                  alerts={"failure_threshold": 2, "repeat_every_minutes": 60,
                                          "channels": [channel["id"]]})

            def run():
                clock.shift(timedelta(seconds=1))
                self.assertEqual(self.post(f"/v1/cues/{cue['id']}/fire").status_code, 200)
                deliver_all()
                send_notifications()

            def texts():
                return [json.loads(r["body"])["text"].split(":")[1].strip() for r in slack.requests]

            run()
            self.assertEqual(texts(), [])
            run()
            self.assertEqual(texts(), ["cue 'nightly' failing"])
            clock.shift(timedelta(minutes=60))
            call_command("run_poller", "--once")
            send_notifications()
            self.assertEqual(texts(), ["cue 'nightly' failing", "cue 'nightly' failing (reminder 1)"])
            job.responses = [(200, b"ok")]
            run()
            self.assertEqual(texts()[-1], "cue 'nightly' recovered")
            clock.shift(timedelta(minutes=120))
            call_command("run_poller", "--once")  # recovered: no more reminders
            send_notifications()
            self.assertEqual(len(slack.requests), 3)

            # Maintenance: muted for an hour, failures are recorded, Slack hears nothing.
            self.patch(f"/v1/cues/{cue['id']}", {"alerts": {"muted_until": (timezone.now() + timedelta(hours=1))
                                                            .isoformat()}})
            job.responses = [(500, b"down")]
            run(), run()
            alerts = self.get("/v1/alerts?limit=1").json()["alerts"]
            self.assertEqual((alerts[0]["alert_type"], alerts[0]["muted"]), ("consecutive_failures", True))
            self.assertEqual(len(slack.requests), 3)
            clock.shift(timedelta(minutes=61))  # the mute is over; the next reminder is sent
            call_command("run_poller", "--once")
            send_notifications()
            self.assertEqual(texts()[-1], "cue 'nightly' failing (reminder 1)")
            self.assertEqual(len(slack.requests), 4)
