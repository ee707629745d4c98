"""cueapi.rows.execute_guarded: writes that happen only when a guarded write changed its row,
one statement on PostgreSQL."""

from django.db import connection
from django.test import TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEntry
from accounts.services import user_create
from cueapi.rows import GUARDED, execute_guarded
from cueapi.testing import cue_body
from cues.models import Cue


@override_settings(CUEAPI_ALLOW_PRIVATE_URLS=True)
class ExecuteGuardedTests(TransactionTestCase):
    def setUp(self):
        self.user, key = user_create(email="t@example.org")
        self.cue_id, self.other_id = (
            self.client.post("/v1/cues", cue_body(name=name), content_type="application/json",
                             HTTP_AUTHORIZATION=f"Bearer {key}").json()["id"] for name in ("nightly", "hourly"))

    def pause_if(self, status):
        return "UPDATE cues SET status = 'paused' WHERE id = %s AND status = %s", [self.cue_id, status]

    def count_run(self):  # another row: PostgreSQL applies only one of two writes to one row in a statement
        return f"UPDATE cues SET run_count = run_count + 1 WHERE id = %s AND {GUARDED}", [self.other_id]

    def audit(self, action):
        user_id = self.user.pk.hex if connection.vendor == "sqlite" else self.user.pk
        return ("INSERT INTO audit_entries (user_id, at, action, actor_type, actor_id, target_id, changes) "
                f"SELECT %s, %s, %s, 'key', 'k', 't', %s WHERE {GUARDED}",
                [user_id, "2026-01-01 00:00:00", action, "{}"])

    def test_when_the_guard_holds_every_write_happens_in_one_statement(self):
        with CaptureQueriesContext(connection) as queries:
            self.assertEqual(execute_guarded(self.pause_if("active"), self.count_run(), self.audit("paused")), 1)
        self.assertEqual(Cue.objects.get(pk=self.cue_id).status, "paused")
        self.assertEqual(Cue.objects.get(pk=self.other_id).run_count, 1)
        self.assertTrue(AuditEntry.objects.filter(action="paused").exists())
        if connection.vendor == "postgresql":
            self.assertEqual(len(queries), 1, [q["sql"] for q in queries])

    def test_when_the_guard_fails_nothing_else_happens(self):
        Cue.objects.filter(pk=self.cue_id).update(status="paused")
        self.assertEqual(execute_guarded(self.pause_if("active"), self.count_run(), self.audit("paused")), 0)
        self.assertEqual(Cue.objects.get(pk=self.other_id).run_count, 0)
        self.assertFalse(AuditEntry.objects.filter(action="paused").exists())

    def test_a_write_that_does_not_say_where_the_guard_applies_is_refused(self):
        unguarded = ("UPDATE cues SET run_count = run_count + 1 WHERE id = %s", [self.cue_id])
        with self.assertRaisesMessage(ValueError, GUARDED):
            execute_guarded(self.pause_if("active"), unguarded)
        self.assertEqual(Cue.objects.get(pk=self.cue_id).status, "active")
