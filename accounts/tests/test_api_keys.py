"""Named API keys (issue #20): create, list, revoke, last_used_at, the limit, isolation."""

from datetime import timedelta

import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import MAX_KEYS_PER_USER, ApiKey
from cueapi.ids import api_key_hash
from cueapi.testing import BaseTestCase


class KeyTestCase(BaseTestCase):
    def create_key(self, name="ci", scope="read_only", key=None):
        r = self.post("/v1/auth/keys", {"name": name, "scope": scope}, key=key)
        self.assertEqual(r.status_code, 201, r.content)
        return r.json()


class CreateKeyTests(KeyTestCase):
    def test_it_works(self):
        body = self.create_key("deploy bot", "worker")
        # Exactly the keys: no `primary` (a made key never is) and no `last_used_at`.
        self.assertEqual(set(body), {"id", "name", "scope", "key", "prefix", "created_at"})
        self.assertRegex(body["id"], r"^key_[a-z0-9]{16}$")
        self.assertRegex(body["key"], r"^cue_sk_[0-9a-f]{32}$")
        self.assertEqual((body["name"], body["scope"], body["prefix"]), ("deploy bot", "worker", body["key"][:12]))
        row = ApiKey.objects.get(pk=body["id"])
        self.assertEqual(row.key_hash, api_key_hash(body["key"]))  # stored hashed only
        self.assertEqual(self.get("/v1/auth/me", key=body["key"]).json()["email"], "alice@example.org")

    def test_it_refuses_bad_input_and_persists_nothing(self):
        for body in ({}, {"name": "x"}, {"scope": "full"}, {"name": "", "scope": "full"},
                     {"name": "x" * 101, "scope": "full"}, {"name": "x", "scope": "admin"},
                     {"name": 3, "scope": "full"}, {"name": "a\x00b", "scope": "full"}):
            with self.subTest(body):
                self.assertError(self.post("/v1/auth/keys", body), 422, "validation_error")
        self.assertEqual(ApiKey.objects.filter(user=self.alice).count(), 1)

    def test_it_requires_a_full_key_or_a_session(self):
        read_only = self.create_key(scope="read_only")["key"]
        self.assertError(self.post("/v1/auth/keys", {"name": "y", "scope": "full"}, key=read_only),
                         403, "insufficient_scope")
        self.assertError(self.post("/v1/auth/keys", {"name": "y", "scope": "full"}, anonymous=True),
                         401, "invalid_api_key")
        self.assertEqual(ApiKey.objects.filter(user=self.alice).count(), 2)

    def test_a_full_named_key_can_manage_keys(self):
        full = self.create_key(scope="full")["key"]
        other = self.create_key("other", "worker", key=full)
        self.assertEqual(self.delete(f"/v1/auth/keys/{other['id']}", key=full).status_code, 204)

    def test_a_user_has_at_most_twenty_keys(self):
        for i in range(MAX_KEYS_PER_USER - 1):  # the primary key counts
            self.create_key(f"k{i}")
        r = self.post("/v1/auth/keys", {"name": "one too many", "scope": "read_only"})
        self.assertError(r, 403, "key_limit_exceeded")
        self.assertEqual(ApiKey.objects.filter(user=self.alice).count(), MAX_KEYS_PER_USER)
        self.assertEqual(self.create_key("bob's", key=self.bob_key)["name"], "bob's")  # per user
        self.delete(f"/v1/auth/keys/{ApiKey.objects.filter(user=self.alice, primary=False).first().pk}")
        self.create_key("room again")


class ListKeysTests(KeyTestCase):
    def test_it_lists_without_secrets(self):
        created = self.create_key("ci", "read_only")
        r = self.get("/v1/auth/keys")
        self.assertEqual(r.status_code, 200)
        body = r.json()
        self.assertEqual(body["total"], 2)
        primary, named = body["keys"]
        self.assertEqual((primary["name"], primary["scope"], primary["primary"], primary["prefix"]),
                         ("default", "full", True, self.alice_key[:12]))
        self.assertEqual(set(named), {"id", "name", "scope", "prefix", "primary", "created_at", "last_used_at"})
        self.assertEqual((named["id"], named["name"], named["last_used_at"]), (created["id"], "ci", None))
        for secret in (created["key"], self.alice_key, api_key_hash(created["key"])):
            self.assertNotIn(secret, r.content.decode())

    def test_it_ends_the_session_tokens_it_could_have_minted(self):
        created = self.create_key("ci", "full")
        token = self.post("/v1/auth/session/refresh", key=created["key"]).json()["session_token"]
        self.assertEqual(self.get("/v1/cues", key=token).status_code, 200)
        self.assertEqual(self.delete(f"/v1/auth/keys/{created['id']}").status_code, 204)
        self.assertError(self.get("/v1/cues", key=token), 401, "session_revoked")
        self.assertError(self.post("/v1/auth/keys", {"name": "x", "scope": "full"}, key=token), 401,
                         "session_revoked")

    def test_it_hides_bobs_keys(self):
        bobs = self.create_key("bob's", key=self.bob_key)
        ids = [k["id"] for k in self.get("/v1/auth/keys").json()["keys"]]
        self.assertNotIn(bobs["id"], ids)
        self.assertEqual(len(ids), 1)


class RevokeKeyTests(KeyTestCase):
    def test_it_works_at_once(self):
        created = self.create_key("ci", "full")
        self.assertEqual(self.get("/v1/auth/me", key=created["key"]).status_code, 200)
        r = self.delete(f"/v1/auth/keys/{created['id']}")
        self.assertEqual(r.status_code, 204)
        self.assertError(self.get("/v1/auth/me", key=created["key"]), 401, "invalid_api_key")
        self.assertFalse(ApiKey.objects.filter(pk=created["id"]).exists())
        self.assertEqual(self.get("/v1/auth/me").status_code, 200)  # the primary key works on

    def test_a_key_can_revoke_itself(self):
        created = self.create_key("ci", "full")
        self.assertEqual(self.delete(f"/v1/auth/keys/{created['id']}", key=created["key"]).status_code, 204)
        self.assertError(self.get("/v1/auth/me", key=created["key"]), 401, "invalid_api_key")

    def test_it_hides_bobs_keys(self):
        bobs = self.create_key("bob's", "full", key=self.bob_key)
        self.assertError(self.delete(f"/v1/auth/keys/{bobs['id']}"), 404, "key_not_found")
        self.assertEqual(self.get("/v1/auth/me", key=bobs["key"]).status_code, 200)

    def test_unknown_ids_are_404(self):
        for key_id in ("key_nope", "x" * 300, "%00"):
            with self.subTest(key_id):
                self.assertError(self.delete(f"/v1/auth/keys/{key_id}"), 404, "key_not_found")

    def test_the_primary_key_is_regenerated_not_revoked(self):
        primary = self.get("/v1/auth/keys").json()["keys"][0]
        self.assertError(self.delete(f"/v1/auth/keys/{primary['id']}"), 409, "primary_key")
        self.assertEqual(self.get("/v1/auth/me").status_code, 200)

    def test_regenerating_the_primary_key_leaves_named_keys_alone(self):
        named = self.create_key("ci", "worker")
        r = self.post("/v1/auth/key/regenerate", headers={"X-Confirm-Destructive": "true"})
        self.assertError(self.get("/v1/auth/me"), 401, "key_rotated")
        self.assertEqual(self.get("/v1/auth/me", key=r.json()["api_key"]).status_code, 200)
        self.assertEqual(self.get("/v1/auth/me", key=named["key"]).status_code, 200)
        self.assertEqual(ApiKey.objects.filter(user=self.alice).count(), 2)

    def test_a_deactivated_user_keys_stop(self):
        named = self.create_key("ci", "full")
        self.alice.is_active = False
        self.alice.save()
        self.assertError(self.get("/v1/auth/me", key=named["key"]), 401, "invalid_api_key")


class LastUsedTests(KeyTestCase):
    def test_it_is_written_at_most_once_a_minute(self):
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            created = self.create_key("ci", "read_only")
            self.get("/v1/cues", key=created["key"])
            self.assertEqual(ApiKey.objects.get(pk=created["id"]).last_used_at, start)
        with time_machine.travel(start + timedelta(seconds=59), tick=False):
            with CaptureQueriesContext(connection) as queries:
                self.get("/v1/cues", key=created["key"])
            self.assertFalse([q for q in queries if q["sql"].startswith('UPDATE "api_keys"')])
            self.assertEqual(ApiKey.objects.get(pk=created["id"]).last_used_at, start)
        later = start + timedelta(seconds=61)
        with time_machine.travel(later, tick=False):
            self.get("/v1/cues", key=created["key"])
            self.assertEqual(ApiKey.objects.get(pk=created["id"]).last_used_at, later)
        listed = {k["id"]: k for k in self.get("/v1/auth/keys").json()["keys"]}
        self.assertIsNotNone(listed[created["id"]]["last_used_at"])

    def test_the_guard_is_in_sql(self):
        """Two processes that both read a stale value write once: the second UPDATE matches no row."""
        from cueapi.authentication import key_touch

        now = timezone.now()
        first, second = ApiKey.objects.get(user=self.alice), ApiKey.objects.get(user=self.alice)
        key_touch(first, now)
        key_touch(second, now + timedelta(seconds=5))  # its in-memory copy is stale (None)
        self.assertEqual(ApiKey.objects.get(user=self.alice).last_used_at, now)

    def test_a_request_refused_for_scope_still_counts_as_use(self):
        created = self.create_key("ci", "worker")
        self.assertError(self.post("/v1/cues", {}, key=created["key"]), 403, "insufficient_scope")
        # Authenticated it was (scope is checked after): the use counts, as it should.
        self.assertIsNotNone(ApiKey.objects.get(pk=created["id"]).last_used_at)


class AuthLookupTests(KeyTestCase):
    def test_a_key_costs_one_query(self):
        created = self.create_key("ci", "read_only")
        self.get("/v1/auth/me", key=created["key"])  # last_used_at written now, not below
        for key in (self.alice_key, created["key"]):
            self.get("/v1/auth/me", key=key)
            with self.subTest(key[:12]), CaptureQueriesContext(connection) as queries:
                from cueapi.authentication import key_for_api_key
                self.assertEqual(key_for_api_key(key).user, self.alice)
            self.assertEqual(len(queries), 1)
            self.assertIn("api_keys", queries[0]["sql"])
