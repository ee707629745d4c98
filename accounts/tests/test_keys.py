from accounts.models import User
from cueapi.ids import api_key_hash
from cueapi.testing import BaseTestCase

CONFIRM = {"X-Confirm-Destructive": "true"}


class KeyRegenerateTests(BaseTestCase):
    def test_it_works(self):
        r = self.post("/v1/auth/key/regenerate", headers=CONFIRM)
        self.assertEqual(r.status_code, 200)
        body = r.json()
        self.assertEqual(set(body), {"api_key", "previous_key_revoked"})
        self.assertTrue(body["previous_key_revoked"])
        self.assertNotEqual(body["api_key"], self.alice_key)
        self.alice.refresh_from_db()
        self.assertEqual(self.alice.api_keys.get(primary=True).key_hash, api_key_hash(body["api_key"]))
        self.assertEqual(self.alice.api_key_prefix, body["api_key"][:12])
        self.assertEqual(self.get("/v1/auth/me", key=body["api_key"]).status_code, 200)

    def test_old_key_answers_key_rotated(self):
        self.get("/v1/auth/me")  # the old key is in the auth cache now
        self.post("/v1/auth/key/regenerate", headers=CONFIRM)
        self.assertError(
            self.get("/v1/auth/me"), 401, "key_rotated",
            "This API key has been rotated. Use your new key.",
        )

    def test_it_needs_no_body(self):
        # cueapi-worker sends no body and no Content-Type.
        r = self.client.post(
            "/v1/auth/key/regenerate", HTTP_AUTHORIZATION=f"Bearer {self.alice_key}",
            HTTP_X_CONFIRM_DESTRUCTIVE="true", content_type="",
        )
        self.assertEqual(r.status_code, 200)

    def test_it_requires_confirmation(self):
        for headers in ({}, {"X-Confirm-Destructive": "True"}, {"X-Confirm-Destructive": "yes"}):
            self.assertError(
                self.post("/v1/auth/key/regenerate", headers=headers), 400, "confirmation_required",
                "This action is destructive. Set X-Confirm-Destructive: true header to confirm.",
            )
        self.assertEqual(self.get("/v1/auth/me").status_code, 200)  # old key still works

    def test_it_requires_api_key(self):
        self.assertError(self.post("/v1/auth/key/regenerate", anonymous=True, headers=CONFIRM), 401, "invalid_api_key")


class KeyRevealTests(BaseTestCase):
    def test_it_reveals_after_register(self):
        self.assertEqual(self.get("/v1/auth/key").json(), {"api_key": self.alice_key})

    def test_it_says_when_there_is_no_copy(self):
        User.objects.filter(pk=self.alice.pk).update(api_key_encrypted=None)  # an older account
        self.assertEqual(
            self.get("/v1/auth/key").json(),
            {"api_key": None, "prefix": self.alice_key[:12],
             "message": "Key not available. Regenerate to enable Reveal."},
        )

    def test_it_reveals_after_regenerate(self):
        new_key = self.post("/v1/auth/key/regenerate", headers=CONFIRM).json()["api_key"]
        self.assertEqual(self.get("/v1/auth/key", key=new_key).json(), {"api_key": new_key})
        self.assertNotIn(new_key, User.objects.get(pk=self.alice.pk).api_key_encrypted)

    def test_it_says_when_the_copy_does_not_decrypt(self):
        User.objects.filter(pk=self.alice.pk).update(api_key_encrypted="garbage")
        self.assertEqual(
            self.get("/v1/auth/key").json()["message"], "Key decryption failed. Regenerate to fix."
        )


class UnknownKeyTests(BaseTestCase):
    def test_unknown_key(self):
        self.assertError(
            self.get("/v1/auth/me", key="cue_sk_" + "0" * 32), 401, "invalid_api_key", "Invalid API key"
        )

    def test_deactivated_user(self):
        User.objects.filter(pk=self.alice.pk).update(is_active=False)
        self.assertError(self.get("/v1/auth/me"), 401, "invalid_api_key")

    def test_malformed_headers(self):
        for header in (self.alice_key, f"bearer {self.alice_key}", f"Token {self.alice_key}", "Bearer"):
            r = self.client.get("/v1/auth/me", HTTP_AUTHORIZATION=header)
            self.assertError(r, 401, "invalid_api_key", "Missing or invalid Authorization header")
