"""`require_payload_override` and `required_payload_keys` on a cue: create, PATCH, responses.
What they do on a fire is executions/tests/test_fire_required_payload.py."""

from cueapi.testing import CueTestCase, cue_body
from cues.models import Cue


class RequiredPayloadFieldsTests(CueTestCase):
    def fields(self, body):
        return body["require_payload_override"], body["required_payload_keys"]

    def test_defaults_on_create_and_in_every_response(self):
        cue = self.create_cue()
        self.assertEqual(self.fields(cue), (False, None))
        self.assertEqual(self.fields(self.get(f"/v1/cues/{cue['id']}").json()), (False, None))
        self.assertEqual(self.fields(self.get("/v1/cues").json()["cues"][0]), (False, None))
        patched = self.patch(f"/v1/cues/{cue['id']}", {"description": "x"}).json()
        self.assertEqual(self.fields(patched), (False, None))

    def test_it_creates_with_both(self):
        cue = self.create_cue(require_payload_override=True, required_payload_keys=["channel", "text"])
        self.assertEqual(self.fields(cue), (True, ["channel", "text"]))
        row = Cue.objects.get(pk=cue["id"])
        self.assertEqual((row.require_payload_override, row.required_payload_keys), (True, ["channel", "text"]))

    def test_an_empty_list_is_kept_and_repeats_are_dropped(self):
        self.assertEqual(self.create_cue(name="a", required_payload_keys=[])["required_payload_keys"], [])
        cue = self.create_cue(name="b", required_payload_keys=["text", "channel", "text"])
        self.assertEqual(cue["required_payload_keys"], ["text", "channel"])

    def test_null_on_create_is_the_default(self):
        cue = self.create_cue(require_payload_override=None, required_payload_keys=None)
        self.assertEqual(self.fields(cue), (False, None))

    def test_patch_changes_only_what_is_sent(self):
        cue = self.create_cue(require_payload_override=True, required_payload_keys=["a"])
        url = f"/v1/cues/{cue['id']}"
        self.assertEqual(self.fields(self.patch(url, {"required_payload_keys": ["b", "c"]}).json()), (True, ["b", "c"]))
        self.assertEqual(self.fields(self.patch(url, {"require_payload_override": False}).json()), (False, ["b", "c"]))
        # Null leaves the flag as it is (PATCH's rule for null) ...
        self.assertEqual(self.fields(self.patch(url, {"require_payload_override": None}).json()), (False, ["b", "c"]))
        self.assertEqual(self.fields(self.patch(url, {"required_payload_keys": []}).json()), (False, []))
        self.assertEqual(self.fields(self.patch(url, {"required_payload_keys": ["z"]}).json()), (False, ["z"]))
        # ... but clears the keys.
        self.assertEqual(self.fields(self.patch(url, {"required_payload_keys": None}).json()), (False, None))
        self.assertIsNone(Cue.objects.get(pk=cue["id"]).required_payload_keys)
        self.assertEqual(self.fields(self.patch(url, {"require_payload_override": True}).json()), (True, None))

    def test_bad_values_are_422_and_change_nothing(self):
        cue = self.create_cue(required_payload_keys=["a"])
        url = f"/v1/cues/{cue['id']}"
        cases = [
            ({"required_payload_keys": "text"}, "body.required_payload_keys: Input should be a valid list"),
            ({"required_payload_keys": [""]}, "body.required_payload_keys.0: String should have at least 1 character"),
            ({"required_payload_keys": ["ok", 5]}, "body.required_payload_keys.1: Input should be a valid string"),
            ({"required_payload_keys": ["x" * 256]},
             "body.required_payload_keys.0: String should have at most 255 characters"),
            ({"required_payload_keys": [f"k{i}" for i in range(21)]},
             "body.required_payload_keys: List should have at most 20 items after validation"),
            ({"require_payload_override": "maybe"},
             "body.require_payload_override: Input should be a valid boolean, unable to interpret input"),
            ({"require_payload_override": [True]},
             "body.require_payload_override: Input should be a valid boolean, unable to interpret input"),
        ]
        for body, message in cases:
            with self.subTest(body=body):
                self.assertError(self.post("/v1/cues", cue_body(name="another", **body)), 422, "validation_error", message)
                self.assertError(self.patch(url, body), 422, "validation_error", message)
        self.assertEqual(Cue.objects.count(), 1)
        row = Cue.objects.get(pk=cue["id"])
        self.assertEqual((row.require_payload_override, row.required_payload_keys), (False, ["a"]))

    def test_twenty_keys_of_255_characters_are_fine(self):
        keys = [f"{i:02d}" + "x" * 253 for i in range(20)]
        self.assertEqual(self.create_cue(required_payload_keys=keys)["required_payload_keys"], keys)

    def test_it_hides_bobs_cue(self):
        cue = self.create_cue(key=self.bob_key)
        self.assertError(self.patch(f"/v1/cues/{cue['id']}", {"required_payload_keys": ["a"]}), 404, "cue_not_found")
        self.assertIsNone(Cue.objects.get(pk=cue["id"]).required_payload_keys)
