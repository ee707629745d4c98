"""POST /v1/cues with "upsert": true: create the cue, or apply the body to the cue of that name
with PATCH's rules (README "Upsert and backfill")."""

import datetime

import time_machine
from django.db import connection
from django.test import override_settings

from accounts.models import User
from cueapi.testing import HOOK_URL, CueTestCase, cue_body
from cueapi.urlsafety import PRIVATE_URLS_HINT
from cues.models import Cue

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)
LATER = NOW + datetime.timedelta(minutes=5)
NEW_HOOK = "http://127.0.0.1:10/new"


def upsert_body(name="nightly", **overrides):
    return {**cue_body(name, **overrides), "upsert": True}


@time_machine.travel(NOW, tick=False)
class UpsertCreateTests(CueTestCase):
    def test_it_creates_as_a_create_does(self):
        r = self.post("/v1/cues", upsert_body(payload={"task": "a"}))
        self.assertEqual(r.status_code, 201, r.content)
        created = r.json()
        plain = self.create_cue(name="plain", payload={"task": "a"})
        differs = {"id", "name"}
        self.assertEqual(set(created), set(plain))
        self.assertEqual({k: v for k, v in created.items() if k not in differs},
                         {k: v for k, v in plain.items() if k not in differs})
        self.assertEqual(Cue.objects.get(pk=created["id"]).name, "nightly")

    def test_upsert_false_or_absent_is_a_plain_create(self):
        self.create_cue()
        for body in (cue_body(), {**cue_body(), "upsert": False}):
            with self.subTest(body=body):
                self.assertError(self.post("/v1/cues", body), 409, "duplicate_cue_name",
                                 "A cue named 'nightly' already exists")
        self.assertEqual(Cue.objects.count(), 1)

    def test_upsert_must_be_a_boolean(self):
        for value in ("true", 1, 0, None, "yes", [], {}):
            with self.subTest(value=value):
                error = self.assertError(self.post("/v1/cues", {**cue_body(), "upsert": value}), 422,
                                         "validation_error")
                self.assertEqual(error["details"], [{"field": "body.upsert", "message": (
                    "Input should be a valid boolean" if value is None
                    else "Input should be a valid boolean (true or false)")}])
        self.assertFalse(Cue.objects.exists())

    def test_a_new_name_counts_against_the_cue_limit(self):
        self.create_cue(name="other")
        User.objects.filter(pk=self.alice.pk).update(active_cue_limit=1)
        self.assertError(self.post("/v1/cues", upsert_body()), 403, "cue_limit_exceeded")
        self.assertEqual(Cue.objects.count(), 1)

    def test_bobs_cue_of_that_name_is_not_touched(self):
        bobs = self.create_cue(key=self.bob_key, payload={"owner": "bob"})
        r = self.post("/v1/cues", upsert_body(payload={"owner": "alice"}))
        self.assertEqual(r.status_code, 201, r.content)
        self.assertNotEqual(r.json()["id"], bobs["id"])
        self.assertEqual(Cue.objects.get(pk=bobs["id"]).payload, {"owner": "bob"})

    def test_it_requires_api_key(self):
        self.assertError(self.post("/v1/cues", upsert_body(), anonymous=True), 401, "invalid_api_key")
        self.assertFalse(Cue.objects.exists())


@time_machine.travel(NOW, tick=False)
class UpsertUpdateTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue(
            description="kept",
            schedule={"type": "recurring", "cron": "0 9 * * *", "timezone": "America/New_York"},
            callback={"url": HOOK_URL, "method": "PUT", "headers": {"X-Token": "t"}},
            retry={"max_attempts": 5, "backoff_minutes": [2, 4]},
            on_failure={"email": False, "pause": True},
            payload={"task": "a"},
            catch_up="all",
        )
        self.url = f"/v1/cues/{self.cue['id']}"

    def upsert_ok(self, body):
        with time_machine.travel(LATER, tick=False):
            r = self.post("/v1/cues", body)
        self.assertEqual(r.status_code, 200, r.content)
        return r.json()

    def test_it_updates_with_patch_semantics(self):
        body = self.upsert_ok({"name": "nightly", "upsert": True, "payload": {"task": "b"},
                               "schedule": {"type": "recurring", "cron": "0 10 * * *"},
                               "callback": {"url": NEW_HOOK}, "retry": {"max_attempts": 2},
                               "on_failure": {"email": True}})
        self.assertEqual(body["id"], self.cue["id"])
        self.assertEqual(Cue.objects.count(), 1)
        # Sent: changed. A schedule without a time zone keeps the cue's, as PATCH does.
        self.assertEqual(body["payload"], {"task": "b"})
        self.assertEqual(body["schedule"], {"type": "recurring", "timezone": "America/New_York", "cron": "0 10 * * *",
                                            "start_at": None, "end_at": None, "jitter_seconds": 0})
        self.assertEqual(body["next_run"], "2026-11-24T15:00:00Z")
        # Not sent: kept, down to the parts of a partly sent object.
        self.assertEqual(body["callback"], {"url": NEW_HOOK, "method": "PUT", "headers": {"X-Token": "t"}})
        self.assertEqual(body["retry"], {"max_attempts": 2, "backoff_minutes": [2, 4]})
        self.assertEqual(body["on_failure"], {"email": True, "webhook": None, "pause": True})
        self.assertEqual((body["description"], body["catch_up"]), ("kept", "all"))
        self.assertEqual(body["updated_at"], "2026-11-24T12:05:00Z")
        self.assertEqual(body["created_at"], self.cue["created_at"])

    def test_the_answer_is_patchs(self):
        upserted = self.upsert_ok(upsert_body(payload={"task": "c"}))
        with time_machine.travel(LATER, tick=False):
            patched = self.patch(self.url, {"payload": {"task": "c"}}).json()
        self.assertEqual(upserted, patched)

    def test_the_same_body_twice_changes_nothing_more(self):
        first = self.upsert_ok(upsert_body(payload={"task": "a"}))
        second = self.upsert_ok(upsert_body(payload={"task": "a"}))
        self.assertEqual(first, second)
        self.assertEqual(Cue.objects.count(), 1)

    def test_null_means_not_sent_except_on_success_fire(self):
        target = self.create_cue(name="target")
        self.assertEqual(self.upsert_ok(upsert_body(on_success_fire=target["id"]))["on_success_fire"], target["id"])
        body = self.upsert_ok({**upsert_body(), "description": None, "payload": None, "retry": None,
                               "callback": {"url": HOOK_URL, "headers": None}, "on_success_fire": None})
        self.assertEqual((body["description"], body["payload"], body["retry"]["max_attempts"]), ("kept", {"task": "a"}, 5))
        self.assertEqual(body["callback"]["headers"], {"X-Token": "t"})
        self.assertIsNone(body["on_success_fire"])

    def test_status_is_left_alone(self):
        self.patch(self.url, {"status": "paused"})
        body = self.upsert_ok({**upsert_body(), "status": "active"})  # not a create field: ignored
        self.assertEqual((body["status"], body["next_run"]), ("paused", None))
        Cue.objects.filter(pk=self.cue["id"]).update(status="completed")
        body = self.upsert_ok(upsert_body(schedule={"type": "once", "at": "2026-12-01T00:00:00Z"}))
        self.assertEqual((body["status"], body["next_run"]), ("completed", None))
        self.assertEqual(body["schedule"]["at"], "2026-12-01T00:00:00+00:00")

    def test_an_existing_name_needs_no_room_under_the_cue_limit(self):
        User.objects.filter(pk=self.alice.pk).update(active_cue_limit=1)
        self.assertEqual(self.upsert_ok(upsert_body(payload={"n": 1}))["payload"], {"n": 1})

    def test_a_worker_cue(self):
        worker = self.create_cue(name="w", transport="worker", callback=None, payload={"task": "t"})
        body = self.upsert_ok({"name": "w", "upsert": True, "transport": "worker",
                               "schedule": {"type": "recurring", "cron": "0 8 * * *"}, "payload": {"n": 1}})
        self.assertEqual((body["id"], body["transport"], body["payload"]), (worker["id"], "worker", {"n": 1}))
        self.assertIn("payload.task is not set", body["warning"])


@time_machine.travel(NOW, tick=False)
class UpsertErrorTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue(payload={"task": "a"})
        self.worker = self.create_cue(name="w", transport="worker", callback=None, payload={"task": "t"})

    def assertUnchanged(self):
        for cue in (self.cue, self.worker):
            self.assertEqual(self.get(f"/v1/cues/{cue['id']}").json()["updated_at"], cue["updated_at"])
        stored = Cue.objects.get(pk=self.cue["id"])
        self.assertEqual((stored.schedule_cron, stored.callback_url, stored.payload), ("0 9 * * *", HOOK_URL, {"task": "a"}))
        self.assertEqual(Cue.objects.count(), 2)

    def test_errors_change_nothing(self):
        cases = [
            ({"name": "nightly", "upsert": True}, 422, "validation_error", "body.schedule: Field required"),
            ({"name": "nightly", "upsert": True, "schedule": {"type": "recurring", "cron": "0 9 * * *"}},
             422, "validation_error", "body: Value error, callback.url is required for webhook transport"),
            (upsert_body(transport="email"), 422, "validation_error",
             "body: Value error, transport must be 'webhook' or 'worker'"),
            (upsert_body(schedule={"type": "recurring", "cron": "bad"}), 400, "invalid_schedule",
             "Invalid cron expression"),
            (upsert_body(schedule={"type": "once", "at": "2020-01-01T00:00:00Z"}), 400, "invalid_schedule",
             "Scheduled time must be in the future"),
            (upsert_body(schedule={"type": "recurring", "cron": "* * * * *", "timezone": "Nope/Nope"}), 422,
             "invalid_timezone", "Unknown timezone: 'Nope/Nope'"),
            (upsert_body(payload={"a": "\x00"}), 400, "invalid_payload",
             "Payload contains null bytes which are not supported"),
            (upsert_body(on_success_fire="cue_nope"), 422, "validation_error",
             "body.on_success_fire: No cue cue_nope of yours exists; name one of your cues by its id"),
            (upsert_body(schedule={"type": "recurring", "cron": "* * * * * *"}), 422, "validation_error", None),
        ]
        for body, status, code, message in cases:
            with self.subTest(body=body):
                self.assertError(self.post("/v1/cues", body), status, code, message)
                self.assertUnchanged()

    def test_callback_url_is_checked(self):
        with override_settings(CUEAPI_ALLOW_PRIVATE_URLS=False):
            self.assertError(self.post("/v1/cues", upsert_body(callback={"url": "http://10.1.2.3/"})),
                             400, "invalid_callback_url",
                             "Callback URL resolves to blocked address range" + PRIVATE_URLS_HINT)
        self.assertUnchanged()

    def test_the_transport_cant_change(self):
        cases = [
            # A webhook cue sent as a worker one, and a worker cue sent as a webhook one: an
            # absent transport means webhook, as on create.
            ({**upsert_body(transport="worker", callback=None)}, "'nightly' is a webhook cue"),
            ({**upsert_body("w")}, "'w' is a worker cue"),
            ({**upsert_body("w", transport="webhook")}, "'w' is a worker cue"),
        ]
        for body, fragment in cases:
            with self.subTest(body=body):
                error = self.assertError(self.post("/v1/cues", body), 422, "validation_error")
                self.assertEqual(error["details"][0]["field"], "body.transport")
                self.assertIn(fragment, error["message"])
                self.assertIn("The transport of an existing cue can't change", error["message"])
                self.assertIn("delete the cue and create it again", error["message"])
                self.assertUnchanged()


@time_machine.travel(NOW, tick=False)
class UpsertRaceTests(CueTestCase):
    """The interleavings the PostgreSQL test (tests/test_upsert_backfill_race.py) provokes with
    real processes, made to happen here on purpose: `meanwhile` runs once, after the upsert
    looked the name up and before its create or update opens its transaction (in a test, a
    savepoint), as another request would."""

    def upsert_with(self, meanwhile, body):
        found, done = [], []

        def wrapper(execute, sql, params, many, context):
            if sql.startswith("SELECT") and '"cues"."name" =' in sql:
                found.append(True)
            elif found and not done and sql.startswith("SAVEPOINT"):
                done.append(True)
                meanwhile()
            return execute(sql, params, many, context)

        with connection.execute_wrapper(wrapper):
            response = self.post("/v1/cues", body)
        self.assertTrue(done)
        return response

    def test_a_create_that_loses_updates_the_winner(self):
        winner = {}
        r = self.upsert_with(lambda: winner.update(self.create_cue(payload={"winner": True})),
                             upsert_body(payload={"loser": True}))
        self.assertEqual(r.status_code, 200, r.content)
        self.assertEqual(r.json()["id"], winner["id"])
        self.assertEqual(Cue.objects.get().payload, {"loser": True})

    def test_a_cue_deleted_meanwhile_is_created_again(self):
        old = self.create_cue()
        r = self.upsert_with(lambda: Cue.objects.filter(pk=old["id"]).delete(), upsert_body(payload={"again": True}))
        self.assertEqual(r.status_code, 201, r.content)
        self.assertNotEqual(r.json()["id"], old["id"])
        self.assertEqual(Cue.objects.get().payload, {"again": True})
