"""Who am I, and which projects can I see."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service.access import visible_projects
from axcenter.service.schemas import ProjectListOut, ProjectOut, WhoAmIOut
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


@router.get("/projects")
def projects(center: CenterDep, who: PrincipalDep) -> ProjectListOut:
    with center.store.read() as session:
        rows = session.execute(
            select(orm.Project, orm.Organization.name)
            .join(orm.Organization, orm.Organization.id == orm.Project.organization_id)
            .where(visible_projects(who))
            .order_by(orm.Project.name)
        ).all()
    return ProjectListOut(
        items=[
            ProjectOut(id=p.id, name=p.name, organization=org, sector=p.sector) for p, org in rows
        ]
    )
