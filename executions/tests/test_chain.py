"""on_success_fire: a successful outcome fires the target cue exactly once per execution."""

from django.test import override_settings

from cueapi.testing import HOSTED_LIMITS, CueTestCase
from executions import lifecycle
from executions.delivery import DeliveryResult
from executions.models import Execution


class ChainTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.target = self.create_cue(name="target", payload={"step": 2})
        self.source = self.create_cue(name="source", transport="worker", callback=None,
                                      payload={"task": "one"}, on_success_fire=self.target["id"])

    def fire_source(self, **body):
        r = self.post(f"/v1/cues/{self.source['id']}/fire", body)
        self.assertEqual(r.status_code, 200, r.content)
        return r.json()["id"]

    def report(self, execution_id, **outcome):
        r = self.post(f"/v1/executions/{execution_id}/outcome", {"success": True, **outcome})
        self.assertEqual(r.status_code, 200, r.content)
        return r.json()["outcome_state"]

    def chained(self):
        return list(Execution.objects.filter(cue_id=self.target["id"], triggered_by="on_success"))

    def detail(self, execution_id):
        return self.get(f"/v1/executions/{execution_id}").json()

    def test_a_reported_success_fires_the_target_once_with_its_payload(self):
        source = self.fire_source()
        self.assertEqual(self.report(source), "reported_success")
        [chained] = self.chained()
        self.assertEqual((chained.status, chained.payload, str(chained.chained_from)), ("pending", None, source))
        self.assertEqual(self.detail(str(chained.pk))["triggered_by"], "on_success")
        self.assertEqual(self.detail(source)["on_success_fire"],
                         {"cue_id": self.target["id"], "execution_id": str(chained.pk), "fired": True, "reason": None})
        # Listed under the target, as every execution is.
        listed = self.get(f"/v1/executions?cue_id={self.target['id']}&triggered_by=on_success").json()
        self.assertEqual([e["id"] for e in listed["executions"]], [str(chained.pk)])

    def test_a_re_report_is_409_and_fires_nothing_more(self):
        source = self.fire_source()
        self.report(source)
        r = self.post(f"/v1/executions/{source}/outcome", {"success": True})
        self.assertError(r, 409, "outcome_already_recorded")
        self.assertEqual(len(self.chained()), 1)

    def test_a_second_verdict_of_the_same_execution_fires_nothing_more(self):
        source = self.fire_source()
        self.report(source)
        self.post(f"/v1/executions/{source}/verification-pending")
        r = self.post(f"/v1/executions/{source}/verify", {"valid": True})
        self.assertEqual(r.json()["outcome_state"], "verified_success")
        self.assertEqual(len(self.chained()), 1)
        self.assertTrue(self.detail(source)["on_success_fire"]["fired"])

    def test_failures_and_rejected_verification_fire_nothing(self):
        self.report(self.fire_source(), success=False)
        manual = self.create_cue(name="manual", transport="worker", callback=None, payload={"task": "m"},
                                 verification={"mode": "manual"}, on_success_fire=self.target["id"])
        execution = self.post(f"/v1/cues/{manual['id']}/fire").json()["id"]
        self.assertEqual(self.report(execution), "verification_pending")
        self.assertEqual(self.chained(), [])
        self.post(f"/v1/executions/{execution}/verify", {"valid": False})
        self.assertEqual(self.chained(), [])
        self.assertIsNone(self.detail(execution)["on_success_fire"])

    def test_a_manual_verdict_fires_it(self):
        manual = self.create_cue(name="manual", transport="worker", callback=None, payload={"task": "m"},
                                 verification={"mode": "manual"}, on_success_fire=self.target["id"])
        execution = self.post(f"/v1/cues/{manual['id']}/fire").json()["id"]
        self.report(execution)
        self.post(f"/v1/executions/{execution}/verify", {"valid": True})
        self.assertEqual([str(e.chained_from) for e in self.chained()], [execution])

    def test_a_replay_of_a_success_does_not_fire_it_again(self):
        source = self.fire_source()
        self.report(source)
        replay = self.post(f"/v1/executions/{source}/replay").json()["id"]
        self.report(replay)
        self.assertEqual(len(self.chained()), 1)
        record = self.detail(replay)["on_success_fire"]
        self.assertEqual((record["fired"], record["execution_id"]), (False, str(self.chained()[0].pk)))
        self.assertIn(source, record["reason"])
        # Nor a replay of the replay.
        again = self.post(f"/v1/executions/{replay}/replay").json()["id"]
        self.report(again)
        self.assertEqual(len(self.chained()), 1)

    def test_a_replay_of_a_failure_that_succeeds_fires_it_once(self):
        source = self.fire_source()
        self.report(source, success=False)
        replay = self.post(f"/v1/executions/{source}/replay").json()["id"]
        self.report(replay)
        [chained] = self.chained()
        self.assertEqual(str(chained.chained_from), source)

    def test_a_paused_or_deleted_target_fires_nothing_and_says_why(self):
        self.patch(f"/v1/cues/{self.target['id']}", {"status": "paused"})
        source = self.fire_source()
        self.report(source)
        self.assertEqual(self.chained(), [])
        record = self.detail(source)["on_success_fire"]
        self.assertEqual((record["fired"], record["execution_id"]), (False, None))
        self.assertIn("paused", record["reason"])
        self.delete(f"/v1/cues/{self.target['id']}")
        source = self.fire_source()
        self.report(source)
        self.assertIn("no longer exists", self.detail(source)["on_success_fire"]["reason"])

    def test_a_webhook_reply_with_a_success_outcome_fires_it(self):
        webhook = self.create_cue(name="hook", on_success_fire=self.target["id"])
        execution = Execution.objects.get(pk=self.post(f"/v1/cues/{webhook['id']}/fire").json()["id"])
        Execution.objects.filter(pk=execution.pk).update(status="delivering")
        execution.refresh_from_db()
        result = DeliveryResult(delivered=True, http_status=200, reported_outcome={"success": True})
        lifecycle.webhook_delivered(execution=execution, cue=execution.cue, attempt=1, result=result,
                                    now=execution.scheduled_for)
        self.assertEqual([str(e.chained_from) for e in self.chained()], [str(execution.pk)])

    def test_a_plain_2xx_is_not_a_success_outcome(self):
        webhook = self.create_cue(name="hook", on_success_fire=self.target["id"])
        execution = Execution.objects.get(pk=self.post(f"/v1/cues/{webhook['id']}/fire").json()["id"])
        Execution.objects.filter(pk=execution.pk).update(status="delivering")
        execution.refresh_from_db()
        lifecycle.webhook_delivered(execution=execution, cue=execution.cue, attempt=1,
                                    result=DeliveryResult(delivered=True, http_status=200), now=execution.scheduled_for)
        self.assertEqual(self.chained(), [])


@override_settings(**HOSTED_LIMITS)
class ChainLimitTests(CueTestCase):
    def test_over_the_monthly_limit_nothing_fires_and_it_says_why(self):
        target = self.create_cue(name="target")
        source = self.create_cue(name="source", transport="worker", callback=None, payload={"task": "one"},
                                 on_success_fire=target["id"])
        execution = self.post(f"/v1/cues/{source['id']}/fire").json()["id"]
        self.alice.monthly_execution_limit = 1
        self.alice.save()
        self.post(f"/v1/executions/{execution}/outcome", {"success": True})
        self.assertFalse(Execution.objects.filter(cue_id=target["id"]).exists())
        record = self.get(f"/v1/executions/{execution}").json()["on_success_fire"]
        self.assertIn("monthly execution limit", record["reason"])
