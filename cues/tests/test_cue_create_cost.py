"""What a create costs (cues/services.py cue_create): the owner's row is locked only under a
cue limit, duplicates are found by the unique constraint, and errors keep the reference's
order when the content checks run first."""

import datetime

import time_machine
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from cueapi.testing import CueTestCase, cue_body
from cues.models import Cue

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


def statements(context):
    """The SQL the service ran, without the savepoints a test's transaction adds."""
    return [q["sql"] for q in context.captured_queries if "SAVEPOINT" not in q["sql"]]


@time_machine.travel(NOW, tick=False)
class CueCreateCostTests(CueTestCase):
    def assertRejected(self, body, status, code, message=None):
        count = Cue.objects.count()
        self.assertError(self.post("/v1/cues", body), status, code, message)
        self.assertEqual(Cue.objects.count(), count, "nothing is persisted on error")

    def test_without_a_cue_limit_a_create_is_one_insert(self):
        with CaptureQueriesContext(connection) as context:
            self.create_cue()
        sql = [s for s in statements(context) if "cues" in s and "rate_limit" not in s]
        self.assertEqual(len(sql), 1, sql)
        # On PostgreSQL its audit entry's INSERT rides in the same statement (a WITH).
        self.assertTrue(sql[0].startswith(("INSERT INTO", 'WITH together_0 AS (INSERT INTO "cues"')), sql)

    def test_under_a_cue_limit_the_owner_is_locked_and_counted(self):
        User.objects.filter(pk=self.alice.pk).update(active_cue_limit=5)
        with CaptureQueriesContext(connection) as context:
            self.create_cue()
        sql = statements(context)
        if connection.vendor == "postgresql":
            self.assertTrue(any("FOR NO KEY UPDATE" in s for s in sql), sql)
        self.assertTrue(any("COUNT(" in s for s in sql), sql)

    def test_a_duplicate_name_is_a_409_without_a_limit_too(self):
        self.create_cue()
        self.assertRejected(cue_body(), 409, "duplicate_cue_name", "A cue named 'nightly' already exists")

    def test_a_duplicate_name_wins_over_a_bad_callback_url(self):
        self.create_cue()
        with override_settings(CUEAPI_ALLOW_PRIVATE_URLS=False):  # the URL is refused, when checked
            self.assertRejected(cue_body(callback={"url": "http://localhost:9/"}), 409, "duplicate_cue_name")

    def test_the_cue_limit_wins_over_a_bad_schedule(self):
        User.objects.filter(pk=self.alice.pk).update(active_cue_limit=1)
        self.create_cue(name="a")
        self.assertRejected(cue_body(name="b", schedule={"type": "bogus"}), 403, "cue_limit_exceeded")

    def test_a_duplicate_name_wins_over_a_reached_limit(self):
        User.objects.filter(pk=self.alice.pk).update(active_cue_limit=1)
        self.create_cue()
        self.assertRejected(cue_body(), 409, "duplicate_cue_name")
