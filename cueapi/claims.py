"""Claiming rows under a lease: the one pattern every queue here uses (outbox rows,
notifications).

A row is claimable when it is due and unlocked (or its lock lapsed: its holder died). A claim
takes up to `limit` such rows — SKIP LOCKED on PostgreSQL, so claimers never wait on each
other; SQLite serialises writers — and stamps them with a lease and a fresh token. Only the
holder of a row's current token may record its result.
"""

import uuid
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Q


def claim_due(queryset, *, now, limit, lease_seconds, **also_set):
    """Claim due rows of `queryset` (rows with available_at, locked_until, lock_token);
    return (ids, token). `also_set` is written to the claimed rows too."""
    with transaction.atomic():
        due = (queryset.filter(available_at__lte=now)
               .filter(Q(locked_until__isnull=True) | Q(locked_until__lt=now))
               .order_by("available_at", "id"))
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("id", flat=True)[:limit])
        token = uuid.uuid4()
        if ids:
            queryset.model.objects.filter(id__in=ids).update(
                locked_until=now + timedelta(seconds=lease_seconds), lock_token=token, **also_set
            )
    return ids, token
