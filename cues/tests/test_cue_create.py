import datetime
import json

import time_machine
from django.test import override_settings

from accounts.models import User
from cueapi.testing import HOOK_URL, CueTestCase, cue_body
from cueapi.urlsafety import PRIVATE_URLS_HINT
from cues.models import Cue
from executions.models import Worker

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


@time_machine.travel(NOW, tick=False)
class CueCreateTests(CueTestCase):
    def test_it_works(self):
        r = self.post("/v1/cues", cue_body(description="d", payload={"task": "report"}))
        self.assertEqual(r.status_code, 201)
        body = r.json()
        self.assertRegex(body["id"], r"^cue_[a-z0-9]{12}$")
        self.assertEqual(
            {k: v for k, v in body.items() if k != "id"},
            {
                "name": "nightly", "description": "d", "status": "active", "pause_note": None, "paused_until": None,
                "transport": "webhook",
                "schedule": {"type": "recurring", "timezone": "UTC", "cron": "0 9 * * *",
                             "start_at": None, "end_at": None, "jitter_seconds": 0},
                "callback": {"url": HOOK_URL, "method": "POST", "headers": {}},
                "payload": {"task": "report"},
                "retry": {"max_attempts": 3, "backoff_minutes": [1, 5, 15]},
                "next_run": "2026-11-25T09:00:00Z", "last_run": None, "run_count": 0,
                "fired_count": 0, "on_failure": {"email": True, "webhook": None, "pause": False},
                "verification": None, "catch_up": "latest", "delivery": {"timeout_seconds": 30, "outcome_deadline_seconds": 0, "max_in_flight": None},
                "on_success_fire": None, "overlap": "allow",
                "require_payload_override": False, "required_payload_keys": None,
                "alerts": {"failure_threshold": 3, "recovery_threshold": 1, "repeat_every_minutes": None,
                           "notify_recovery": True, "muted_until": None, "channels": None},
                "warning": None,
                "created_at": "2026-11-24T12:00:00Z", "updated_at": "2026-11-24T12:00:00Z",
            },
        )
        cue = Cue.objects.get(pk=body["id"])
        self.assertEqual(cue.user, self.alice)

    def test_next_run_in_the_cues_zone(self):
        body = self.create_cue(schedule={"type": "recurring", "cron": "0 9 * * *",
                                         "timezone": "America/New_York"})
        self.assertEqual(body["next_run"], "2026-11-24T14:00:00Z")

    def test_zone_names_are_case_insensitive(self):
        body = self.create_cue(schedule={"type": "recurring", "cron": "0 9 * * *",
                                         "timezone": "america/new_york"})
        self.assertEqual(body["next_run"], "2026-11-24T14:00:00Z")

    def test_one_time(self):
        body = self.create_cue(schedule={"type": "once", "at": "2026-12-01T10:00:00+02:00"})
        self.assertEqual(body["schedule"], {"type": "once", "timezone": "UTC", "at": "2026-12-01T08:00:00+00:00", "start_at": None, "end_at": None, "jitter_seconds": 0})
        self.assertEqual(body["next_run"], "2026-12-01T08:00:00Z")

    def test_naive_at_is_utc(self):
        body = self.create_cue(schedule={"type": "once", "at": "2026-12-01T10:00:00"})
        self.assertEqual(body["next_run"], "2026-12-01T10:00:00Z")

    def test_url_is_normalised(self):
        body = self.create_cue(callback={"url": "HTTP://127.0.0.1:9", "method": "put",
                                         "headers": {"X-Token": "t"}})
        self.assertEqual(body["callback"], {"url": "http://127.0.0.1:9/", "method": "PUT",
                                            "headers": {"X-Token": "t"}})

    def test_every_option(self):
        body = self.create_cue(
            retry={"max_attempts": 5, "backoff_minutes": [2]},
            on_failure={"pause": True},
            verification={"mode": "require_external_id"},
            catch_up="all",
        )
        self.assertEqual(body["retry"], {"max_attempts": 5, "backoff_minutes": [2]})
        self.assertEqual(body["on_failure"], {"email": True, "webhook": None, "pause": True})
        self.assertEqual(body["verification"], {"mode": "require_external_id", "required_assertions": None})
        self.assertEqual(body["catch_up"], "all")

    def test_verification_none_round_trips(self):
        self.assertEqual(self.create_cue(verification={"mode": "none"})["verification"],
                         {"mode": "none", "required_assertions": None})
        self.assertEqual(self.create_cue(name="b", verification={})["verification"],
                         {"mode": "none", "required_assertions": None})

    def test_worker_cue_without_callback_warns_with_no_worker(self):
        body = self.create_cue(transport="worker", callback=None, payload={"task": "report"})
        self.assertEqual(body["transport"], "worker")
        self.assertEqual(body["callback"], {"url": None, "method": "POST", "headers": {}})
        self.assertEqual(body["warning"], "No active workers found. Start a cueapi-worker to process this cue.")

    def test_worker_cue_with_a_live_worker_does_not_warn(self):
        Worker.objects.create(user=self.alice, worker_id="w1", last_heartbeat=NOW - datetime.timedelta(seconds=60))
        Worker.objects.create(user=self.bob, worker_id="w1", last_heartbeat=NOW)
        self.assertIsNone(self.create_cue(transport="worker", payload={"task": "report"})["warning"])

    def test_stale_worker_still_warns(self):
        Worker.objects.create(user=self.alice, worker_id="w1", last_heartbeat=NOW - datetime.timedelta(seconds=181))
        warning = self.create_cue(transport="worker", payload={"task": "report"})["warning"]
        self.assertEqual(warning, "No active workers found. Start a cueapi-worker to process this cue.")

    def test_worker_cue_url_is_not_checked(self):
        with override_settings(CUEAPI_ALLOW_PRIVATE_URLS=False):
            self.assertEqual(self.post("/v1/cues", cue_body(transport="worker")).status_code, 201)

    def test_same_name_for_another_user_is_fine(self):
        self.create_cue()
        self.create_cue(key=self.bob_key)

    def test_it_requires_api_key(self):
        self.assertError(self.post("/v1/cues", cue_body(), anonymous=True), 401, "invalid_api_key")


@time_machine.travel(NOW, tick=False)
class CueCreateErrorTests(CueTestCase):
    def assertRejected(self, body, status, code, message, **kwargs):
        count = Cue.objects.count()
        error = self.assertError(self.post("/v1/cues", body, **kwargs), status, code, message)
        self.assertEqual(Cue.objects.count(), count, "nothing is persisted on error")
        return error

    def test_schema_errors(self):
        v = "validation_error"
        cases = [
            ({}, "body.name: Field required"),
            (cue_body(name="x" * 256), "body.name: String should have at most 255 characters"),
            (cue_body(name=5), "body.name: Input should be a valid string"),
            (cue_body(name="a\x00b"), "body.name: String should not contain NUL characters"),
            (cue_body(callback={"url": HOOK_URL, "headers": {"X": "\x00"}}),
             "body.callback.headers.X: String should not contain NUL characters"),
            (cue_body(callback={"url": HOOK_URL, "headers": {"X\x00": "v"}}),
             "body.callback.headers.X\x00: Header name must be an HTTP token: letters, digits and !#$%&'*+-.^_`|~ only"),
            ({"name": "a", "callback": {"url": HOOK_URL}}, "body.schedule: Field required"),
            (cue_body(schedule={"cron": "* * * * *"}), "body.schedule.type: Field required"),
            (cue_body(schedule="daily"), "body.schedule: Input should be a valid dictionary or object to extract fields from"),
            (cue_body(callback={"url": HOOK_URL, "transport": "worker"}),
             "body: Value error, transport must be specified at the top level, not inside callback"),
            (cue_body(transport="carrier-pigeon"), "body: Value error, transport must be 'webhook' or 'worker'"),
            (cue_body(callback=None), "body: Value error, callback.url is required for webhook transport"),
            (cue_body(callback={"method": "POST"}), "body: Value error, callback.url is required for webhook transport"),
            (cue_body(callback={"url": "ftp://example.com/x"}), "body.callback.url: URL scheme should be 'http' or 'https'"),
            (cue_body(callback={"url": "not a url"}), "body.callback.url: Input should be a valid URL, relative URL without a base"),
            (cue_body(callback={"url": HOOK_URL, "method": "DELETE"}),
             "body.callback.method: Input should be 'POST', 'GET', 'PUT' or 'PATCH'"),
            (cue_body(callback={"url": HOOK_URL, "headers": {"X": 1}}), "body.callback.headers.X: Input should be a valid string"),
            (cue_body(retry={"max_attempts": 0}), "body.retry.max_attempts: Input should be greater than or equal to 1"),
            (cue_body(retry={"max_attempts": 11}), "body.retry.max_attempts: Input should be less than or equal to 10"),
            (cue_body(retry={"backoff_minutes": ["x"]}),
             "body.retry.backoff_minutes.0: Input should be a valid integer, unable to parse string as an integer"),
            (cue_body(payload=[1]), "body.payload: Input should be a valid dictionary"),
            (cue_body(verification={"mode": "vibes"}),
             "body.verification.mode: Input should be 'none', 'require_external_id', 'require_result_url', 'require_artifacts' or 'manual'"),
            (cue_body(schedule={"type": "once", "at": "soon"}),
             "body.schedule.at: Input should be a valid datetime or date, input is too short"),
            (cue_body(catch_up="some"), "body.catch_up: Input should be 'all', 'latest', 'none', 'run_once_if_missed', 'skip_missed' or 'replay_all'"),
            (cue_body(on_failure={"email": "perhaps"}),
             "body.on_failure.email: Input should be a valid boolean, unable to interpret input"),
        ]
        for body, message in cases:
            with self.subTest(message):
                self.assertRejected(body, 422, v, message)

    def test_duplicate_name_comes_first(self):
        self.create_cue()
        User.objects.filter(pk=self.alice.pk).update(active_cue_limit=1)
        self.assertRejected(cue_body(schedule={"type": "bogus"}), 409, "duplicate_cue_name",
                            "A cue named 'nightly' already exists")

    def test_cue_limit(self):
        User.objects.filter(pk=self.alice.pk).update(active_cue_limit=2)
        self.create_cue(name="a")
        paused = self.create_cue(name="b")
        Cue.objects.filter(pk=paused["id"]).update(status="paused")
        self.assertRejected(cue_body(name="c"), 403, "cue_limit_exceeded", "Active cue limit of 2 reached (paused cues count too). Delete cues you no longer "
                            "need, or raise the user's active_cue_limit in the admin (0 = no limit).")
        Cue.objects.filter(pk=paused["id"]).update(status="completed")  # no longer counts
        self.create_cue(name="c")

    def test_callback_url_safety(self):
        with override_settings(CUEAPI_ALLOW_PRIVATE_URLS=False):
            self.assertRejected(cue_body(), 400, "invalid_callback_url",
                                "Callback URL resolves to blocked address range" + PRIVATE_URLS_HINT)
            self.assertRejected(cue_body(callback={"url": "http://localhost:9/"}), 400,
                                "invalid_callback_url", "Blocked hostname: localhost" + PRIVATE_URLS_HINT)

    def test_payload_checks(self):
        self.assertRejected(cue_body(payload={"a": ["x\x00"]}), 400, "invalid_payload",
                            "Payload contains null bytes which are not supported")
        self.assertRejected(cue_body(payload={"k\x00": 1}), 400, "invalid_payload",
                            "Payload contains null bytes which are not supported")

    def test_payload_size(self):
        # A compact body under the 1 MiB request limit whose payload, measured as the reference
        # does (json.dumps with ", " separators), is over 1 MiB.
        body = json.dumps(cue_body(payload={"x": [0] * 400_000}), separators=(",", ":"))
        self.assertLess(len(body), 1_048_576)
        self.assertRejected(body, 400, "invalid_payload_size", "Payload must be under 1MB")

    def test_unknown_timezone(self):
        error = self.assertRejected(
            cue_body(schedule={"type": "recurring", "cron": "0 9 * * *", "timezone": "Mars/Olympus"}),
            422, "invalid_timezone", "Unknown timezone: 'Mars/Olympus'")
        self.assertNotIn("details", error)

    def test_timezone_is_checked_before_the_schedule(self):
        self.assertRejected(cue_body(schedule={"type": "bogus", "timezone": "Nowhere/Land"}),
                            422, "invalid_timezone", "Unknown timezone: 'Nowhere/Land'")

    def test_schedule_errors(self):
        cases = [
            ({"type": "recurring"}, "Cron expression is required for recurring schedules"),
            ({"type": "recurring", "cron": ""}, "Cron expression is required for recurring schedules"),
            ({"type": "recurring", "cron": "every day"}, "Invalid cron expression"),
            ({"type": "recurring", "cron": "0 0 30 2 *"}, "Invalid cron expression"),
            ({"type": "recurring", "cron": "0 " * 60 + "*"}, "Invalid cron expression"),
            ({"type": "once"}, "Timestamp is required for one-time schedules"),
            ({"type": "once", "at": "2026-11-24T12:00:00Z"}, "Scheduled time must be in the future"),
            ({"type": "weekly"}, "Schedule type must be 'once' or 'recurring'"),
        ]
        for schedule, message in cases:
            with self.subTest(message):
                self.assertRejected(cue_body(schedule=schedule), 400, "invalid_schedule", message)

    def test_on_failure_webhook_is_checked(self):
        with override_settings(CUEAPI_ALLOW_PRIVATE_URLS=False):
            self.assertRejected(
                cue_body(transport="worker", on_failure={"webhook": "http://10.0.0.1/x"}), 400,
                "invalid_callback_url",
                "on_failure.webhook: Callback URL resolves to blocked address range" + PRIVATE_URLS_HINT)


class NextRunAcrossTransitionsTests(CueTestCase):
    """next_run as the API reports it, with the clock frozen just before each transition."""

    def setUp(self):
        super().setUp()
        User.objects.filter(pk=self.alice.pk).update(active_cue_limit=100)

    def test_table(self):
        z = datetime.timezone.utc
        cases = [
            # (frozen now UTC, zone, cron, expected next_run)
            (datetime.datetime(2026, 3, 8, 6, 0, tzinfo=z), "America/New_York", "30 2 * * *", "2026-03-08T07:00:00Z"),
            (datetime.datetime(2026, 11, 1, 5, 0, tzinfo=z), "America/New_York", "30 1 * * *", "2026-11-01T05:30:00Z"),
            (datetime.datetime(2026, 11, 1, 5, 50, tzinfo=z), "America/New_York", "*/15 * * * *", "2026-11-01T06:00:00Z"),
            (datetime.datetime(2026, 3, 29, 0, 50, tzinfo=z), "Europe/London", "30 1 * * *", "2026-03-29T01:00:00Z"),
            (datetime.datetime(2026, 10, 3, 15, 0, tzinfo=z), "Australia/Lord_Howe", "15 2 * * *", "2026-10-03T15:30:00Z"),
            (datetime.datetime(2026, 6, 1, 0, 0, tzinfo=z), "Asia/Kathmandu", "0 9 * * MON-FRI", "2026-06-01T03:15:00Z"),
        ]
        for index, (now, zone, cron, expected) in enumerate(cases):
            with self.subTest(zone=zone, cron=cron), time_machine.travel(now, tick=False):
                body = self.create_cue(name=f"c{index}", schedule={"type": "recurring", "cron": cron, "timezone": zone})
                self.assertEqual(body["next_run"], expected)
