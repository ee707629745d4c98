"""cueapi.rows.execute_together: writes that stand or fall together, one statement on
PostgreSQL, with or without a caller's transaction."""

from django.db import DatabaseError, connection, transaction
from django.test import TransactionTestCase, override_settings
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEntry
from accounts.services import user_create
from cueapi.rows import execute_together
from cueapi.testing import cue_body
from cues.models import Cue


@override_settings(CUEAPI_ALLOW_PRIVATE_URLS=True)
class ExecuteTogetherTests(TransactionTestCase):
    def setUp(self):
        self.user, self.key = user_create(email="t@example.org")

    def create(self, name):
        return self.client.post("/v1/cues", cue_body(name=name), content_type="application/json",
                                HTTP_AUTHORIZATION=f"Bearer {self.key}")

    def test_a_cue_and_its_audit_entry_are_one_write_outside_a_transaction(self):
        self.create("warm")
        with CaptureQueriesContext(connection) as queries:
            self.assertEqual(self.create("nightly").status_code, 201)
        writes = [q["sql"] for q in queries if 'INSERT INTO "cues"' in q["sql"] or "audit_entries" in q["sql"]]
        if connection.vendor == "postgresql":
            self.assertEqual(len(writes), 1, writes)
            self.assertIn('"cues"', writes[0])
            self.assertIn('"audit_entries"', writes[0])
        created = Cue.objects.get(name="nightly")
        self.assertEqual(AuditEntry.objects.filter(action="cue.created", target_id=created.pk).count(), 1)

    def test_a_duplicate_name_writes_neither(self):
        self.assertEqual(self.create("nightly").status_code, 201)
        response = self.create("nightly")
        self.assertEqual(response.status_code, 409, response.content)
        self.assertEqual(Cue.objects.count(), 1)
        self.assertEqual(AuditEntry.objects.filter(action="cue.created").count(), 1)

    def test_when_one_write_fails_none_is_kept(self):
        good = ("INSERT INTO audit_entries (user_id, at, action, actor_type, actor_id, target_id, changes) "
                "VALUES (%s, %s, 'x', 'key', 'k', 't', %s)",
                [self.user.pk.hex if connection.vendor == "sqlite" else self.user.pk, "2026-01-01 00:00:00",
                 "{}"])
        bad = ("INSERT INTO audit_entries (no_such_column) VALUES (%s)", [1])
        with self.assertRaises(DatabaseError):
            execute_together(good, bad)
        self.assertFalse(AuditEntry.objects.filter(action="x").exists())

    def test_inside_a_transaction_an_error_leaves_it_usable(self):
        self.assertEqual(self.create("nightly").status_code, 201)
        with transaction.atomic():
            response = self.create("nightly")  # the caller's transaction (ATOMIC_REQUESTS-like)
            self.assertEqual(response.status_code, 409)
            self.assertEqual(Cue.objects.count(), 1)  # a query after the IntegrityError works
