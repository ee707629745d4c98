"""Regenerating the API key ends every session token issued before it: a stolen session can
neither read the new key nor rotate the owner out again."""

import jwt

from accounts.models import User
from cueapi.sessions import _session_secret, issue_session_token
from cueapi.testing import BaseTestCase

CONFIRM = {"X-Confirm-Destructive": "true"}
REVOKED = "Session ended: the API key was regenerated. Please log in again."


class KeyRotationEndsSessionsTests(BaseTestCase):
    def session(self, key=None):
        return self.post("/v1/auth/session/refresh", key=key).json()["session_token"]

    def assertSessionEnded(self, token):
        self.assertError(self.get("/v1/auth/me", key=token), 401, "session_revoked", REVOKED)
        self.assertError(self.get("/v1/auth/key", key=token), 401, "session_revoked")
        self.assertError(self.post("/v1/auth/session/refresh", key=token), 401, "session_revoked")
        self.assertError(self.post("/v1/auth/key/regenerate", key=token, headers=CONFIRM), 401, "session_revoked")

    def test_a_session_from_before_a_regenerate_stops_working(self):
        stolen = self.session()
        self.assertEqual(self.get("/v1/auth/me", key=stolen).status_code, 200)
        new_key = self.post("/v1/auth/key/regenerate", headers=CONFIRM).json()["api_key"]
        self.assertSessionEnded(stolen)
        # The owner carries on with the new key, and sessions minted from it work.
        self.assertEqual(self.get("/v1/auth/me", key=new_key).json()["email"], "alice@example.org")
        fresh = self.session(key=new_key)
        self.assertEqual(self.get("/v1/auth/key", key=fresh).json(), {"api_key": new_key})

    def test_a_regenerate_made_with_a_session_ends_that_session_too(self):
        token = self.session()
        new_key = self.post("/v1/auth/key/regenerate", key=token, headers=CONFIRM).json()["api_key"]
        self.assertSessionEnded(token)
        self.assertEqual(self.get("/v1/auth/me", key=new_key).status_code, 200)

    def test_the_cached_user_row_does_not_keep_a_session_alive(self):
        new_key = self.post("/v1/auth/key/regenerate", headers=CONFIRM).json()["api_key"]
        self.get("/v1/auth/me", key=new_key)  # the row is in the auth cache now
        token = self.session(key=new_key)
        self.post("/v1/auth/key/regenerate", key=new_key, headers=CONFIRM)
        self.assertSessionEnded(token)

    def test_other_users_sessions_are_untouched(self):
        bobs = self.session(key=self.bob_key)
        self.post("/v1/auth/key/regenerate", headers=CONFIRM)
        self.assertEqual(self.get("/v1/auth/me", key=bobs).json()["email"], "bob@example.org")

    def test_the_admin_action_ends_sessions_too(self):
        token = self.session()
        operator = User.objects.create_superuser("ops@example.org", "correct horse battery")
        self.client.force_login(operator)
        self.client.post("/admin/accounts/user/", {"action": "regenerate_api_key", "post": "yes",
                                                   "_selected_action": [str(self.alice.pk)]})
        self.client.logout()
        self.assertSessionEnded(token)
        self.assertEqual(self.get("/v1/auth/me", key=self.bob_key).status_code, 200)


class SessionTokenClaimsTests(BaseTestCase):
    def forge(self, **claims):
        base = {"sub": str(self.alice.pk), "type": "session", "ver": 0, "exp": 9999999999}
        return jwt.encode({k: v for k, v in {**base, **claims}.items() if v is not None}, _session_secret(), "HS256")

    def test_a_token_without_exp_or_ver_is_refused(self):
        self.assertEqual(self.get("/v1/auth/me", key=self.forge()).status_code, 200)  # the control
        for missing in ("exp", "ver"):
            with self.subTest(missing=missing):
                self.assertError(self.get("/v1/auth/me", key=self.forge(**{missing: None})), 401,
                                 "invalid_session", "Invalid session token")

    def test_issued_tokens_carry_the_users_version(self):
        self.alice.session_version = 7
        claims = jwt.decode(issue_session_token(self.alice), _session_secret(), algorithms=["HS256"])
        self.assertEqual(claims["ver"], 7)
