"""The audit trail (issue #20): who changed what, and when, in a user's account.

Services write the entries, in the transaction of the change where there is one; the caller
says who acts (an `Actor` built from the request or the admin), explicitly: no thread-locals.
`changes` never holds a secret: regenerations record that they happened (and the key prefix,
which /v1/auth/me shows anyway), cue changes record callback header and payload *keys* only.
"""

from dataclasses import dataclass

from django.utils import timezone

from accounts.models import AuditEntry
from cueapi.rows import RowLoader


@dataclass(frozen=True)
class Actor:
    type: str  # AuditEntry.ActorType
    id: str

    @classmethod
    def from_request(cls, request) -> "Actor":
        """The API key that authenticated the request, or the session's user."""
        key_id = getattr(request.auth, "pk", None)
        if key_id is not None:
            return cls(AuditEntry.ActorType.KEY, key_id)
        return cls(AuditEntry.ActorType.SESSION, str(request.user.pk))

    @classmethod
    def admin(cls, operator) -> "Actor":
        """The operator (a staff user) acting in the admin."""
        return cls(AuditEntry.ActorType.ADMIN, str(operator.pk))


def audit_entry(*, user_id, actor: Actor, action: str, target_id: str = "", changes: dict | None = None,
                now=None) -> AuditEntry:
    """An entry, not saved yet (several go in one bulk_create)."""
    return AuditEntry(user_id=user_id, at=now or timezone.now(), action=action, actor_type=actor.type,
                      actor_id=actor.id, target_id=target_id or "", changes=changes or {})


_AUDIT_ROWS = RowLoader(AuditEntry)
_AUDIT_FIELDS = ["user", "at", "action", "actor_type", "actor_id", "target_id", "changes"]


def audit_record(**fields) -> None:
    """Save one entry (audit_entry's arguments): a hand-written INSERT, as every cue write
    makes one (see cueapi.rows)."""
    _AUDIT_ROWS.insert(audit_entry(**fields), _AUDIT_FIELDS)


def audit_statement(**fields) -> tuple[str, list]:
    """audit_record's INSERT as (sql, params), to run with the change it records
    (cueapi.rows.execute_together)."""
    return _AUDIT_ROWS.insert_statement(audit_entry(**fields), _AUDIT_FIELDS)
