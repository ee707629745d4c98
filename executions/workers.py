"""The worker transport (SERVER.md §3.6, DESIGN.md §3.6): claims, leases, heartbeats, and the
workers' own registry. The claim itself is lifecycle.worker_claimed."""

from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from cueapi.errors import AppError
from executions import lifecycle
from executions.models import Execution, Worker
from executions.selectors import execution_get, parse_execution_id


def execution_claim(*, user: User, worker_id: str, execution_id: str, now: datetime | None = None) -> UUID:
    """Claim one execution for a worker. 409 `claim_failed` for anything not claimable (never 404)."""
    now = now or timezone.now()
    pk = parse_execution_id(execution_id)
    if pk is None or not lifecycle.worker_claimed(user=user, execution_id=pk, worker_id=worker_id, now=now):
        raise AppError("claim_failed", "Execution not available for claiming", 409)
    return pk


def execution_claim_next(*, user: User, worker_id: str, now: datetime | None = None) -> UUID:
    """Claim the oldest claimable execution (lifecycle.worker_claimed_next)."""
    pk = lifecycle.worker_claimed_next(user=user, worker_id=worker_id, now=now or timezone.now())
    if pk is None:
        raise AppError("claim_failed", "No executions available for claiming", 409)
    return pk


def execution_heartbeat(*, user: User, execution_id: str, worker_id: str | None = None,
                        now: datetime | None = None) -> datetime:
    """Extend a claim's lease; 409 unless delivering, 403 for another worker's claim."""
    now = now or timezone.now()
    execution = execution_get(user=user, execution_id=execution_id)
    if execution.status != Execution.Status.DELIVERING:
        raise AppError("execution_not_claiming", "Execution is not currently being claimed", 409)
    if worker_id and execution.claimed_by_worker and worker_id != execution.claimed_by_worker:
        raise AppError("not_execution_owner", "Only the claiming worker can heartbeat", 403)
    until = now + timedelta(seconds=settings.CUEAPI_WORKER_LEASE_SECONDS)
    Execution.objects.filter(pk=execution.pk, status=Execution.Status.DELIVERING).update(
        lease_expires_at=until, last_heartbeat_at=now, updated_at=now)
    return until


def worker_heartbeat(*, user: User, worker_id: str, handlers: list | None, now: datetime | None = None) -> datetime:
    """Upsert the worker's row (last_heartbeat = now, handlers replaced)."""
    now = now or timezone.now()
    updated = Worker.objects.filter(user=user, worker_id=worker_id).update(handlers=handlers, last_heartbeat=now)
    if not updated:
        try:
            with transaction.atomic():
                Worker.objects.create(user=user, worker_id=worker_id, handlers=handlers, last_heartbeat=now)
        except IntegrityError:  # its first two heartbeats raced
            Worker.objects.filter(user=user, worker_id=worker_id).update(handlers=handlers, last_heartbeat=now)
    return now


def worker_heartbeat_status(last_heartbeat: datetime, now: datetime) -> str:
    """`active`, `stale` or `dead` by the age of the last heartbeat (settings' thresholds)."""
    age = (now - last_heartbeat).total_seconds()
    if age < settings.CUEAPI_WORKER_ACTIVE_SECONDS:
        return "active"
    return "stale" if age < settings.CUEAPI_WORKER_STALE_SECONDS else "dead"


def worker_delete(*, user: User, worker_id: str) -> None:
    deleted, _ = Worker.objects.filter(user=user, worker_id=worker_id).delete()
    if not deleted:
        raise AppError("worker_not_found", "Worker not found", 404)
