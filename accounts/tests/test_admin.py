from accounts.models import AuditEntry, User
from cueapi.ids import api_key_hash
from cueapi.testing import BaseTestCase


class UserAdminTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.operator = User.objects.create_superuser("ops@example.org", "correct horse battery")
        self.client.force_login(self.operator)

    def test_changelist_shows_prefix_not_secrets(self):
        r = self.client.get("/admin/accounts/user/")
        self.assertEqual(r.status_code, 200)
        page = r.content.decode()
        self.assertIn(self.alice.api_key_prefix, page)
        self.assertNotIn(self.alice_key, page)
        self.assertNotIn(self.alice.webhook_secret, page)

    def test_change_page_edits_limits_and_hides_secrets(self):
        url = f"/admin/accounts/user/{self.alice.pk}/change/"
        page = self.client.get(url).content.decode()
        self.assertNotIn(self.alice.webhook_secret, page)
        self.assertNotIn(self.alice.api_keys.get(primary=True).key_hash, page)
        r = self.client.post(url, {
            "email": "alice@example.org", "plan": "pro", "active_cue_limit": 50,
            "monthly_execution_limit": 10000, "rate_limit_per_minute": 600, "is_active": "on",
        })
        self.assertEqual(r.status_code, 302, r.content[:2000])
        self.alice.refresh_from_db()
        self.assertEqual((self.alice.plan, self.alice.active_cue_limit, self.alice.rate_limit_per_minute),
                         ("pro", 50, 600))
        self.assertEqual(self.get("/v1/auth/me").json()["active_cue_limit"], 50)

    def test_regenerate_key_action_asks_first(self):
        action = {"action": "regenerate_api_key", "_selected_action": [str(self.alice.pk)]}
        confirm = self.client.post("/admin/accounts/user/", action)
        self.assertContains(confirm, "stops working as soon as you confirm")
        self.assertContains(confirm, self.alice.api_key_prefix)
        self.alice.refresh_from_db()
        self.assertEqual(self.alice.api_keys.get(primary=True).key_hash, api_key_hash(self.alice_key))  # nothing changed yet
        self.assertEqual(self.get("/v1/auth/me").status_code, 200)

        done = self.client.post("/admin/accounts/user/", {**action, "post": "yes"}, follow=True)
        self.alice.refresh_from_db()
        self.assertNotEqual(self.alice.api_keys.get(primary=True).key_hash, api_key_hash(self.alice_key))
        self.assertError(self.get("/v1/auth/me"), 401, "key_rotated")
        new_key = next(str(m) for m in done.context["messages"]).rsplit(": ", 1)[1]
        self.assertEqual(api_key_hash(new_key), self.alice.api_keys.get(primary=True).key_hash)  # shown once, to hand over

    def test_staff_only(self):
        self.client.logout()
        self.assertEqual(self.client.get("/admin/accounts/user/").status_code, 302)


class ApiKeyAdminTests(BaseTestCase):
    def setUp(self):
        super().setUp()
        self.operator = User.objects.create_superuser("ops@example.org", "correct horse battery")
        self.client.force_login(self.operator)
        r = self.post("/v1/auth/keys", {"name": "build box", "scope": "worker"})
        self.named = r.json()

    def test_it_lists_prefix_scope_and_last_use_not_keys(self):
        self.get("/v1/auth/me", key=self.named["key"])
        page = self.client.get("/admin/accounts/apikey/").content.decode()
        for shown in (self.named["prefix"], "build box", "worker", self.alice_key[:12]):
            self.assertIn(shown, page)
        for secret in (self.named["key"], self.alice_key, api_key_hash(self.named["key"])):
            self.assertNotIn(secret, page)

    def test_revoking_stops_the_key_and_is_audited(self):
        primary = self.alice.api_keys.get(primary=True)
        action = {"action": "revoke", "_selected_action": [self.named["id"], primary.pk]}
        done = self.client.post("/admin/accounts/apikey/", action, follow=True)
        self.assertContains(done, "1 key(s) revoked.")
        self.assertContains(done, "can&#x27;t be revoked")  # the primary key stays
        self.assertError(self.get("/v1/auth/me", key=self.named["key"]), 401, "invalid_api_key")
        self.assertEqual(self.get("/v1/auth/me").status_code, 200)
        entry = AuditEntry.objects.get(action="key.revoked")
        self.assertEqual((entry.actor_type, entry.actor_id, entry.target_id),
                         ("admin", str(self.operator.pk), self.named["id"]))
