"""Middleware: request id, body limit, rate limiting, CORS, trailing slashes."""

import io
import time
import uuid

import time_machine
from django.test import RequestFactory, override_settings

from accounts.models import User
from cueapi.middleware import BodySizeLimitMiddleware
from cueapi.testing import HOSTED_LIMITS, BaseTestCase

LIMIT = 1_048_576


class RequestIdTests(BaseTestCase):
    def test_every_response_has_a_fresh_one(self):
        first = self.get("/v1/auth/me", headers={"X-Request-Id": "mine"})["X-Request-Id"]
        second = self.get("/v1/nope")["X-Request-Id"]
        self.assertNotEqual(first, "mine")
        self.assertEqual(str(uuid.UUID(first)), first)
        self.assertNotEqual(first, second)


class BodyLimitTests(BaseTestCase):
    def test_over_the_limit_is_413(self):
        body = '{"email": "' + "a" * LIMIT + '"}'
        r = self.post("/v1/auth/register", body, anonymous=True)
        self.assertEqual(r.status_code, 413)
        self.assertEqual(
            r.content.decode(),
            '{"error": {"code": "request_too_large", "message": "Request body exceeds 1048576 bytes", "status": 413}}',
        )
        self.assertIn("X-Request-Id", r.headers)
        self.assertNotIn("X-RateLimit-Limit", r.headers)  # not counted by the limiter
        self.assertEqual(User.objects.count(), 2)

    def test_exactly_the_limit_is_allowed(self):
        padding = LIMIT - len('{"email": "carol@example.com", "x": ""}')
        body = '{"email": "carol@example.com", "x": "' + "a" * padding + '"}'
        self.assertEqual(len(body), LIMIT)
        self.assertEqual(self.post("/v1/auth/register", body, anonymous=True).status_code, 201)

    def chunked_request(self, body):
        request = RequestFactory().post("/v1/auth/register", content_type="application/json")
        del request.META["CONTENT_LENGTH"]
        request.META["HTTP_TRANSFER_ENCODING"] = "chunked"
        request.environ["wsgi.input"] = io.BytesIO(body)
        return request

    def test_chunked_body_over_the_limit_is_413(self):
        request = self.chunked_request(b"x" * (LIMIT + 1))
        response = BodySizeLimitMiddleware(lambda r: self.fail("must not get through"))(request)
        self.assertEqual(response.status_code, 413)

    def test_chunked_body_under_the_limit_is_read(self):
        request = self.chunked_request(b'{"email": "carol@example.com"}')
        seen = BodySizeLimitMiddleware(lambda r: r.body)(request)
        self.assertEqual(seen, b'{"email": "carol@example.com"}')


@override_settings(CUEAPI_RATE_LIMIT_ENABLED=True, **HOSTED_LIMITS)
class RateLimitTests(BaseTestCase):
    def test_the_61st_request_in_a_window_is_429(self):
        start = time.time()
        with time_machine.travel(start, tick=False):
            for i in range(60):
                r = self.get("/v1/auth/me")
                self.assertEqual(r.status_code, 200)
                self.assertEqual(r["X-RateLimit-Limit"], "60")
                self.assertEqual(r["X-RateLimit-Remaining"], str(59 - i))
                self.assertEqual(r["X-RateLimit-Reset"], str(int(start + 60)))
                self.assertNotIn("Retry-After", r.headers)
        with time_machine.travel(start + 20, tick=False):
            r = self.get("/v1/auth/me")
        self.assertError(r, 429, "rate_limit_exceeded", "Too many requests. Retry after 40 seconds.")
        self.assertEqual(r["Retry-After"], "40")
        self.assertEqual(r["X-RateLimit-Remaining"], "0")
        self.assertEqual(r["X-RateLimit-Reset"], str(int(start + 60)))
        self.assertNotIn("Access-Control-Allow-Origin", r.headers)
        # Other keys are not affected; the window slides.
        with time_machine.travel(start + 20, tick=False):
            self.assertEqual(self.get("/v1/auth/me", key=self.bob_key).status_code, 200)
        with time_machine.travel(start + 61, tick=False):
            self.assertEqual(self.get("/v1/auth/me").status_code, 200)

    def test_the_limit_is_the_users_own(self):
        User.objects.filter(pk=self.alice.pk).update(rate_limit_per_minute=2)
        self.assertEqual(self.get("/v1/auth/me")["X-RateLimit-Limit"], "2")
        self.get("/v1/auth/me")
        self.assertEqual(self.get("/v1/auth/me").status_code, 429)

    def test_unauthenticated_requests_are_limited_per_ip(self):
        for _ in range(60):
            self.get("/v1/nope", anonymous=True, REMOTE_ADDR="10.1.1.1")
        self.assertEqual(self.get("/v1/nope", anonymous=True, REMOTE_ADDR="10.1.1.1").status_code, 429)
        self.assertEqual(self.get("/v1/nope", anonymous=True, REMOTE_ADDR="10.1.1.2").status_code, 404)

    def test_health_is_exempt(self):
        r = self.get("/health", anonymous=True)
        self.assertNotIn("X-RateLimit-Limit", r.headers)

    @override_settings(CUEAPI_RATE_LIMIT_ENABLED=False)
    def test_it_can_be_disabled(self):
        self.assertNotIn("X-RateLimit-Limit", self.get("/v1/auth/me").headers)


class CorsTests(BaseTestCase):
    def test_preflight(self):
        r = self.client.options(
            "/v1/cues", HTTP_ORIGIN="https://app.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type",
        )
        self.assertEqual(r.status_code, 200)
        self.assertEqual(r["Access-Control-Allow-Origin"], "https://app.example")
        self.assertEqual(r["Access-Control-Allow-Credentials"], "true")

    def test_exposed_headers(self):
        r = self.get("/v1/auth/me", HTTP_ORIGIN="https://app.example")
        self.assertEqual(r["Access-Control-Allow-Origin"], "https://app.example")
        exposed = {h.strip().lower() for h in r["Access-Control-Expose-Headers"].split(",")}
        self.assertLessEqual(
            {"x-request-id", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
             "retry-after", "x-cueapi-usage-warning"},
            exposed,
        )


class TrailingSlashTests(BaseTestCase):
    def test_known_route_with_slash_redirects(self):
        r = self.get("/v1/auth/me/?x=1")
        self.assertEqual(r.status_code, 307)
        self.assertEqual(r["Location"], "/v1/auth/me?x=1")

    def test_unknown_route_with_slash_is_404(self):
        self.assertError(self.get("/v1/nope/"), 404, "http_error")
