"""Who am I, and which projects can I see."""

from __future__ import annotations

from fastapi import APIRouter

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service.schemas import WhoAmIOut
from axcenter.store import orm

router = APIRouter(tags=["people"])


@router.get("/whoami")
def whoami(center: CenterDep, who: PrincipalDep) -> WhoAmIOut:
    with center.store.read() as session:
        org = session.get(orm.Organization, who.organization_id)
    return WhoAmIOut(
        id=who.user_id,
        name=who.name,
        organization_id=who.organization_id,
        organization=org.name if org else "",
        role=who.role.value,
    )
