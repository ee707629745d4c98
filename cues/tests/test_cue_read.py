import datetime

from cueapi.testing import CueTestCase
from cues.models import Cue
from executions.models import Execution


class CueListTests(CueTestCase):
    def test_it_lists_newest_first_with_paging(self):
        ids = [self.create_cue(name=f"c{i}")["id"] for i in range(3)]
        self.create_cue(name="bobs", key=self.bob_key)
        body = self.get("/v1/cues").json()
        self.assertEqual([c["id"] for c in body["cues"]], ids[::-1])
        self.assertEqual((body["total"], body["limit"], body["offset"]), (3, 50, 0))
        page = self.get("/v1/cues?limit=1&offset=1").json()
        self.assertEqual([c["id"] for c in page["cues"]], [ids[1]])
        self.assertEqual((page["total"], page["limit"], page["offset"]), (3, 1, 1))

    def test_status_filter(self):
        a = self.create_cue(name="a")
        self.create_cue(name="b")
        Cue.objects.filter(pk=a["id"]).update(status="paused")
        body = self.get("/v1/cues?status=paused").json()
        self.assertEqual([c["id"] for c in body["cues"]], [a["id"]])
        self.assertEqual(self.get("/v1/cues?status=").json()["total"], 2)  # empty = no filter
        self.assertEqual(self.get("/v1/cues?status=nonsense").json()["total"], 0)

    def test_bad_paging(self):
        for query, message in (("limit=0", "query.limit: Input should be greater than or equal to 1"),
                               ("limit=101", "query.limit: Input should be less than or equal to 100"),
                               ("limit=x", "query.limit: Input should be a valid integer, unable to parse string as an integer"),
                               ("offset=-1", "query.offset: Input should be greater than or equal to 0")):
            with self.subTest(query):
                self.assertError(self.get(f"/v1/cues?{query}"), 422, "validation_error", message)

    def test_it_requires_api_key(self):
        self.assertError(self.get("/v1/cues", anonymous=True), 401, "invalid_api_key")


class CueGetTests(CueTestCase):
    def test_it_works_with_executions(self):
        cue = self.create_cue()
        base = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        for i in range(12):
            Execution.objects.create(cue_id=cue["id"], scheduled_for=base + datetime.timedelta(hours=i))
        body = self.get(f"/v1/cues/{cue['id']}").json()
        self.assertEqual({k: body[k] for k in cue}, cue)
        self.assertEqual((body["execution_total"], body["execution_limit"], body["execution_offset"]), (12, 10, 0))
        self.assertEqual(len(body["executions"]), 10)
        first = body["executions"][0]
        self.assertEqual(set(first), {"id", "cue_id", "scheduled_for", "status", "http_status", "attempts",
                                      "error_message", "started_at", "delivered_at", "last_attempt_at",
                                      "outcome", "created_at", "updated_at"})
        self.assertEqual(first["scheduled_for"], "2026-01-01T11:00:00Z")  # newest first
        page = self.get(f"/v1/cues/{cue['id']}?execution_limit=5&execution_offset=10").json()
        self.assertEqual((len(page["executions"]), page["execution_limit"], page["execution_offset"]), (2, 5, 10))

    def test_it_hides_bobs_cue(self):
        cue = self.create_cue(key=self.bob_key)
        self.assertError(self.get(f"/v1/cues/{cue['id']}"), 404, "cue_not_found", "Cue not found")

    def test_unknown_and_malformed_ids(self):
        for cue_id in ("cue_000000000000", "x" * 300, "%00", "'; drop table cues; --"):
            with self.subTest(cue_id):
                self.assertError(self.get(f"/v1/cues/{cue_id}"), 404, "cue_not_found")

    def test_bad_execution_paging(self):
        cue = self.create_cue()
        self.assertError(self.get(f"/v1/cues/{cue['id']}?execution_limit=101"), 422, "validation_error",
                         "query.execution_limit: Input should be less than or equal to 100")
