"""POST /v1/cues/bulk-delete: the caller's cues go (as DELETE /v1/cues/{id} would take them),
anything else is skipped, and an error deletes nothing."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from cueapi.testing import CueTestCase
from cues.models import Cue
from executions.models import DispatchOutbox, Execution

URL = "/v1/cues/bulk-delete"
CONFIRM = {"X-Confirm-Destructive": "true"}


class CueBulkDeleteTests(CueTestCase):
    def setUp(self):
        super().setUp()
        self.a = self.create_cue(name="a")["id"]
        self.b = self.create_cue(name="b")["id"]
        self.c = self.create_cue(name="c")["id"]
        self.bobs = self.create_cue(name="bob's", key=self.bob_key)["id"]
        # Executions (with their outbox rows) on a cue that goes and on one that stays.
        for cue_id in (self.a, self.c, self.bobs):
            key = self.bob_key if cue_id == self.bobs else None
            self.assertEqual(self.post(f"/v1/cues/{cue_id}/fire", key=key).status_code, 200)

    def bulk_delete(self, body, headers=CONFIRM, **kwargs):
        return self.post(URL, body, headers=headers, **kwargs)

    def assertNothingDeleted(self):
        self.assertEqual(Cue.objects.count(), 4)
        self.assertEqual(Execution.objects.count(), 3)

    def test_it_works(self):
        r = self.bulk_delete({"ids": [self.c, self.a]})
        self.assertEqual(r.status_code, 200, r.content)
        self.assertEqual(r.json(), {"deleted": [self.c, self.a], "skipped": []})
        self.assertEqual(set(Cue.objects.values_list("pk", flat=True)), {self.b, self.bobs})
        # The same cascade as a single delete: only bob's execution and outbox row are left.
        self.assertEqual(list(Execution.objects.values_list("cue_id", flat=True)), [self.bobs])
        self.assertEqual(list(DispatchOutbox.objects.values_list("execution__cue_id", flat=True)), [self.bobs])

    def test_it_skips_bobs_unknown_malformed_and_repeated_ids(self):
        ids = ["cue_nope", self.bobs, self.b, "x\x00y", "", self.b, self.a, "cue_nope"]
        r = self.bulk_delete({"ids": ids})
        self.assertEqual(r.status_code, 200, r.content)
        self.assertEqual(r.json(), {"deleted": [self.b, self.a],
                                    "skipped": ["cue_nope", self.bobs, "x\x00y", "", self.b, "cue_nope"]})
        self.assertEqual(set(Cue.objects.values_list("pk", flat=True)), {self.c, self.bobs})
        self.assertEqual(Execution.objects.filter(cue_id=self.bobs).count(), 1)

    def test_only_skipped(self):
        r = self.bulk_delete({"ids": [self.bobs]})
        self.assertEqual(r.json(), {"deleted": [], "skipped": [self.bobs]})
        self.assertNothingDeleted()
        # Bob deletes his own with the same request.
        r = self.bulk_delete({"ids": [self.bobs, self.a]}, key=self.bob_key)
        self.assertEqual(r.json(), {"deleted": [self.bobs], "skipped": [self.a]})

    def test_it_costs_the_same_for_many_ids(self):
        more = [self.create_cue(name=f"more {n}")["id"] for n in range(20)]
        for cue_id in more:
            self.post(f"/v1/cues/{cue_id}/fire")
        with CaptureQueriesContext(connection) as two:
            self.bulk_delete({"ids": [self.a, self.c]})
        with CaptureQueriesContext(connection) as twenty:
            self.bulk_delete({"ids": more})
        self.assertEqual(len(twenty), len(two), [q["sql"] for q in twenty])
        self.assertFalse(Cue.objects.filter(pk__in=more).exists())

    def test_it_needs_confirmation(self):
        for headers in ({}, {"X-Confirm-Destructive": "false"}, {"X-Confirm-Destructive": "True"}):
            with self.subTest(headers=headers):
                self.assertError(
                    self.bulk_delete({"ids": [self.a]}, headers=headers), 400, "confirmation_required",
                    "This action is destructive. Set X-Confirm-Destructive: true header to confirm.",
                )
        # The header is checked first, as for key regeneration: a bad body without it is the same 400.
        self.assertError(self.bulk_delete({"ids": []}, headers={}), 400, "confirmation_required")
        self.assertNothingDeleted()

    def test_bad_bodies(self):
        cases = [
            ({"ids": []}, "List should have at least 1 item after validation, not 0"),
            ({"ids": [self.a] + [f"cue_{n}" for n in range(100)]},
             "List should have at most 100 items after validation, not 101"),
            ({"ids": self.a}, "Input should be a valid list"),
            ({"ids": {"0": self.a}}, "Input should be a valid list"),
            ({"ids": None}, "Input should be a valid list"),
            ({"ids": [self.a, 7]}, "Input should be a valid string (item 1)"),
            ({"ids": [self.a, None]}, "Input should be a valid string (item 1)"),
            ({"ids": [[self.a]]}, "Input should be a valid string (item 0)"),
            ({}, "Field required"),
        ]
        for body, message in cases:
            with self.subTest(body=body):
                error = self.assertError(self.bulk_delete(body), 422, "validation_error", f"body.ids: {message}")
                self.assertEqual(error["details"], [{"field": "body.ids", "message": message}])
        self.assertError(self.bulk_delete(None), 422, "validation_error", "body: Field required")
        self.assertError(self.bulk_delete([self.a]), 422, "validation_error")
        self.assertError(self.bulk_delete("{not json"), 400, "invalid_json")
        self.assertNothingDeleted()

    def test_100_ids_are_allowed(self):
        ids = [self.a] + [f"cue_{n}" for n in range(99)]
        r = self.bulk_delete({"ids": ids})
        self.assertEqual(r.json(), {"deleted": [self.a], "skipped": ids[1:]})

    def test_it_requires_api_key(self):
        self.assertError(self.bulk_delete({"ids": [self.a]}, anonymous=True), 401, "invalid_api_key")
        self.assertError(self.bulk_delete({"ids": [self.a]}, key="cue_sk_" + "0" * 32), 401, "invalid_api_key")
        self.assertNothingDeleted()

    def test_the_route_is_not_a_cue_id(self):
        # Before the route existed, POST here was a 405 of /v1/cues/{id}; other methods still are.
        self.assertError(self.get(URL), 405, "http_error")
        self.assertError(self.delete(URL), 405, "http_error")
        self.assertNothingDeleted()
