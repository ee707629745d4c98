"""The audit trail (issue #20): an entry for each change, readable at /v1/audit, no secrets."""

import json
from datetime import timedelta

import time_machine
from django.utils import timezone

from accounts.models import AuditEntry, User
from cueapi.testing import HOOK_URL, CueTestCase, cue_body

CONFIRM = {"X-Confirm-Destructive": "true"}


class AuditTestCase(CueTestCase):
    def entries(self, query="", key=None):
        r = self.get("/v1/audit" + query, key=key)
        self.assertEqual(r.status_code, 200, r.content)
        return r.json()

    def primary_key_id(self, user=None):
        return (user or self.alice).api_keys.get(primary=True).pk


class AuditActionsTests(AuditTestCase):
    def test_each_action_is_recorded_with_its_actor(self):
        key = self.primary_key_id()
        cue = self.create_cue(callback={"url": HOOK_URL, "headers": {"Authorization": "Bearer handler-secret"}},
                              payload={"token": "payload-secret"})
        self.patch(f"/v1/cues/{cue['id']}", {"description": "nightly report"})
        self.patch(f"/v1/cues/{cue['id']}", {"status": "paused"})
        self.patch(f"/v1/cues/{cue['id']}", {"status": "active"})
        self.delete(f"/v1/cues/{cue['id']}")
        created = self.post("/v1/auth/keys", {"name": "ci", "scope": "read_only"}).json()
        self.delete(f"/v1/auth/keys/{created['id']}")
        self.post("/v1/auth/webhook-secret/regenerate", headers=CONFIRM)
        self.post("/v1/auth/alert-webhook-secret/regenerate", headers=CONFIRM)
        new_key = self.post("/v1/auth/key/regenerate", headers=CONFIRM).json()["api_key"]

        body = self.entries(key=new_key)
        self.assertEqual((body["total"], body["limit"], body["offset"]), (10, 50, 0))
        got = [(e["action"], e["target_id"]) for e in reversed(body["entries"])]  # newest first
        self.assertEqual(got, [
            ("cue.created", cue["id"]), ("cue.updated", cue["id"]), ("cue.paused", cue["id"]),
            ("cue.resumed", cue["id"]), ("cue.deleted", cue["id"]), ("key.created", created["id"]),
            ("key.revoked", created["id"]), ("webhook_secret.regenerated", None),
            ("alert_webhook_secret.regenerated", None), ("api_key.regenerated", key),
        ])
        for entry in body["entries"]:
            self.assertEqual(entry["actor"], {"type": "key", "id": key})
            self.assertEqual(set(entry), {"id", "at", "action", "actor", "target_id", "changes"})
        changes = {e["action"]: e["changes"] for e in body["entries"]}
        self.assertEqual(changes["cue.updated"], {"description": {"from": None, "to": "nightly report"}})
        self.assertEqual(changes["cue.paused"], {"status": {"from": "active", "to": "paused"}})
        self.assertEqual(changes["cue.resumed"], {"status": {"from": "paused", "to": "active"}})
        self.assertEqual(changes["cue.deleted"], {"name": "nightly"})
        self.assertEqual(changes["key.created"], {"name": "ci", "scope": "read_only", "prefix": created["prefix"]})
        self.assertEqual(changes["cue.created"]["callback_headers"], ["Authorization"])
        self.assertEqual(changes["cue.created"]["payload"], ["token"])
        self.assertEqual(changes["cue.created"]["status"], "active")

    def test_no_secret_is_in_any_entry(self):
        cue = self.create_cue(callback={"url": "http://127.0.0.1:9/hook?sig=url-secret",
                                        "headers": {"X-Token": "handler-secret"}},
                              payload={"token": "payload-secret"})
        self.patch(f"/v1/cues/{cue['id']}", {"callback": {"headers": {"X-Token": "new-handler-secret"}},
                                              "payload": {"token": "new-payload-secret"},
                                              "on_failure": {"webhook": "http://127.0.0.1:9/f?k=fail-secret"}})
        named = self.post("/v1/auth/keys", {"name": "ci", "scope": "full"}).json()["key"]
        webhook = self.post("/v1/auth/webhook-secret/regenerate", headers=CONFIRM).json()["webhook_secret"]
        alert = self.post("/v1/auth/alert-webhook-secret/regenerate", headers=CONFIRM).json()["alert_webhook_secret"]
        new_key = self.post("/v1/auth/key/regenerate", headers=CONFIRM).json()["api_key"]
        self.alice.refresh_from_db()
        stored = json.dumps(list(AuditEntry.objects.values()), default=str)
        served = self.get("/v1/audit", key=new_key).content.decode()
        for secret in ("handler-secret", "payload-secret", "url-secret", "fail-secret", named,
                       webhook, alert, new_key, self.alice_key, self.alice.api_key_encrypted,
                       self.alice.api_keys.get(primary=True).key_hash):
            with self.subTest(secret[:16]):
                self.assertNotIn(secret, stored)
                self.assertNotIn(secret, served)
        self.assertIn("callback_headers", served)  # the change is recorded, its values are not

    def test_a_session_and_an_operator_are_actors_too(self):
        token = self.post("/v1/auth/session/refresh").json()["session_token"]
        cue = self.create_cue(key=token)
        operator = User.objects.create_superuser("ops@example.org", "correct horse battery")
        self.client.force_login(operator)
        self.client.post("/admin/cues/cue/", {"action": "pause", "_selected_action": [cue["id"]]})
        actors = {e["action"]: e["actor"] for e in self.entries()["entries"]}
        self.assertEqual(actors["cue.created"], {"type": "session", "id": str(self.alice.pk)})
        self.assertEqual(actors["cue.paused"], {"type": "admin", "id": str(operator.pk)})

    def test_bulk_delete_and_upsert_are_recorded(self):
        first, second = self.create_cue(name="a"), self.create_cue(name="b")
        self.post("/v1/cues", {**cue_body(name="a", description="upserted"), "upsert": True})
        self.post("/v1/cues/bulk-delete", {"ids": [first["id"], second["id"], "cue_unknown"]}, headers=CONFIRM)
        got = sorted((e["action"], e["target_id"]) for e in self.entries()["entries"])
        self.assertEqual(got, sorted([("cue.created", first["id"]), ("cue.created", second["id"]),
                                      ("cue.updated", first["id"]), ("cue.deleted", first["id"]),
                                      ("cue.deleted", second["id"])]))

    def test_refused_changes_and_no_op_patches_record_nothing(self):
        cue = self.create_cue()
        self.assertEqual(self.patch(f"/v1/cues/{cue['id']}", {"retry": {"max_attempts": 99}}).status_code, 422)
        self.patch(f"/v1/cues/{cue['id']}", {"description": None})  # already None
        self.post("/v1/cues", cue_body())  # duplicate name: 409
        self.post("/v1/auth/keys", {"name": "x", "scope": "owner"})
        self.post("/v1/auth/webhook-secret/regenerate")  # not confirmed
        self.assertEqual([e["action"] for e in self.entries()["entries"]], ["cue.created"])


class AuditListTests(AuditTestCase):
    def test_paging_since_and_cue_filter(self):
        start = timezone.now()
        with time_machine.travel(start - timedelta(hours=1), tick=False):
            old = self.create_cue(name="old")
        with time_machine.travel(start, tick=False):
            new = self.create_cue(name="new")
            self.patch(f"/v1/cues/{new['id']}", {"status": "paused"})
        body = self.entries("?limit=1&offset=1")
        self.assertEqual((body["total"], body["limit"], body["offset"]), (3, 1, 1))
        self.assertEqual([e["action"] for e in body["entries"]], ["cue.created"])
        self.assertEqual({e["target_id"] for e in self.entries(f"?since={start.isoformat().replace('+', '%2B')}")
                          ["entries"]}, {new["id"]})
        self.assertEqual([e["action"] for e in self.entries(f"?cue_id={old['id']}")["entries"]], ["cue.created"])
        self.assertEqual(self.entries("?cue_id=cue_none")["entries"], [])

    def test_bad_queries_are_422(self):
        for query in ("limit=0", "limit=101", "offset=-1", "since=yesterday", "limit=x", "cue_id=%00"):
            with self.subTest(query):
                self.assertError(self.get(f"/v1/audit?{query}"), 422, "validation_error")

    def test_it_hides_bobs_entries(self):
        self.create_cue(key=self.bob_key)
        self.assertEqual(self.entries()["total"], 0)
        self.assertEqual(self.entries(key=self.bob_key)["total"], 1)

    def test_readable_with_read_only_not_worker_keys(self):
        keys = {scope: self.post("/v1/auth/keys", {"name": scope, "scope": scope}).json()["key"]
                for scope in ("read_only", "worker")}
        self.assertEqual(self.entries(key=keys["read_only"])["total"], 2)
        self.assertError(self.get("/v1/audit", key=keys["worker"]), 403, "insufficient_scope")
        self.assertError(self.get("/v1/audit", anonymous=True), 401, "invalid_api_key")


class AuditAdminTests(AuditTestCase):
    def test_operators_read_entries_and_cannot_change_them(self):
        cue = self.create_cue()
        operator = User.objects.create_superuser("ops@example.org", "correct horse battery")
        self.client.force_login(operator)
        page = self.client.get("/admin/accounts/auditentry/")
        self.assertContains(page, "cue.created")
        self.assertContains(page, cue["id"])
        entry = AuditEntry.objects.get()
        self.assertEqual(self.client.get(f"/admin/accounts/auditentry/{entry.pk}/change/").status_code, 200)
        self.client.post(f"/admin/accounts/auditentry/{entry.pk}/change/", {"action": "cue.deleted"})
        self.client.post(f"/admin/accounts/auditentry/{entry.pk}/delete/", {"post": "yes"})
        self.assertEqual(AuditEntry.objects.get().action, "cue.created")
        self.assertEqual(self.client.get("/admin/accounts/auditentry/add/").status_code, 403)
