"""exit_criteria on a fire, verification.required_assertions on a cue, `assertions` in an
outcome: a success that lacks a required key fails verification."""

from alerts.models import Alert
from cueapi.testing import CueTestCase
from executions import lifecycle
from executions.delivery import DeliveryResult
from executions.models import Execution


class AssertionTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue(name="job", transport="worker", callback=None, payload={"task": "t"},
                                   verification={"required_assertions": ["rows", "checksum"]})

    def fire(self, **body):
        r = self.post(f"/v1/cues/{self.cue['id']}/fire", body)
        self.assertEqual(r.status_code, 200, r.content)
        return r.json()["id"]

    def report(self, execution_id, **outcome):
        r = self.post(f"/v1/executions/{execution_id}/outcome", {"success": True, **outcome})
        self.assertEqual(r.status_code, 200, r.content)
        return r.json()["outcome_state"]

    def test_every_required_key_present_is_a_success_and_the_assertions_are_returned(self):
        execution = self.fire()
        self.assertEqual(self.report(execution, assertions={"rows": 10, "checksum": "ab", "extra": [1]}),
                         "reported_success")
        outcome = self.get(f"/v1/executions/{execution}").json()["outcome"]
        self.assertEqual(outcome["assertions"], {"rows": 10, "checksum": "ab", "extra": [1]})

    def test_a_missing_key_fails_verification_says_which_and_alerts(self):
        execution = self.fire()
        self.assertEqual(self.report(execution, assertions={"rows": 0}), "verification_failed")
        row = Execution.objects.get(pk=execution)
        self.assertEqual(row.evidence_validation_state, "invalid")
        self.assertIn("checksum", row.evidence_summary)
        self.assertNotIn("rows,", row.evidence_summary)
        self.assertTrue(Alert.objects.filter(execution_id=execution, alert_type="verification_failed").exists())

    def test_no_assertions_at_all_fails_verification(self):
        self.assertEqual(self.report(self.fire()), "verification_failed")

    def test_a_failure_stays_a_reported_failure(self):
        self.assertEqual(self.report(self.fire(), success=False), "reported_failure")

    def test_exit_criteria_replace_the_cues_keys_for_that_execution(self):
        execution = self.fire(exit_criteria=["done"])
        self.assertEqual(self.get(f"/v1/executions/{execution}").json()["required_assertions"], ["done"])
        self.assertEqual(self.report(execution, assertions={"done": True}), "reported_success")
        self.assertEqual(self.report(self.fire(exit_criteria=["done"]), assertions={"rows": 1, "checksum": 1}),
                         "verification_failed")

    def test_empty_exit_criteria_opt_the_execution_out(self):
        self.assertEqual(self.report(self.fire(exit_criteria=[])), "reported_success")

    def test_null_exit_criteria_keep_the_cues(self):
        self.assertEqual(self.report(self.fire(exit_criteria=None)), "verification_failed")

    def test_a_replay_keeps_the_executions_criteria(self):
        execution = self.fire(exit_criteria=[])
        self.report(execution, success=False)
        replay = self.post(f"/v1/executions/{execution}/replay").json()["id"]
        self.assertEqual(self.report(replay), "reported_success")

    def test_without_required_keys_nothing_changes(self):
        plain = self.create_cue(name="plain", transport="worker", callback=None, payload={"task": "t"})
        execution = self.post(f"/v1/cues/{plain['id']}/fire").json()["id"]
        self.assertEqual(self.report(execution), "reported_success")

    def test_evidence_modes_still_apply(self):
        cue = self.create_cue(name="ev", transport="worker", callback=None, payload={"task": "t"},
                              verification={"mode": "require_external_id", "required_assertions": ["a"]})
        first = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
        self.assertEqual(self.report(first, assertions={"a": 1}, external_id="x"), "verified_success")
        second = self.post(f"/v1/cues/{cue['id']}/fire").json()["id"]
        self.assertEqual(self.report(second, assertions={"a": 1}), "verification_failed")

    def test_a_webhook_reply_carries_assertions(self):
        hook = self.create_cue(name="hook", verification={"required_assertions": ["a"]})
        states = []
        for assertions in ({"a": 1}, {"b": 1}, "not an object"):
            execution = Execution.objects.get(pk=self.post(f"/v1/cues/{hook['id']}/fire").json()["id"])
            Execution.objects.filter(pk=execution.pk).update(status="delivering")
            execution.refresh_from_db()
            result = DeliveryResult(delivered=True, http_status=200,
                                    reported_outcome={"success": True, "assertions": assertions})
            lifecycle.webhook_delivered(execution=execution, cue=execution.cue, attempt=1, result=result,
                                        now=execution.scheduled_for)
            states.append(Execution.objects.get(pk=execution.pk).outcome_state)
        self.assertEqual(states, ["reported_success", "verification_failed", "verification_failed"])

    def test_bad_input_is_refused_and_changes_nothing(self):
        for bad in (["a"] * 21, [""], "rows", [3], {"a": 1}):
            r = self.post(f"/v1/cues/{self.cue['id']}/fire", {"exit_criteria": bad})
            error = self.assertError(r, 422, "validation_error")
            self.assertTrue(error["details"][0]["field"].startswith("body.exit_criteria"))
        self.assertFalse(Execution.objects.exists())
        execution = self.fire()
        r = self.post(f"/v1/executions/{execution}/outcome",
                      {"success": True, "assertions": {f"k{i}": i for i in range(21)}})
        error = self.assertError(r, 422, "validation_error")
        self.assertEqual(error["details"][0]["field"], "body.assertions")
        r = self.post(f"/v1/executions/{execution}/outcome", {"success": True, "assertions": {"rows": "x" * 11000}})
        self.assertError(r, 400, "assertions_too_large")
        r = self.post(f"/v1/executions/{execution}/outcome", {"success": True, "assertions": ["rows"]})
        self.assertError(r, 422, "validation_error")
        self.assertIsNone(Execution.objects.get(pk=execution).outcome_recorded_at)

    def test_nul_characters_in_the_stored_json_fields_are_422_not_500(self):
        # PostgreSQL's jsonb cannot hold NUL: refused at the field, the outcome not recorded.
        execution = self.fire()
        for field, value in (("assertions", {"rows\x00": 1}), ("assertions", {"rows": "\x00"}),
                             ("assertions", {"rows": {"deep": ["\x00"]}}), ("metadata", {"a": "\x00"}),
                             ("artifacts", [{"name": "\x00"}])):
            with self.subTest(field=field, value=value):
                r = self.post(f"/v1/executions/{execution}/outcome", {"success": True, field: value})
                error = self.assertError(r, 422, "validation_error")
                self.assertEqual(error["details"], [{"field": f"body.{field}",
                                                     "message": "Input should not contain NUL characters"}])
        self.assertIsNone(Execution.objects.get(pk=execution).outcome_recorded_at)
        for field, value in (("metadata", {"a\x00": 1}), ("artifacts", ["\x00"])):
            r = self.call("PATCH", f"/v1/executions/{execution}/evidence", {field: value})
            self.assertError(r, 422, "validation_error")
        self.assertEqual(self.report(execution, assertions={"rows": "é", "checksum": "\U0001F600"}),
                         "reported_success")
