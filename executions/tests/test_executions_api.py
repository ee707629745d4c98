import datetime
import json
import uuid
from unittest import mock

from alerts.models import Alert
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions import outcomes
from executions.models import DeliveryAttempt, Execution

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


class ExecutionsTestCase(CueTestCase):
    def setUp(self):
        super().setUp()
        self.cue = self.create_cue()
        self.worker_cue = self.create_cue(name="work", transport="worker", callback=None, payload={"task": "t"})

    def execution(self, cue=None, minutes=0, **fields):
        return Execution.objects.create(cue_id=(cue or self.cue)["id"], scheduled_for=T0 + datetime.timedelta(minutes=minutes), **fields)


class ExecutionListTests(ExecutionsTestCase):
    def test_it_works(self):
        a = self.execution(status="success")
        b = self.execution(self.worker_cue, minutes=1, status="delivering", claimed_by_worker="w1",
                           claimed_at=T0)
        self.execution(self.create_cue(name="bobs", key=self.bob_key))
        body = self.get("/v1/executions").json()
        self.assertEqual([e["id"] for e in body["executions"]], [str(b.id), str(a.id)])
        self.assertEqual((body["total"], body["limit"], body["offset"], body["has_more"]), (2, 20, 0, False))
        self.assertEqual(body["oldest_claimed_at"], "2026-01-01T00:00:00+00:00")
        self.assertEqual(set(body["executions"][0]), {
            "id", "cue_id", "scheduled_for", "status", "http_status", "attempts", "error_message",
            "started_at", "delivered_at", "last_attempt_at", "outcome", "created_at", "updated_at"})

    def test_filters(self):
        self.execution(status="success")
        self.execution(minutes=1, status="failed", triggered_by="replay")
        self.execution(self.worker_cue, minutes=2, status="delivering", claimed_by_worker="w1")
        count = lambda q: self.get(f"/v1/executions?{q}").json()["total"]  # noqa: E731
        self.assertEqual(count(f"cue_id={self.cue['id']}"), 2)
        self.assertEqual(count("status=failed"), 1)
        self.assertEqual(count("status__in=success,%20failed,"), 2)
        self.assertEqual(count("worker_id=w1"), 1)
        self.assertEqual(count("triggered_by=replay"), 1)
        self.assertEqual(count("outcome_state=reported_success"), 0)
        self.assertEqual(self.get("/v1/executions?status=nope").json()["oldest_claimed_at"], None)

    def test_paging(self):
        for i in range(3):
            self.execution(minutes=i)
        body = self.get("/v1/executions?limit=2&offset=0").json()
        self.assertEqual((len(body["executions"]), body["has_more"]), (2, True))
        self.assertError(self.get("/v1/executions?limit=101"), 422, "validation_error",
                         "query.limit: Input should be less than or equal to 100")

    def test_conflicting_filters(self):
        self.assertError(self.get("/v1/executions?status=a&status__in=b"), 400, "conflicting_filters",
                         "Pass either `status` or `status__in`, not both.")
        self.assertError(self.get("/v1/executions?status__in=,%20,"), 400, "invalid_status_in",
                         "`status__in` must contain at least one status.")


class ExecutionGetTests(ExecutionsTestCase):
    def test_it_works(self):
        e = self.execution(outcome_recorded_at=T0, outcome_success=True, outcome_result="r",
                           outcome_metadata={"k": 1})
        body = self.get(f"/v1/executions/{e.id}").json()
        self.assertEqual(body["outcome"], {"success": True, "result": "r", "error": None,
                                           "metadata": {"k": 1}, "assertions": None, "recorded_at": "2026-01-01T00:00:00Z"})

    def test_the_detail_adds_the_claim_for_the_cli_and_the_list_keeps_the_contract_fields(self):
        e = self.execution(self.worker_cue, status="delivering", claimed_by_worker="w1", claimed_at=T0)
        detail = self.get(f"/v1/executions/{e.id}").json()
        self.assertEqual((detail["claimed_by_worker"], detail["claimed_at"]), ("w1", "2026-01-01T00:00:00Z"))
        listed = self.get("/v1/executions").json()["executions"][0]
        self.assertEqual(set(detail) - set(listed), {"claimed_by_worker", "claimed_at", "triggered_by", "replayed_from",
                                                        "chained_from", "outcome_state", "required_assertions",
                                                        "on_success_fire"})
        self.assertEqual(len(listed), 13)

    def test_not_found_and_malformed(self):
        bobs = self.execution(self.create_cue(name="bobs", key=self.bob_key))
        for execution_id in (bobs.id, uuid.uuid4(), "not-a-uuid", "1" * 300):
            with self.subTest(execution_id):
                self.assertError(self.get(f"/v1/executions/{execution_id}"), 404, "execution_not_found",
                                 "Execution not found")


class OutcomeTests(ExecutionsTestCase):
    def test_webhook_outcome_keeps_the_delivery_status(self):
        e = self.execution(status="success")
        r = self.post(f"/v1/executions/{e.id}/outcome", {"success": True, "result": "done"})
        self.assertEqual(r.json(), {"execution_id": str(e.id), "outcome_recorded": True,
                                    "outcome_state": "reported_success", "reason": None})
        e.refresh_from_db()
        self.assertEqual((e.status, e.outcome_success, e.outcome_result), ("success", True, "done"))

    def test_worker_outcome_completes_the_execution(self):
        e = self.execution(self.worker_cue, status="delivering", claimed_by_worker="w1", attempts=1)
        self.post(f"/v1/executions/{e.id}/outcome", {"success": False, "error": "boom"})
        e.refresh_from_db()
        self.assertEqual((e.status, e.error_message, e.outcome_state), ("failed", "boom", "reported_failure"))
        cue = Cue.objects.get(pk=self.worker_cue["id"])
        self.assertEqual((cue.run_count, cue.last_run is not None), (1, True))

    def test_long_worker_output_is_accepted(self):
        e = self.execution(self.worker_cue, status="delivering")
        r = self.post(f"/v1/executions/{e.id}/outcome", {"success": True, "result": "x" * 4096})
        self.assertEqual(r.status_code, 200)
        self.assertError(self.post(f"/v1/executions/{e.id}/outcome", {"success": True}), 409,
                         "outcome_already_recorded", "Outcome has already been recorded for this execution")

    def test_an_execution_deleted_between_the_read_and_the_write_is_404(self):
        # The outcome's read takes no lock: the execution may be deleted before the guarded write.
        e = self.execution(self.worker_cue, status="delivering", claimed_by_worker="w1", attempts=1)
        read, reads = outcomes.execution_get, []

        def read_then_deleted(**kwargs):
            execution = read(**kwargs)
            if not reads:  # a delete commits right after the first read
                Execution.objects.filter(pk=execution.pk).delete()
            reads.append(execution)
            return execution

        with mock.patch.object(outcomes, "execution_get", read_then_deleted):
            r = self.post(f"/v1/executions/{e.id}/outcome", {"success": True})
        self.assertError(r, 404, "execution_not_found")
        self.assertFalse(DeliveryAttempt.objects.exists())

    def test_evidence_is_stored(self):
        e = self.execution(status="success")
        self.post(f"/v1/executions/{e.id}/outcome", {
            "success": True, "external_id": "x" * 500, "result_url": "https://example.com/r",
            "result_ref": "ref", "result_type": "t" * 100, "summary": "s", "artifacts": [{"a": 1}]})
        e.refresh_from_db()
        self.assertEqual((len(e.evidence_external_id), e.evidence_result_url, len(e.evidence_result_type)),
                         (500, "https://example.com/r", 100))
        self.assertEqual(e.evidence_artifacts, [{"a": 1}])
        self.assertIsNotNone(e.evidence_produced_at)

    def test_errors_change_nothing(self):
        e = self.execution(status="success")
        cases = [
            ({}, 422, "validation_error", "body.success: Field required"),
            ({"success": True, "result": "x" * 4097}, 422, "validation_error",
             "body.result: String should have at most 4096 characters"),
            ({"success": True, "result_url": "ftp://x"}, 422, "validation_error",
             "body.result_url: URL scheme should be 'http' or 'https'"),
            ({"success": True, "metadata": {"k": "x" * 10_240}}, 400, "metadata_too_large",
             "Outcome metadata must be under 10KB"),
        ]
        for body, status, code, message in cases:
            with self.subTest(message):
                self.assertError(self.post(f"/v1/executions/{e.id}/outcome", body), status, code, message)
        e.refresh_from_db()
        self.assertIsNone(e.outcome_recorded_at)
        self.assertError(self.post(f"/v1/executions/{e.id}/outcome", {"success": True}, key=self.bob_key),
                         404, "execution_not_found")


class VerificationMatrixTests(ExecutionsTestCase):
    """5 modes × success/failure × with/without evidence -> outcome_state (SERVER.md §5.2)."""

    EVIDENCE = {"require_external_id": {"external_id": "job-1"},
                "require_result_url": {"result_url": "https://example.com/r"},
                "require_artifacts": {"artifacts": [{"name": "report.pdf"}]}}

    def expected(self, mode, success, with_evidence):
        if not success:
            return "reported_failure", None
        if mode == "none":
            return "reported_success", None
        if mode == "manual":
            return "verification_pending", None
        return ("verified_success", "valid") if with_evidence else ("verification_failed", "invalid")

    def test_matrix(self):
        for mode in ("none", "require_external_id", "require_result_url", "require_artifacts", "manual"):
            cue = self.create_cue(name=f"m-{mode}", verification={"mode": mode})
            for i, (success, with_evidence) in enumerate(((True, True), (True, False), (False, True), (False, False))):
                with self.subTest(mode=mode, success=success, evidence=with_evidence):
                    e = self.execution(cue, minutes=i, status="success")
                    evidence = self.EVIDENCE.get(mode, {"external_id": "x"}) if with_evidence else {}
                    if with_evidence and mode == "require_artifacts":
                        evidence = self.EVIDENCE[mode]
                    r = self.post(f"/v1/executions/{e.id}/outcome", {"success": success, **evidence})
                    state, validation = self.expected(mode, success, with_evidence)
                    self.assertEqual(r.json()["outcome_state"], state)
                    e.refresh_from_db()
                    self.assertEqual((e.outcome_state, e.evidence_validation_state), (state, validation))
                    # The alert hook of §5: verification_failed raises an alert, nothing else does.
                    alerts = Alert.objects.filter(execution_id=e.id, alert_type="verification_failed")
                    self.assertEqual(alerts.exists(), state == "verification_failed")

    def test_empty_artifacts_do_not_count(self):
        cue = self.create_cue(name="arts", verification={"mode": "require_artifacts"})
        e = self.execution(cue, status="success")
        self.assertEqual(self.post(f"/v1/executions/{e.id}/outcome", {"success": True, "artifacts": []}).json()["outcome_state"],
                         "verification_failed")


class VerifyTests(ExecutionsTestCase):
    def reported(self, state="reported_success", **fields):
        return self.execution(status="success", outcome_recorded_at=T0, outcome_success=True, outcome_state=state, **fields)

    def test_valid_by_default(self):
        e = self.reported()
        r = self.post(f"/v1/executions/{e.id}/verify")
        self.assertEqual(r.json(), {"execution_id": str(e.id), "outcome_state": "verified_success",
                                    "valid": True, "reason": None})
        e.refresh_from_db()
        self.assertEqual(e.evidence_validation_state, "valid")

    def test_reject_with_reason(self):
        e = self.reported(state="verification_pending", evidence_summary="made it")
        r = self.post(f"/v1/executions/{e.id}/verify", {"valid": False, "reason": "wrong file"})
        self.assertEqual(r.json()["outcome_state"], "verification_failed")
        e.refresh_from_db()
        self.assertEqual(e.evidence_summary, "made it | verification rejected: wrong file")

    def test_terminal_states(self):
        for n, state in enumerate(("verified_success", "verification_failed", None)):
            with self.subTest(state):
                e = self.execution(minutes=100 + n, outcome_state=state)
                self.assertError(self.post(f"/v1/executions/{e.id}/verify"), 409, "invalid_state",
                                 f"Cannot verify from state '{state}'")

    def test_verification_pending(self):
        e = self.reported(state="verified_success")
        r = self.post(f"/v1/executions/{e.id}/verification-pending")
        self.assertEqual(r.json(), {"execution_id": str(e.id), "outcome_state": "verification_pending"})
        fresh = self.execution(minutes=5)
        self.assertError(self.post(f"/v1/executions/{fresh.id}/verification-pending"), 409, "no_outcome",
                         "No outcome recorded yet")
        self.assertError(self.post(f"/v1/executions/{uuid.uuid4()}/verification-pending"), 404, "execution_not_found")


class EvidenceTests(ExecutionsTestCase):
    def test_it_appends_truthy_fields(self):
        e = self.execution(status="success", outcome_recorded_at=T0, outcome_success=True,
                           outcome_state="reported_success", evidence_external_id="keep")
        r = self.patch(f"/v1/executions/{e.id}/evidence", {"external_id": "", "result_url": "https://example.com/x",
                                                           "summary": "s" * 600})
        self.assertEqual(r.json(), {"execution_id": str(e.id), "outcome_state": "reported_success",
                                    "evidence_updated": True})
        e.refresh_from_db()
        self.assertEqual((e.evidence_external_id, e.evidence_result_url, len(e.evidence_summary)),
                         ("keep", "https://example.com/x", 500))
        self.assertEqual(e.outcome_state, "reported_success")

    def test_errors(self):
        e = self.execution()
        self.assertError(self.patch(f"/v1/executions/{e.id}/evidence", {"summary": "x"}), 409, "no_outcome",
                         "Report outcome first before appending evidence")
        self.assertError(self.patch(f"/v1/executions/{e.id}/evidence", json.dumps([1])), 422, "validation_error")


class ReplayTests(ExecutionsTestCase):
    def test_it_creates_a_new_pending_execution(self):
        e = self.execution(status="failed")
        body = self.post(f"/v1/executions/{e.id}/replay").json()
        self.assertEqual((body["cue_id"], body["status"], body["triggered_by"], body["replayed_from"]),
                         (self.cue["id"], "pending", "replay", str(e.id)))
        self.assertTrue(body["scheduled_for"].endswith("+00:00"))
        replay = Execution.objects.get(pk=body["id"])
        self.assertEqual((replay.status, replay.outbox_rows.count()), ("pending", 1))
        e.refresh_from_db()
        self.assertEqual(e.status, "failed")

    def test_in_flight_is_409(self):
        for status in ("pending", "delivering", "retrying", "retry_ready"):
            with self.subTest(status):
                e = self.execution(minutes=len(status), status=status)
                self.assertError(self.post(f"/v1/executions/{e.id}/replay"), 409, "execution_in_flight",
                                 "Cannot replay an execution that is still in progress")
