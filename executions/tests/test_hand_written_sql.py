"""The hot paths' hand-written SQL (cueapi.rows) gives exactly what the ORM gives: the same
instances, field by field and type by type, on SQLite and on PostgreSQL; its writes read back
the same through the ORM; its filters select the same rows."""

from datetime import timedelta

from django.db.models import JSONField
from django.test import override_settings
from django.utils import timezone

from accounts.audit import Actor, audit_record
from accounts.models import ApiKey, AuditEntry, User
from cueapi.errors import AppError
from cueapi.ids import api_key_hash
from cueapi.testing import CueTestCase
from cues.models import Cue
from cues.selectors import cue_get, cue_list
from executions.models import Execution
from executions.selectors import execution_get, execution_list


def field_values(instance):
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


@override_settings(CUEAPI_ALLOW_PRIVATE_URLS=True)
class HandWrittenSqlTests(CueTestCase):
    def assertSameInstance(self, loaded, expected):
        self.assertIs(type(loaded), type(expected))
        self.assertFalse(loaded._state.adding)
        loaded_values, expected_values = field_values(loaded), field_values(expected)
        self.assertEqual(loaded_values, expected_values)
        for name, value in expected_values.items():
            self.assertIs(type(loaded_values[name]), type(value), name)

    def rich_cue(self):
        """A cue with JSON, datetimes, UUID, booleans and nulls all set."""
        cue = self.create_cue(
            name="rich", description="d", payload={"task": "t", "n": [1, 2]},
            callback={"url": "http://127.0.0.1:9/hook", "headers": {"X-A": "b"}},
            schedule={"type": "recurring", "cron": "*/5 * * * *", "timezone": "Europe/Berlin",
                      "start_at": "2026-01-01T00:00:00Z", "jitter_seconds": 3},
            alerts={"failure_threshold": 2}, overlap="skip")
        return cue["id"]

    def test_the_key_lookup_loads_the_key_and_its_user_as_the_orm_does(self):
        loaded = User.objects.api_key(api_key_hash(self.alice_key))
        expected = ApiKey.objects.select_related("user").get(key_hash=api_key_hash(self.alice_key))
        self.assertSameInstance(loaded, expected)
        self.assertSameInstance(loaded.user, expected.user)
        self.assertIsNone(User.objects.api_key(api_key_hash("cue_sk_unknown")))
        User.objects.filter(pk=self.alice.pk).update(is_active=False)
        self.assertIsNone(User.objects.api_key(api_key_hash(self.alice_key)))

    def test_cue_get_and_cue_list_load_cues_as_the_orm_does(self):
        cue_id = self.rich_cue()
        self.create_cue(name="second")
        Cue.objects.filter(name="second").update(status=Cue.Status.PAUSED)
        self.assertSameInstance(cue_get(user=self.alice, cue_id=cue_id), Cue.objects.get(pk=cue_id))
        with self.assertRaises(AppError):
            cue_get(user=self.bob, cue_id=cue_id)
        for status in (None, "paused", "active"):
            page, total = cue_list(user=self.alice, status=status, limit=2, offset=0)
            expected = Cue.objects.filter(user=self.alice, **({"status": status} if status else {}))
            self.assertEqual(total, expected.count())
            ordered = list(expected.order_by("-created_at", "-id")[:2])
            self.assertEqual([c.pk for c in page], [c.pk for c in ordered])
            for loaded, orm in zip(page, ordered):
                self.assertSameInstance(loaded, orm)
        self.assertEqual(cue_list(user=self.bob, limit=10, offset=0), ([], 0))

    def test_execution_get_and_list_load_executions_as_the_orm_does(self):
        worker = self.create_cue(name="w", transport="worker", payload={"task": "t"}, callback=None)["id"]
        self.create_cue(name="hook")
        for _ in range(3):
            self.assertEqual(self.post(f"/v1/cues/{worker}/fire", {"payload_override": {"k": "v"}}).status_code, 200)
        claimed = self.post("/v1/executions/claim", {"worker_id": "w1"}).json()["execution_id"]
        Execution.objects.filter(pk=claimed).update(http_status=200, outcome_metadata={"m": 1})
        executions = Execution.objects.filter(cue__user=self.alice)
        for filters in ({}, {"status": "delivering"}, {"status__in": ["pending", "delivering"]},
                        {"worker_id": "w1"}, {"cue_id": worker, "triggered_by": "manual_fire"},
                        {"outcome_state": "reported_success"}):
            page, total, oldest_claimed = execution_list(user=self.alice, filters=filters, limit=2, offset=1)
            orm_filters = {("status__in" if k == "status__in" else "claimed_by_worker" if k == "worker_id" else k): v
                           for k, v in filters.items()}
            expected = executions.filter(**orm_filters)
            self.assertEqual(total, expected.count(), filters)
            claimed_times = [e.claimed_at for e in expected if e.claimed_at]
            self.assertEqual(oldest_claimed, min(claimed_times) if claimed_times else None)
            ordered = list(expected.order_by("-created_at", "-id")[1:3])
            self.assertEqual([e.pk for e in page], [e.pk for e in ordered], filters)
            for loaded, orm in zip(page, ordered):
                self.assertSameInstance(loaded, orm)
        loaded = execution_get(user=self.alice, execution_id=claimed)
        self.assertSameInstance(loaded, Execution.objects.get(pk=claimed))
        self.assertSameInstance(loaded.cue, Cue.objects.get(pk=worker))
        with self.assertRaises(AppError):
            execution_get(user=self.bob, execution_id=claimed)
        self.assertEqual(execution_list(user=self.bob, filters={}, limit=5, offset=0), ([], 0, None))

    def test_inserted_rows_read_back_through_the_orm(self):
        cue_id = self.rich_cue()
        cue = Cue.objects.get(pk=cue_id)
        # auto_now / auto_now_add were set at the INSERT, as save() sets them
        self.assertLess(abs(cue.created_at - timezone.now()), timedelta(seconds=30))
        self.assertLess(abs(cue.updated_at - cue.created_at), timedelta(seconds=1))
        self.assertEqual(cue.payload, {"task": "t", "n": [1, 2]})
        # A None is SQL NULL, as save() writes it (not JSON null): isnull finds it.
        nulls = [f.name for f in Cue._meta.concrete_fields if f.null and getattr(cue, f.attname) is None]
        self.assertTrue(any(isinstance(Cue._meta.get_field(n), JSONField) for n in nulls), nulls)
        for name in nulls:
            self.assertTrue(Cue.objects.filter(pk=cue_id, **{f"{name}__isnull": True}).exists(), name)
        now = timezone.now() - timedelta(minutes=1)
        audit_record(user_id=self.alice.pk, actor=Actor(AuditEntry.ActorType.KEY, "key_x"),
                     action=AuditEntry.Action.CUE_UPDATED, target_id=cue_id,
                     changes={"name": {"from": "a", "to": "b"}, "none": None}, now=now)
        entry = AuditEntry.objects.filter(actor_id="key_x").get()
        self.assertEqual((entry.user_id, entry.at, entry.action, entry.target_id, entry.changes),
                         (self.alice.pk, now, "cue.updated", cue_id, {"name": {"from": "a", "to": "b"}, "none": None}))

    def test_a_list_page_and_its_total_are_one_statement(self):
        for name in ("a", "b", "c"):
            self.create_cue(name=name)
        with self.assertNumQueries(1):
            page, total = cue_list(user=self.alice, limit=2, offset=0)
        self.assertEqual((len(page), total), (2, 3))
        # Past the end the page is empty and the total still right (a second statement).
        with self.assertNumQueries(2):
            self.assertEqual(cue_list(user=self.alice, limit=2, offset=5), ([], 3))
        with self.assertNumQueries(2):  # no executions: an empty page
            self.assertEqual(execution_list(user=self.alice, filters={}, limit=2, offset=0), ([], 0, None))
