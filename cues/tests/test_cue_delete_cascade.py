"""DELETE /v1/cues/{id} removes exactly what Django's collector would (cueapi.rows.cascade_delete):
the cue, its executions with their outbox rows, attempts and fire keys, its alert streak —
and nothing of any other cue; and the plan refuses relations it can't follow."""

from django.test import SimpleTestCase, override_settings
from django.utils import timezone

from accounts.models import AuditEntry, User
from alerts.models import AlertStreak
from cueapi.rows import _cascade_plan
from cueapi.testing import CueTestCase
from cues.models import Cue
from executions.models import DeliveryAttempt, DispatchOutbox, Execution, FireIdempotencyKey


@override_settings(CUEAPI_ALLOW_PRIVATE_URLS=True)
class CueDeleteCascadeTests(CueTestCase):
    def cue_with_history(self, name, key=None):
        """A cue with two fired executions (one with an idempotency key), their outbox rows,
        an attempt row, and an alert streak."""
        cue_id = self.create_cue(name=name, key=key)["id"]
        r = self.post(f"/v1/cues/{cue_id}/fire", {"idempotency_key": f"k-{name}"}, key=key)
        self.assertEqual(r.status_code, 200, r.content)
        self.assertEqual(self.post(f"/v1/cues/{cue_id}/fire", key=key).status_code, 200)
        execution = Execution.objects.filter(cue_id=cue_id).first()
        now = timezone.now()
        DeliveryAttempt.objects.create(execution=execution, attempt=1, transport="webhook", result="failed",
                                       started_at=now, finished_at=now)
        AlertStreak.objects.get_or_create(cue_id=cue_id, defaults={"failures": 2})
        return cue_id

    def counts(self, cue_id):
        executions = Execution.objects.filter(cue_id=cue_id)
        return {
            "cue": Cue.objects.filter(pk=cue_id).count(),
            "executions": executions.count(),
            "outbox": DispatchOutbox.objects.filter(execution__in=executions).count(),
            "attempts": DeliveryAttempt.objects.filter(execution__in=executions).count(),
            "fire_keys": FireIdempotencyKey.objects.filter(cue_id=cue_id).count(),
            "streak": AlertStreak.objects.filter(cue_id=cue_id).count(),
        }

    def test_delete_removes_the_cue_and_everything_that_cascades_from_it_only(self):
        doomed, kept, bobs = (self.cue_with_history("doomed"), self.cue_with_history("kept"),
                              self.cue_with_history("bobs", key=self.bob_key))
        before = self.counts(doomed)
        self.assertTrue(all(before.values()), before)  # the test has something to delete everywhere
        kept_before, bobs_before = self.counts(kept), self.counts(bobs)

        self.assertEqual(self.delete(f"/v1/cues/{doomed}").status_code, 204)

        self.assertEqual(self.counts(doomed), dict.fromkeys(before, 0))
        self.assertEqual(self.counts(kept), kept_before)
        self.assertEqual(self.counts(bobs), bobs_before)
        entry = AuditEntry.objects.get(action="cue.deleted", target_id=doomed)
        self.assertEqual((entry.user_id, entry.changes), (self.alice.pk, {"name": "doomed"}))

    def test_the_same_as_djangos_collector(self):
        by_collector, by_api = self.cue_with_history("one"), self.cue_with_history("two")
        Cue.objects.get(pk=by_collector).delete()
        self.assertEqual(self.delete(f"/v1/cues/{by_api}").status_code, 204)
        self.assertEqual(self.counts(by_api), self.counts(by_collector))

    def test_someone_elses_or_an_unknown_cue_is_404_and_nothing_changes(self):
        bobs = self.cue_with_history("bobs", key=self.bob_key)
        before = self.counts(bobs)
        for cue_id in (bobs, "cue_nonexistent", "cue_%' OR 1=1"):
            self.assertError(self.delete(f"/v1/cues/{cue_id}"), 404, "cue_not_found")
        self.assertEqual(self.counts(bobs), before)
        self.assertFalse(AuditEntry.objects.filter(action="cue.deleted").exists())


class CascadePlanTests(SimpleTestCase):
    def test_a_relation_that_is_not_a_cascade_is_refused(self):
        # A user's alert notifications point at channels with SET_NULL: the plan can't do that.
        with self.assertRaisesMessage(ValueError, "is SET_NULL: use Model.delete()"):
            _cascade_plan(User, "id = %s")

    def test_the_cue_plan_deletes_children_before_parents(self):
        tables = [table for table, _ in _cascade_plan(Cue, "id = %s")]
        self.assertEqual(tables[-1], "cues")
        self.assertLess(tables.index("delivery_attempts"), tables.index("executions"))
        self.assertLess(tables.index("dispatch_outbox"), tables.index("executions"))
        self.assertEqual(set(tables), {"cues", "executions", "dispatch_outbox", "delivery_attempts",
                                       "fire_idempotency_keys", "alert_streaks"})
