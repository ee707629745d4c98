import datetime

import jwt
import time_machine

from cueapi.sessions import _session_secret, issue_session_token
from cueapi.testing import BaseTestCase


class SessionTokenTests(BaseTestCase):
    def test_refresh_issues_a_token_that_authenticates(self):
        r = self.post("/v1/auth/session/refresh")
        self.assertEqual(r.status_code, 200)
        body = r.json()
        self.assertEqual(body["email"], "alice@example.org")
        claims = jwt.decode(body["session_token"], _session_secret(), algorithms=["HS256"])
        self.assertEqual(claims["sub"], str(self.alice.pk))
        self.assertEqual(claims["type"], "session")
        self.assertEqual(claims["exp"] - claims["iat"], 86400)
        me = self.get("/v1/auth/me", key=body["session_token"])
        self.assertEqual(me.json()["email"], "alice@example.org")

    def test_expired(self):
        with time_machine.travel(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)):
            token = issue_session_token(self.alice)
        self.assertError(self.get("/v1/auth/me", key=token), 401, "session_expired",
                         "Session expired. Please log in again.")

    def test_invalid(self):
        forged = jwt.encode({"sub": str(self.alice.pk), "type": "session", "exp": 9999999999}, "wrong-key-" * 4, "HS256")
        wrong_type = jwt.encode({"sub": str(self.alice.pk), "type": "refresh", "exp": 9999999999},
                                _session_secret(), "HS256")
        for token in ("garbage", forged, wrong_type):
            self.assertError(self.get("/v1/auth/me", key=token), 401, "invalid_session", "Invalid session token")

    def test_non_uuid_subject_is_401_not_500(self):
        token = jwt.encode({"sub": "not-a-uuid", "type": "session", "exp": 9999999999}, _session_secret(), "HS256")
        self.assertError(self.get("/v1/auth/me", key=token), 401, "invalid_session")

    def test_unknown_user(self):
        token = issue_session_token(self.alice)
        self.alice.delete()
        self.assertError(self.get("/v1/auth/me", key=token), 401, "user_not_found", "User not found")
