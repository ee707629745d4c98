"""Helpers for the engine's batch statements."""

from django.db.models import Case, Field, Value, When


def value_by_pk(values: dict, output_field: Field):
    """An UPDATE's value for a column that may differ by row (`values`: primary key -> value):
    a single value when every row gets the same one, else a CASE on the primary key."""
    distinct = set(values.values())
    if len(distinct) == 1:
        return Value(distinct.pop(), output_field=output_field)
    return Case(*(When(pk=pk, then=Value(value, output_field=output_field)) for pk, value in values.items()),
                output_field=output_field)
