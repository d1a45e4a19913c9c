"""The audit log: who changed grants, quotas, prices, programs, users and roles, and how.

``record`` is called inside the transaction that makes the change, so a change and its
audit row commit together or not at all. The table is append-only: the database itself
refuses UPDATE and DELETE on it (migration 0005), so not even a bug here can rewrite
history. Only operators read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from axcenter.model.access import Principal
from axcenter.service.access import center_target, require
from axcenter.service.schemas import AuditOut
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = ["list_audit", "record"]


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a time without a zone is taken as UTC (the API's convention)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _plain(value: Any) -> Any:
    """JSON-safe copy of ``value`` (datetimes as ISO-8601 text)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def record(
    session: Session,
    who: Principal | None,
    action: str,
    object_type: str,
    object_id: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one audit row (``who`` None: the system itself, e.g. the first start)."""
    session.add(
        orm.AuditEntry(
            at=utcnow(),
            actor_id=who.user_id if who is not None else None,
            action=action,
            object_type=object_type,
            object_id=object_id,
            details=_plain(dict(details or {})),
        )
    )


def list_audit(
    center: Center,
    who: Principal,
    *,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    cursor: int | None = None,
) -> tuple[list[AuditOut], int | None]:
    """Newest first, keyset-paginated on the id; filters combine with AND.

    ``action`` matches a prefix (``grant.`` finds every grant change); ``actor`` is a
    user name or id.
    """
    require(who, "audit.read", center_target("audit log"))
    query = select(orm.AuditEntry, orm.User.name).outerjoin(
        orm.User, orm.User.id == orm.AuditEntry.actor_id
    )
    if action:
        query = query.where(orm.AuditEntry.action.startswith(action, autoescape=True))
    if object_type:
        query = query.where(orm.AuditEntry.object_type == object_type)
    if object_id:
        query = query.where(orm.AuditEntry.object_id == object_id)
    if actor:
        query = query.where((orm.User.name == actor) | (orm.AuditEntry.actor_id == actor))
    if since is not None:
        query = query.where(orm.AuditEntry.at >= _utc(since))
    if until is not None:
        query = query.where(orm.AuditEntry.at < _utc(until))
    if cursor is not None:
        query = query.where(orm.AuditEntry.id < cursor)
    with center.store.read() as session:
        rows = session.execute(query.order_by(orm.AuditEntry.id.desc()).limit(limit + 1)).all()
    more = len(rows) > limit
    items = [
        AuditOut(
            id=entry.id,
            at=entry.at,
            actor=name,
            actor_id=entry.actor_id,
            action=entry.action,
            object_type=entry.object_type,
            object_id=entry.object_id,
            details=dict(entry.details),
        )
        for entry, name in rows[:limit]
    ]
    return items, (items[-1].id if more and items else None)
