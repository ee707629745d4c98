import datetime
import re
from datetime import timedelta

import time_machine
from django.core import mail
from django.test import override_settings

from accounts.device import delete_expired_device_codes
from accounts.models import DeviceCode, User
from cueapi.testing import BaseTestCase

NOW = datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc)


@override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend", BASE_URL="http://testserver")
@time_machine.travel(NOW, tick=False)
class DeviceLoginTests(BaseTestCase):
    def start(self, code="ABCD-EFGH"):
        return self.post("/v1/auth/device-code", {"device_code": code}, anonymous=True)

    def submit(self, email, code="ABCD-EFGH"):
        return self.post("/v1/auth/device-code/submit-email", {"device_code": code, "email": email}, anonymous=True)

    def poll(self, code="ABCD-EFGH"):
        return self.post("/v1/auth/device-code/poll", {"device_code": code}, anonymous=True).json()

    def follow_link(self):
        link = re.search(r"http://testserver(\S+)", mail.outbox[-1].body).group(1)
        return self.client.get(link)

    def test_a_new_user_logs_in(self):
        r = self.start()
        self.assertEqual(r.status_code, 201)
        self.assertEqual(r.json(), {"verification_url": "http://testserver/auth/device?code=ABCD-EFGH", "expires_in": 900})
        self.assertEqual(self.poll(), {"status": "pending"})
        self.assertEqual(self.client.get("/auth/device?code=ABCD-EFGH").status_code, 200)
        self.assertEqual(self.submit("new@example.com").json(), {"status": "email_sent"})
        self.assertEqual(self.poll(), {"status": "email_sent"})
        page = self.follow_link()
        self.assertContains(page, "You're in.")
        body = self.poll()
        self.assertEqual((body["status"], body["email"]), ("approved", "new@example.com"))
        self.assertRegex(body["api_key"], r"^cue_sk_[0-9a-f]{32}$")
        self.assertEqual(self.get("/v1/auth/me", key=body["api_key"]).json()["email"], "new@example.com")
        self.assertEqual(self.poll(), {"status": "claimed"})  # the key is handed out once
        self.assertIsNone(DeviceCode.objects.get().api_key_encrypted)
        # The one-time session token becomes a session JWT, once.
        session = self.post("/v1/auth/session", {"token": body["session_token"]}, anonymous=True).json()
        self.assertEqual(self.get("/v1/auth/me", key=session["session_token"]).json()["email"], "new@example.com")
        self.assertError(self.post("/v1/auth/session", {"token": body["session_token"]}, anonymous=True),
                         401, "invalid_token", "Invalid or expired session token")

    def test_a_registered_user_receives_her_key(self):
        key = self.post("/v1/auth/register", {"email": "carol@example.com"}, anonymous=True).json()["api_key"]
        self.start()
        self.submit("carol@example.com")
        self.follow_link()
        body = self.poll()
        self.assertEqual((body["status"], body["email"], body["api_key"]), ("approved", "carol@example.com", key))
        self.assertNotIn("existing_user", body)
        self.assertEqual(User.objects.filter(email="carol@example.com").count(), 1)
        self.assertEqual(self.get("/v1/auth/me", key=key).status_code, 200)  # her key was not rotated

    def test_an_account_without_a_key_copy_is_told_so(self):
        User.objects.filter(pk=self.alice.pk).update(api_key_encrypted=None)  # created by an older version
        self.start()
        self.submit("alice@example.org")
        self.follow_link()
        body = self.poll()
        self.assertEqual((body["status"], body.get("existing_user"), "api_key" in body), ("approved", True, False))
        self.assertEqual(self.get("/v1/auth/me").status_code, 200)  # her key was not rotated

    def test_the_link_works_once_and_only_with_its_token(self):
        self.start()
        self.submit("new@example.com")
        row = DeviceCode.objects.get()
        bad = self.client.get(f"/v1/auth/verify?token={'0' * 64}&device_code=ABCD-EFGH")
        self.assertContains(bad, "Invalid verification token", status_code=400)
        self.assertContains(self.follow_link(), "You're in.")
        self.assertContains(self.follow_link(), "Invalid device code status", status_code=400)
        self.assertEqual(row.device_code, "ABCD-EFGH")
        self.assertContains(self.client.get("/v1/auth/verify?token=x&device_code=nope"), "Device code not found",
                            status_code=400)
        self.assertError(self.client.get("/v1/auth/verify?token=x"), 422, "validation_error",
                         "query.device_code: Field required")
        self.assertError(self.client.get("/auth/device"), 422, "validation_error", "query.code: Field required")

    def test_expiry_and_reuse(self):
        self.start()
        self.assertError(self.start(), 409, "device_code_exists", "Device code already in use")
        with time_machine.travel(NOW + timedelta(seconds=901), tick=False):
            self.assertEqual(self.poll(), {"status": "expired"})
            self.assertError(self.submit("new@example.com"), 400, "device_code_expired", "Device code expired")
            self.assertEqual(self.start().status_code, 201)  # an expired code is reused
        self.assertEqual(self.poll("never-seen"), {"status": "expired"})

    def test_errors(self):
        self.assertError(self.start("short"), 400, "invalid_device_code", "Device code must be 6-128 letters, digits or hyphens")
        self.assertError(self.submit("new@example.com", code="nope-nope"), 404, "device_code_not_found")
        self.start()
        self.submit("new@example.com")
        self.assertError(self.submit("new@example.com"), 400, "invalid_status",
                         "Device code status is 'email_sent', expected 'pending'")
        self.assertError(self.submit("not-an-email"), 422, "validation_error")

    def test_rate_limits(self):
        for i in range(5):
            self.assertEqual(self.start(f"code-{i:04d}").status_code, 201)
        self.assertError(self.start("code-9999"), 429, "rate_limit_exceeded", "Too many device code requests")
        for _ in range(30):
            self.poll("code-0000")
        r = self.post("/v1/auth/device-code/poll", {"device_code": "code-0000"}, anonymous=True)
        self.assertError(r, 429, "rate_limit_exceeded", "Poll rate limit exceeded")
        for i in range(3):
            self.submit("same@example.com", code=f"code-{i:04d}")
        self.assertError(self.submit("same@example.com", code="code-0003"), 429, "rate_limit_exceeded",
                         "Too many magic link requests for this email")

    def test_old_codes_are_cleaned_up(self):
        self.start()
        self.assertEqual(delete_expired_device_codes(now=NOW + timedelta(hours=25)), 1)


class EchoTests(BaseTestCase):
    TOKEN = "t" * 16

    def test_store_and_read(self):
        self.assertEqual(self.get(f"/v1/echo/{self.TOKEN}").json(), {"status": "waiting"})
        r = self.post(f"/v1/echo/{self.TOKEN}", {"hello": "world"}, anonymous=True, headers={"X-Extra": "1"})
        self.assertEqual(r.json(), {"stored": True})
        body = self.get(f"/v1/echo/{self.TOKEN}").json()
        self.assertEqual((body["status"], body["payload"]), ("delivered", {"hello": "world"}))
        self.assertEqual(body["headers"]["x-extra"], "1")
        self.assertTrue(body["received_at"].endswith("+00:00"))

    def test_errors(self):
        self.assertError(self.post("/v1/echo/short", {}, anonymous=True), 400, "invalid_token",
                         "Token must be at least 16 characters")
        self.assertEqual(self.post(f"/v1/echo/{self.TOKEN}", "not json", anonymous=True).status_code, 200)
        self.assertError(self.get(f"/v1/echo/{self.TOKEN}", anonymous=True), 401, "invalid_api_key")
