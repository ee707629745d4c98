"""/health keeps the contract's "postgres"/"redis" keys and says what really runs behind them."""

from unittest import skipUnless

from django.db import connection
from django.test import override_settings

from cueapi.testing import BaseTestCase


class HealthBackendsTests(BaseTestCase):
    @skipUnless(connection.vendor == "sqlite", "the SQLite default")
    def test_it_names_sqlite_and_the_database_cache(self):
        body = self.get("/health", anonymous=True).json()
        self.assertEqual(body["backends"], {"database": "sqlite", "cache": "database"})
        # The contract's keys stay as they are.
        self.assertEqual(set(body["services"]), {"postgres", "redis", "poller", "worker"})

    @skipUnless(connection.vendor == "postgresql", "PostgreSQL")
    def test_it_names_postgresql(self):
        body = self.get("/health", anonymous=True).json()
        self.assertEqual(body["backends"]["database"], "postgresql")

    @override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}})
    def test_it_names_another_cache(self):
        body = self.get("/health", anonymous=True).json()
        self.assertEqual(body["backends"]["cache"], "locmem")
        self.assertEqual(body["services"]["redis"], "ok")
