"""The database rate limiter's counters (cueapi/ratelimit.py): one row per bucket and second,
summed over the window, pruned by the poller's hourly cleanup."""

from datetime import datetime, timezone

from django.db import connection
from django.test import TestCase

from cueapi import ratelimit
from cueapi.models import RateLimitCounter

START = 1_800_000_000.25


class RateLimitCounterTests(TestCase):
    def test_a_hit_is_one_row_per_second_and_the_window_sums_them(self):
        for offset in (0, 0.5, 1.1, 1.2, 1.3):
            self.assertTrue(ratelimit.hit("ratelimit:k", 10, now=START + offset).allowed)
        rows = list(RateLimitCounter.objects.order_by("second").values_list("second", "hits", "first_at"))
        self.assertEqual(rows, [(1_800_000_000, 2, START), (1_800_000_001, 3, START + 1.1)])
        decision = ratelimit.hit("ratelimit:k", 10, now=START + 30)
        self.assertEqual((decision.count, decision.oldest), (5, START))
        self.assertEqual(ratelimit.current_usage("ratelimit:k", now=START + 30), 6)

    def test_a_refused_hit_is_not_recorded(self):
        for _ in range(3):
            ratelimit.hit("ratelimit:k", 3, now=START)
        decision = ratelimit.hit("ratelimit:k", 3, now=START + 10)
        self.assertFalse(decision.allowed)
        self.assertEqual(decision.retry_after, 50)
        self.assertEqual(RateLimitCounter.objects.get().hits, 3)
        self.assertFalse(RateLimitCounter.objects.filter(second=int(START + 10)).exists())

    def test_a_second_leaves_the_window_with_its_first_hit(self):
        ratelimit.hit("ratelimit:k", 2, now=START)
        ratelimit.hit("ratelimit:k", 2, now=START + 0.5)
        self.assertFalse(ratelimit.hit("ratelimit:k", 2, now=START + 59.9).allowed)
        self.assertTrue(ratelimit.hit("ratelimit:k", 2, now=START + 60.1).allowed)

    def test_buckets_are_counted_apart(self):
        ratelimit.hit("ratelimit:a", 1, now=START)
        self.assertTrue(ratelimit.hit("ratelimit:b", 1, now=START).allowed)
        self.assertFalse(ratelimit.hit("ratelimit:a", 1, now=START).allowed)

    def test_the_hourly_cleanup_deletes_rows_out_of_the_window(self):
        ratelimit.hit("ratelimit:k", 10, now=START - 3600)
        ratelimit.hit("ratelimit:k", 10, now=START - 30)
        deleted = ratelimit.delete_old_counters(now=datetime.fromtimestamp(START, timezone.utc))
        self.assertEqual(deleted, 1)
        self.assertEqual(list(RateLimitCounter.objects.values_list("second", flat=True)), [int(START - 30)])

    def test_a_hit_costs_at_most_two_statements(self):
        ratelimit.hit("ratelimit:k", 10, now=START)
        # One statement on PostgreSQL; a read and an upsert on SQLite.
        with self.assertNumQueries(1 if connection.vendor == "postgresql" else 2):
            ratelimit.hit("ratelimit:k", 10, now=START)


class RateLimitCounterStorageTests(TestCase):
    def test_on_postgresql_the_counters_write_no_wal(self):
        """UNLOGGED (migration 0004): a request's counter write does not wait for a disk flush."""
        if connection.vendor != "postgresql":
            self.skipTest("an UNLOGGED table is PostgreSQL's")
        with connection.cursor() as cursor:
            cursor.execute("SELECT relpersistence FROM pg_class WHERE relname = 'rate_limit_counters'")
            self.assertEqual(cursor.fetchone(), ("u",))
