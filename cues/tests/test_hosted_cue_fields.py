"""Cue fields the hosted service's clients send: catch_up aliases, delivery.timeout_seconds,
on_success_fire, verification.required_assertions (create, PATCH, every response)."""

from django.test import override_settings

from cueapi.testing import CueTestCase, cue_body
from cues.models import Cue


class CatchUpAliasTests(CueTestCase):
    def test_aliases_are_stored_and_answered_with_our_names(self):
        for alias, ours in (("run_once_if_missed", "latest"), ("skip_missed", "none"), ("replay_all", "all")):
            body = self.create_cue(name=alias, catch_up=alias)
            self.assertEqual(body["catch_up"], ours)
            self.assertEqual(Cue.objects.get(pk=body["id"]).catch_up, ours)

    def test_patch_accepts_an_alias(self):
        cue = self.create_cue()
        r = self.patch(f"/v1/cues/{cue['id']}", {"catch_up": "replay_all"})
        self.assertEqual(r.json()["catch_up"], "all")
        r = self.patch(f"/v1/cues/{cue['id']}", {"catch_up": "skip_missed"})
        self.assertEqual(r.json()["catch_up"], "none")

    def test_null_on_create_is_the_default_as_for_the_other_cue_fields(self):
        # A client that sends every field, null for the unset ones, gets `latest` (not a 422).
        self.assertEqual(self.create_cue(catch_up=None, overlap=None)["catch_up"], "latest")
        upserted = self.post("/v1/cues", cue_body(catch_up=None, upsert=True))
        self.assertEqual((upserted.status_code, upserted.json()["catch_up"]), (200, "latest"))

    def test_an_unknown_policy_is_422_and_changes_nothing(self):
        cue = self.create_cue(catch_up="all")
        r = self.patch(f"/v1/cues/{cue['id']}", {"catch_up": "run_twice"})
        error = self.assertError(r, 422, "validation_error")
        self.assertEqual(error["details"][0]["field"], "body.catch_up")
        self.assertEqual(Cue.objects.get(pk=cue["id"]).catch_up, "all")


class DeliveryTests(CueTestCase):
    def test_both_are_integers_by_default(self):
        with override_settings(CUEAPI_WEBHOOK_TIMEOUT_SECONDS=30.0):
            body = self.create_cue()
        self.assertEqual(body["delivery"], {"timeout_seconds": 30, "outcome_deadline_seconds": 0, "max_in_flight": None})
        self.assertIs(type(body["delivery"]["timeout_seconds"]), int)

    def test_verification_cues_show_the_server_default_deadline(self):
        with override_settings(CUEAPI_DEFAULT_OUTCOME_DEADLINE_SECONDS=3600):
            body = self.create_cue(verification={"mode": "manual"})
        self.assertEqual(body["delivery"]["outcome_deadline_seconds"], 3600)

    def test_every_cue_response_carries_both(self):
        cue = self.create_cue(delivery={"timeout_seconds": 60})
        listed = self.get("/v1/cues").json()["cues"][0]["delivery"]
        detail = self.get(f"/v1/cues/{cue['id']}").json()["delivery"]
        for delivery in (cue["delivery"], listed, detail):
            self.assertEqual(delivery, {"timeout_seconds": 60, "outcome_deadline_seconds": 0, "max_in_flight": None})

    def test_patch_of_one_keeps_the_other(self):
        cue = self.create_cue(delivery={"timeout_seconds": 45, "outcome_deadline_seconds": 600})
        r = self.patch(f"/v1/cues/{cue['id']}", {"delivery": {"timeout_seconds": 10}})
        self.assertEqual(r.json()["delivery"], {"timeout_seconds": 10, "outcome_deadline_seconds": 600, "max_in_flight": None})
        r = self.patch(f"/v1/cues/{cue['id']}", {"delivery": {"outcome_deadline_seconds": 0}})
        self.assertEqual(r.json()["delivery"], {"timeout_seconds": 10, "outcome_deadline_seconds": 0, "max_in_flight": None})
        self.assertEqual(Cue.objects.get(pk=cue["id"]).webhook_timeout_seconds, 10)
        with override_settings(CUEAPI_WEBHOOK_TIMEOUT_SECONDS=30.0):
            r = self.patch(f"/v1/cues/{cue['id']}", {"delivery": {"timeout_seconds": None}})
        self.assertEqual(r.json()["delivery"], {"timeout_seconds": 30, "outcome_deadline_seconds": 0, "max_in_flight": None})

    def test_out_of_range_is_422_and_changes_nothing(self):
        cue = self.create_cue(delivery={"timeout_seconds": 45})
        for bad in (0, 301, "ten", 1.5):
            r = self.patch(f"/v1/cues/{cue['id']}", {"delivery": {"timeout_seconds": bad}})
            error = self.assertError(r, 422, "validation_error")
            self.assertEqual(error["details"][0]["field"], "body.delivery.timeout_seconds")
        self.assertEqual(Cue.objects.get(pk=cue["id"]).webhook_timeout_seconds, 45)
        r = self.post("/v1/cues", cue_body(name="other", delivery={"timeout_seconds": 0}))
        self.assertError(r, 422, "validation_error")
        self.assertFalse(Cue.objects.filter(name="other").exists())


class OnSuccessFireTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.target = self.create_cue(name="target")

    def test_create_patch_and_clear(self):
        source = self.create_cue(name="source", on_success_fire=self.target["id"])
        self.assertEqual(source["on_success_fire"], self.target["id"])
        self.assertEqual(self.get(f"/v1/cues/{source['id']}").json()["on_success_fire"], self.target["id"])
        other = self.create_cue(name="other")
        r = self.patch(f"/v1/cues/{source['id']}", {"on_success_fire": other["id"]})
        self.assertEqual(r.json()["on_success_fire"], other["id"])
        r = self.patch(f"/v1/cues/{source['id']}", {"description": "kept"})
        self.assertEqual(r.json()["on_success_fire"], other["id"])
        r = self.patch(f"/v1/cues/{source['id']}", {"on_success_fire": None})
        self.assertEqual(r.status_code, 200, r.content)
        self.assertIsNone(r.json()["on_success_fire"])
        self.assertIsNone(Cue.objects.get(pk=source["id"]).on_success_fire)

    def test_unknown_foreign_and_self_are_422(self):
        bobs = self.create_cue(name="bobs", key=self.bob_key)
        source = self.create_cue(name="source")
        for bad in ("cue_doesnotexist", bobs["id"], source["id"]):
            r = self.patch(f"/v1/cues/{source['id']}", {"on_success_fire": bad})
            error = self.assertError(r, 422, "validation_error")
            self.assertEqual(error["details"][0]["field"], "body.on_success_fire")
        self.assertIsNone(Cue.objects.get(pk=source["id"]).on_success_fire)
        for bad in ("cue_doesnotexist", bobs["id"]):
            r = self.post("/v1/cues", cue_body(name="new", on_success_fire=bad))
            self.assertError(r, 422, "validation_error")
        self.assertFalse(Cue.objects.filter(name="new").exists())


class RequiredAssertionsTests(CueTestCase):
    def test_create_patch_and_round_trip(self):
        cue = self.create_cue(verification={"required_assertions": ["rows", "checksum"]})
        self.assertEqual(cue["verification"], {"mode": "none", "required_assertions": ["rows", "checksum"]})
        r = self.patch(f"/v1/cues/{cue['id']}", {"verification": {"mode": "manual"}})
        self.assertEqual(r.json()["verification"], {"mode": "manual", "required_assertions": ["rows", "checksum"]})
        r = self.patch(f"/v1/cues/{cue['id']}", {"verification": {"required_assertions": []}})
        self.assertEqual(r.json()["verification"], {"mode": "manual", "required_assertions": []})

    def test_bad_keys_are_422(self):
        cue = self.create_cue(verification={"required_assertions": ["a"]})
        for bad in ([""], ["a"] * 21, "rows", [1]):
            r = self.patch(f"/v1/cues/{cue['id']}", {"verification": {"required_assertions": bad}})
            error = self.assertError(r, 422, "validation_error")
            self.assertTrue(error["details"][0]["field"].startswith("body.verification.required_assertions"))
        self.assertEqual(Cue.objects.get(pk=cue["id"]).required_assertions, ["a"])
