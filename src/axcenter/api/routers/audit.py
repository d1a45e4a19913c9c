"""The audit log (operators only): who changed grants, quotas, prices, users and roles."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import audit as service
from axcenter.service.schemas import MAX_INT64, AuditListOut

router = APIRouter(tags=["audit"])


@router.get("/audit")
def list_audit(
    center: CenterDep,
    who: PrincipalDep,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[int | None, Query(ge=0, le=MAX_INT64)] = None,
) -> AuditListOut:
    """Newest first; ``action`` matches a prefix (``grant.``); ``cursor`` pages on."""
    items, next_cursor = service.list_audit(
        center,
        who,
        action=action,
        object_type=object_type,
        object_id=object_id,
        actor=actor,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return AuditListOut(items=items, next_cursor=next_cursor)
