"""The key lookup and the rate-limit hit in one statement (PostgreSQL's database limiter):
UserManager.api_key_counting_hit over cueapi.ratelimit.hit_with_lookup."""

import unittest
from unittest import mock

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from cueapi import ratelimit
from cueapi.ids import api_key_hash
from cueapi.models import RateLimitCounter
from cueapi.testing import BaseTestCase

START = 1_800_000_000.25
Users = get_user_model().objects


@unittest.skipUnless(connection.vendor == "postgresql", "the combined statement is PostgreSQL's")
class KeyLookupCountingHitTests(BaseTestCase):
    def hit(self, key_hash, bucket="ratelimit:k", default_limit=5, now=START):
        with mock.patch("cueapi.ratelimit.time.time", return_value=now):
            return Users.api_key_counting_hit(key_hash, bucket=bucket, default_limit=default_limit)

    def test_a_known_key_comes_back_with_its_user_and_its_users_limit(self):
        self.alice.rate_limit_per_minute = 3
        self.alice.save()
        with self.assertNumQueries(1):
            key, decision = self.hit(api_key_hash(self.alice_key))
        self.assertEqual(key, Users.api_key(api_key_hash(self.alice_key)))
        self.assertEqual(key.user.pk, self.alice.pk)
        self.assertEqual(key.user.rate_limit_per_minute, 3)
        self.assertEqual((decision.allowed, decision.limit, decision.count), (True, 3, 0))
        self.assertEqual(ratelimit.current_usage("ratelimit:k", now=START), 1)

    def test_the_users_limit_refuses_without_recording(self):
        self.alice.rate_limit_per_minute = 2
        self.alice.save()
        for _ in range(2):
            self.assertTrue(self.hit(api_key_hash(self.alice_key))[1].allowed)
        key, decision = self.hit(api_key_hash(self.alice_key), now=START + 10)
        self.assertIsNotNone(key)
        self.assertFalse(decision.allowed)
        self.assertEqual((decision.count, decision.retry_after), (2, 50))
        self.assertEqual(list(RateLimitCounter.objects.values_list("hits", flat=True)), [2])

    def test_an_unknown_key_counts_against_the_default_limit(self):
        key, decision = self.hit(api_key_hash("cue_sk_" + "0" * 32), default_limit=1)
        self.assertIsNone(key)
        self.assertEqual((decision.allowed, decision.limit), (True, 1))
        key, decision = self.hit(api_key_hash("cue_sk_" + "0" * 32), default_limit=1)
        self.assertFalse(decision.allowed)

    def test_a_deactivated_users_key_is_not_found(self):
        self.alice.is_active = False
        self.alice.save()
        key, decision = self.hit(api_key_hash(self.alice_key), default_limit=7)
        self.assertIsNone(key)
        self.assertEqual(decision.limit, 7)

    @override_settings(CUEAPI_RATE_LIMIT_ENABLED=True)
    def test_a_request_costs_one_statement_for_its_key_and_its_limit(self):
        self.alice.rate_limit_per_minute = 4
        self.alice.save()
        # Warm: the key's last-used stamp is written at most once a minute.
        self.get("/v1/cues/nope")
        with CaptureQueriesContext(connection) as queries:
            response = self.get("/v1/cues/nope")
        self.assertError(response, 404, "cue_not_found")
        # The key lookup and the limiter: one statement; the other is the view's cue lookup.
        sqls = [query["sql"] for query in queries.captured_queries]
        self.assertEqual(len(sqls), 2, sqls)
        self.assertIn("api_keys", sqls[0])
        self.assertIn("rate_limit_counters", sqls[0])
        self.assertNotIn("rate_limit_counters", sqls[1])
        self.assertEqual(response["X-RateLimit-Limit"], "4")
        self.assertEqual(response["X-RateLimit-Remaining"], "2")


class TokenHashedOnceTests(BaseTestCase):
    @override_settings(CUEAPI_RATE_LIMIT_ENABLED=True)
    def test_a_request_hashes_its_key_once(self):
        """The limiter's bucket, the key lookup and authentication share one SHA-256."""
        from cueapi import authentication, ids, middleware

        hashed = mock.Mock(wraps=ids.api_key_hash)
        # Wherever the request path might hash it (the middleware once did, separately).
        with mock.patch.object(authentication, "api_key_hash", hashed), \
                mock.patch.object(middleware, "api_key_hash", hashed, create=True):
            self.assertEqual(self.get("/v1/cues").status_code, 200)
        hashed.assert_called_once_with(self.alice_key)

    def test_a_rotated_key_is_still_told_apart(self):
        old_key = self.alice_key
        self.assertEqual(self.post("/v1/auth/key/regenerate", headers={"X-Confirm-Destructive": "true"}).status_code,
                         200)
        self.assertError(self.get("/v1/cues", key=old_key), 401, "key_rotated")
