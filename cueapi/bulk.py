"""Helpers for the hand-written SQL of the engine's hot paths and batch statements: plain SQL
that PostgreSQL and SQLite both run, values passed through the backend's adapters."""

from datetime import datetime
from datetime import timezone as dt_timezone

from django.db import connection
from django.db.models import Model
from django.utils import timezone
from django.utils.dateparse import parse_datetime


def in_list(values) -> str:
    """`(%s, %s, ...)`: an IN list's placeholders, one per value (SQLite has no arrays)."""
    return "(" + ", ".join(["%s"] * len(values)) + ")"


def fetch(sql: str, params) -> list[tuple]:
    """The rows of one hand-written statement (a SELECT, or a write with RETURNING)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def execute(sql: str, params) -> int:
    """Run one hand-written write; return how many rows it changed (the guard's verdict)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def db_time(moment: datetime | None):
    """A datetime as the database compares it (SQLite: naive UTC text)."""
    return connection.ops.adapt_datetimefield_value(moment)


def from_db_time(value) -> datetime | None:
    """A datetime read by hand-written SQL, aware (SQLite answers an aggregate with text)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and timezone.is_naive(value):
        value = timezone.make_aware(value, dt_timezone.utc)
    return value


def db_id(model: type[Model], field: str, value):
    """A key or UUID value as the database stores it (SQLite: a UUID as 32 hex digits)."""
    return model._meta.get_field(field).get_db_prep_value(value, connection)


def sql_by_id(values: dict, column: str = "id") -> tuple[str, list]:
    """An UPDATE's value for a column that may differ by row: (SQL, parameters), one
    placeholder when every row gets the same value, else a CASE on `column` (`values`: the
    row's id as the database stores it -> value)."""
    distinct = set(values.values())
    if len(distinct) == 1:
        return "%s", [distinct.pop()]
    params = []
    for row_id, value in values.items():
        params += [row_id, value]
    return f"CASE {column} " + "WHEN %s THEN %s " * len(values) + "END", params
