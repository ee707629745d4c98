import datetime

import time_machine
from django.test import override_settings

from accounts.models import User
from cueapi.testing import HOOK_URL, CueTestCase
from cueapi.urlsafety import PRIVATE_URLS_HINT
from cues.models import Cue

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


@time_machine.travel(NOW, tick=False)
class CueUpdateTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue(
            schedule={"type": "recurring", "cron": "0 9 * * *", "timezone": "America/New_York"},
            callback={"url": HOOK_URL, "method": "PUT", "headers": {"X-Token": "t"}},
            retry={"max_attempts": 5, "backoff_minutes": [2, 4]},
            on_failure={"email": False, "pause": True},
            payload={"task": "a"},
        )
        self.url = f"/v1/cues/{self.cue['id']}"

    def patch_ok(self, body):
        r = self.patch(self.url, body)
        self.assertEqual(r.status_code, 200, r.content)
        return r.json()

    def test_name_and_description(self):
        body = self.patch_ok({"name": "renamed", "description": "now described"})
        self.assertEqual((body["name"], body["description"]), ("renamed", "now described"))
        self.assertEqual(body["schedule"], self.cue["schedule"])

    def test_schedule_change_keeps_the_timezone(self):
        body = self.patch_ok({"schedule": {"type": "recurring", "cron": "0 10 * * *"}})
        self.assertEqual(body["schedule"], {"type": "recurring", "timezone": "America/New_York", "cron": "0 10 * * *", "start_at": None, "end_at": None, "jitter_seconds": 0})
        self.assertEqual(body["next_run"], "2026-11-24T15:00:00Z")

    def test_schedule_to_once_and_back(self):
        body = self.patch_ok({"schedule": {"type": "once", "at": "2026-12-01T00:00:00Z"}})
        self.assertEqual(body["schedule"], {"type": "once", "timezone": "America/New_York", "at": "2026-12-01T00:00:00+00:00", "start_at": None, "end_at": None, "jitter_seconds": 0})
        self.assertEqual(body["next_run"], "2026-12-01T00:00:00Z")
        body = self.patch_ok({"schedule": {"type": "recurring", "cron": "@hourly", "timezone": "UTC"}})
        self.assertEqual(body["schedule"], {"type": "recurring", "timezone": "UTC", "cron": "@hourly", "start_at": None, "end_at": None, "jitter_seconds": 0})
        self.assertEqual(body["next_run"], "2026-11-24T13:00:00Z")

    def test_callback_change_keeps_method_and_headers(self):
        body = self.patch_ok({"callback": {"url": "http://127.0.0.1:10/new"}})
        self.assertEqual(body["callback"], {"url": "http://127.0.0.1:10/new", "method": "PUT", "headers": {"X-Token": "t"}})
        body = self.patch_ok({"callback": {"method": "patch"}})
        self.assertEqual(body["callback"]["method"], "PATCH")

    def test_partial_retry_and_on_failure_keep_omitted_fields(self):
        body = self.patch_ok({"retry": {"max_attempts": 2}, "on_failure": {"email": True}})
        self.assertEqual(body["retry"], {"max_attempts": 2, "backoff_minutes": [2, 4]})
        self.assertEqual(body["on_failure"], {"email": True, "webhook": None, "pause": True})

    def test_payload_is_replaced(self):
        self.assertEqual(self.patch_ok({"payload": {"task": "b"}})["payload"], {"task": "b"})

    def test_verification_and_catch_up(self):
        body = self.patch_ok({"verification": {"mode": "manual"}, "catch_up": "none"})
        self.assertEqual((body["verification"], body["catch_up"]), ({"mode": "manual", "required_assertions": None}, "none"))

    def test_pause_and_resume(self):
        paused = self.patch_ok({"status": "paused"})
        self.assertEqual((paused["status"], paused["next_run"]), ("paused", None))
        # A schedule change while paused keeps next_run empty; resume computes it.
        self.assertIsNone(self.patch_ok({"schedule": {"type": "recurring", "cron": "0 11 * * *"}})["next_run"])
        resumed = self.patch_ok({"status": "active"})
        self.assertEqual((resumed["status"], resumed["next_run"]), ("active", "2026-11-24T16:00:00Z"))

    def test_null_means_not_sent(self):
        body = self.patch_ok({"name": None, "description": None, "callback": {"url": None}})
        self.assertEqual(body["name"], "nightly")
        self.assertEqual(body["callback"]["url"], HOOK_URL)

    def test_resuming_a_finished_cue_counts_against_the_limit(self):
        Cue.objects.filter(pk=self.cue["id"]).update(status="completed")
        other = self.create_cue(name="other")
        User.objects.filter(pk=self.alice.pk).update(active_cue_limit=1)
        self.assertError(self.patch(self.url, {"status": "active"}), 403, "cue_limit_exceeded")
        Cue.objects.filter(pk=other["id"]).delete()
        self.assertEqual(self.patch_ok({"status": "active"})["status"], "active")


@time_machine.travel(NOW, tick=False)
class CueUpdateErrorTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue()
        self.url = f"/v1/cues/{self.cue['id']}"

    def assertUnchanged(self):
        self.assertEqual(self.get(self.url).json()["updated_at"], self.cue["updated_at"])
        stored = Cue.objects.get(pk=self.cue["id"])
        self.assertEqual((stored.name, stored.schedule_cron, stored.status), ("nightly", "0 9 * * *", "active"))

    def test_errors_change_nothing(self):
        self.create_cue(name="taken")
        cases = [
            ({"bogus": 1}, 422, "validation_error", "body.bogus: Extra inputs are not permitted"),
            ({"transport": "worker"}, 422, "validation_error", "body.transport: Extra inputs are not permitted"),
            ({"status": "completed"}, 422, "validation_error", "body: Value error, status must be 'active' or 'paused'"),
            ({"name": "x" * 256}, 422, "validation_error", "body.name: String should have at most 255 characters"),
            ({"callback": {"method": "DELETE"}}, 422, "validation_error",
             "body.callback.method: Input should be 'POST', 'GET', 'PUT' or 'PATCH'"),
            ({"name": "taken"}, 409, "duplicate_cue_name", "A cue named 'taken' already exists"),
            ({"name": "renamed", "schedule": {"type": "recurring", "cron": "bad"}}, 400,
             "invalid_schedule", "Invalid cron expression"),
            ({"schedule": {"type": "weekly"}}, 400, "invalid_schedule", "Schedule type must be 'once' or 'recurring'"),
            ({"schedule": {"type": "once", "at": "2020-01-01T00:00:00Z"}}, 400, "invalid_schedule",
             "Scheduled time must be in the future"),
            ({"schedule": {"type": "recurring", "cron": "* * * * *", "timezone": "Nope/Nope"}}, 422,
             "invalid_timezone", "Unknown timezone: 'Nope/Nope'"),
            ({"payload": {"a": "\x00"}}, 400, "invalid_payload", "Payload contains null bytes which are not supported"),
        ]
        for body, status, code, message in cases:
            with self.subTest(message):
                self.assertError(self.patch(self.url, body), status, code, message)
                self.assertUnchanged()

    def test_callback_url_is_checked(self):
        with override_settings(CUEAPI_ALLOW_PRIVATE_URLS=False):
            self.assertError(self.patch(self.url, {"name": "renamed", "callback": {"url": "http://10.1.2.3/"}}),
                             400, "invalid_callback_url",
                             "Callback URL resolves to blocked address range" + PRIVATE_URLS_HINT)
        self.assertUnchanged()

    def test_it_hides_bobs_cue(self):
        self.assertError(self.patch(self.url, {"name": "mine"}, key=self.bob_key), 404, "cue_not_found")
        self.assertUnchanged()

    def test_unknown_id(self):
        self.assertError(self.patch("/v1/cues/cue_nope", {"name": "x"}), 404, "cue_not_found")


class CueDeleteTests(CueTestCase):
    def test_it_works_and_cascades(self):
        cue = self.create_cue()
        from executions.models import Execution

        Execution.objects.create(cue_id=cue["id"], scheduled_for=datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
        r = self.delete(f"/v1/cues/{cue['id']}")
        self.assertEqual(r.status_code, 204)
        self.assertEqual(r.content, b"")
        self.assertFalse(Cue.objects.filter(pk=cue["id"]).exists())
        self.assertFalse(Execution.objects.exists())
        self.assertError(self.delete(f"/v1/cues/{cue['id']}"), 404, "cue_not_found")

    def test_it_hides_bobs_cue(self):
        cue = self.create_cue(key=self.bob_key)
        self.assertError(self.delete(f"/v1/cues/{cue['id']}"), 404, "cue_not_found")
        self.assertTrue(Cue.objects.filter(pk=cue["id"]).exists())
