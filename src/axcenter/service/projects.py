"""Projects: an organization's work under a funding program, and who belongs to it.

Organization admins create and edit their organization's projects and choose members;
operators do it anywhere. A project's members see it, its jobs and its allocations;
reviewers see the basic information of the projects whose requests they review.

The principal investigator is a user of the project's organization and always a member.
Membership decides who may spend a project's grant, so changes to it are audited.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from axcenter.accounting.ledger import current_allocation
from axcenter.model.access import Principal, Role
from axcenter.model.ids import new_id
from axcenter.service.access import (
    allowed,
    org_target,
    project_named,
    project_target,
    readable_projects,
    require,
    submittable_projects,
    visible_allocations,
)
from axcenter.service.audit import record
from axcenter.service.errors import Conflict, InvalidInput, NotFound
from axcenter.service.grants import allocation_out, warning_line
from axcenter.service.organizations import org_by_ref
from axcenter.service.programs import program_by_ref
from axcenter.service.schemas import (
    MemberOut,
    ProjectDetailOut,
    ProjectIn,
    ProjectInfoOut,
    ProjectPatchIn,
)
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "add_member",
    "create_project",
    "create_project_tx",
    "get_project",
    "list_projects",
    "project_by_ref",
    "remove_member",
    "requestable_names",
    "submittable_names",
    "update_project",
]


def project_by_ref(session: Session, ref: str, *, field: str | None = None) -> orm.Project:
    """The project ``ref`` (``prj_`` id or name), whoever may see it: callers check
    visibility with ``access.require``. NotFound, or InvalidInput naming ``field``."""
    project = session.scalars(select(orm.Project).where(project_named(ref))).one_or_none()
    if project is None:
        if field is not None:
            raise InvalidInput(field, "unknown project {ref!r}", ref=ref)
        raise NotFound("no project {ref!r}", ref=ref)
    return project


def _info(session: Session, project: orm.Project) -> ProjectInfoOut:
    org = session.get(orm.Organization, project.organization_id)
    program = session.get(orm.Program, project.program_id) if project.program_id else None
    pi = session.get(orm.User, project.pi_user_id) if project.pi_user_id else None
    return ProjectInfoOut(
        id=project.id,
        name=project.name,
        organization=org.name if org else "?",
        organization_id=project.organization_id,
        sector=project.sector,
        program=program.name if program else None,
        program_id=project.program_id,
        objective=project.objective,
        pi=pi.name if pi else None,
        created_at=project.created_at,
    )


def list_projects(center: Center, who: Principal) -> list[ProjectInfoOut]:
    with center.store.read() as session:
        rows = session.scalars(
            select(orm.Project).where(readable_projects(who)).order_by(orm.Project.name)
        ).all()
        return [_info(session, p) for p in rows]


def submittable_names(center: Center, who: Principal) -> list[str]:
    """Names of the projects ``who`` may submit jobs to (what the submission checks)."""
    with center.store.read() as session:
        return list(
            session.scalars(
                select(orm.Project.name).where(submittable_projects(who)).order_by(orm.Project.name)
            )
        )


def requestable_names(center: Center, who: Principal) -> list[str]:
    """Names of the projects ``who`` may file allocation requests for (``request.create``)."""
    with center.store.read() as session:
        rows = session.scalars(
            select(orm.Project).where(readable_projects(who)).order_by(orm.Project.name)
        ).all()
        return [p.name for p in rows if allowed(who, "request.create", project_target(session, p))]


def get_project(center: Center, who: Principal, ref: str) -> ProjectDetailOut:
    """A project with its members and allocations (balances and warnings), each part
    shown only to callers who may read it."""
    with center.store.read() as session:
        project = project_by_ref(session, ref)
        target = project_target(session, project)
        require(who, "project.read", target, ref)
        members: list[MemberOut] = []
        if allowed(who, "project.members.read", target):
            members = [
                MemberOut(id=u.id, name=u.name, role=u.role)
                for u in session.scalars(
                    select(orm.User)
                    .join(orm.ProjectMember, orm.ProjectMember.user_id == orm.User.id)
                    .where(orm.ProjectMember.project_id == project.id)
                    .order_by(orm.User.name)
                )
            ]
        allocations = [
            allocation_out(session, a)
            for a in session.scalars(
                select(orm.Allocation)
                .where(orm.Allocation.project_id == project.id, visible_allocations(who))
                .order_by(orm.Allocation.starts_at, orm.Allocation.id)
            )
        ]
        warnings = [w for w in (warning_line(a) for a in allocations) if w]
        return ProjectDetailOut(
            **_info(session, project).model_dump(),
            members=members,
            allocations=allocations,
            warnings=warnings,
            allocated=current_allocation(session, project.id, None, utcnow()) is not None,
            unallocated_gpu_jobs=center.settings.unallocated_gpu_jobs,
        )


def _org_user(
    session: Session, who: Principal, org: orm.Organization, ref: str, field: str
) -> orm.User:
    """A user to tie to a project of ``org``: someone of that organization (operators
    may also bring in users of other organizations, for joint projects)."""
    column = orm.User.id if ref.startswith("usr_") else orm.User.name
    user = session.scalars(select(orm.User).where(column == ref)).one_or_none()
    if user is None or (user.organization_id != org.id and who.role is not Role.OPERATOR):
        # the same words for "absent" and "elsewhere": other tenants' users stay unknown
        raise InvalidInput(field, "unknown user {ref!r} in {org}", ref=ref, org=org.name)
    return user


def _add_members(
    session: Session, who: Principal, project: orm.Project, users: Iterable[orm.User]
) -> list[str]:
    """Add ``users`` not yet members; returns the names added."""
    present = set(
        session.scalars(
            select(orm.ProjectMember.user_id).where(orm.ProjectMember.project_id == project.id)
        )
    )
    added = []
    for user in users:
        if user.id not in present:
            session.add(orm.ProjectMember(project_id=project.id, user_id=user.id))
            present.add(user.id)
            added.append(user.name)
    if added:
        record(session, who, "project.member.add", "project", project.id, {"users": added})
    return added


def create_project_tx(session: Session, who: Principal, body: ProjectIn) -> ProjectInfoOut:
    org = (
        org_by_ref(session, body.organization, field="organization", who=who)
        if body.organization is not None
        else session.get(orm.Organization, who.organization_id)
    )
    assert org is not None
    require(who, "project.write", org_target(org), body.organization)
    program = program_by_ref(session, body.program, field="program") if body.program else None
    if session.scalars(select(orm.Project.id).where(orm.Project.name == body.name)).first():
        raise Conflict("project {name!r} already exists", name=body.name)
    pi = _org_user(session, who, org, body.pi, "pi") if body.pi else None
    members = [_org_user(session, who, org, m, f"members[{i}]") for i, m in enumerate(body.members)]
    project = orm.Project(
        id=new_id("prj"),
        name=body.name,
        organization_id=org.id,
        program_id=program.id if program else None,
        sector=body.sector,
        objective=body.objective,
        pi_user_id=pi.id if pi else None,
        created_at=utcnow(),
    )
    session.add(project)
    session.flush()
    record(
        session,
        who,
        "project.create",
        "project",
        project.id,
        {"name": body.name, "organization": org.name, "program": body.program, "pi": body.pi},
    )
    _add_members(session, who, project, ([pi] if pi else []) + members)
    return _info(session, project)


def create_project(center: Center, who: Principal, body: ProjectIn) -> ProjectInfoOut:
    try:
        with center.store.write() as session:
            out = create_project_tx(session, who, body)
    except IntegrityError:
        raise Conflict("project {name!r} already exists", name=body.name) from None
    center.control.policy_changed()  # the scheduler learns projects with its policy
    return out


def update_project(
    center: Center, who: Principal, ref: str, body: ProjectPatchIn
) -> ProjectInfoOut:
    """Change the program, sector, objective or PI (fields given only)."""
    with center.store.write() as session:
        project = project_by_ref(session, ref)
        require(who, "project.write", project_target(session, project), ref)
        org = session.get(orm.Organization, project.organization_id)
        assert org is not None
        changes = body.model_dump(exclude_none=True)
        if body.program is not None:
            project.program_id = program_by_ref(session, body.program, field="program").id
        if body.sector is not None:
            project.sector = body.sector
        if body.objective is not None:
            project.objective = body.objective
        if body.pi is not None:
            pi = _org_user(session, who, org, body.pi, "pi")
            project.pi_user_id = pi.id
            _add_members(session, who, project, [pi])
        if changes:
            record(session, who, "project.update", "project", project.id, changes)
        return _info(session, project)


def add_member(center: Center, who: Principal, ref: str, user_ref: str) -> ProjectDetailOut:
    with center.store.write() as session:
        project = project_by_ref(session, ref)
        require(who, "project.write", project_target(session, project), ref)
        org = session.get(orm.Organization, project.organization_id)
        assert org is not None
        user = _org_user(session, who, org, user_ref, "user")
        if not _add_members(session, who, project, [user]):
            raise Conflict(
                "{user} is already a member of {project}", user=user.name, project=project.name
            )
    return get_project(center, who, ref)


def remove_member(center: Center, who: Principal, ref: str, user_ref: str) -> None:
    """Remove a member: their running jobs go on, they may submit no more."""
    with center.store.write() as session:
        project = project_by_ref(session, ref)
        require(who, "project.write", project_target(session, project), ref)
        column = orm.User.id if user_ref.startswith("usr_") else orm.User.name
        row = session.scalars(
            select(orm.ProjectMember)
            .join(orm.User, orm.User.id == orm.ProjectMember.user_id)
            .where(orm.ProjectMember.project_id == project.id, column == user_ref)
        ).one_or_none()
        if row is None:
            raise NotFound(
                "{user_ref} is not a member of {project}", user_ref=user_ref, project=project.name
            )
        session.delete(row)
        record(session, who, "project.member.remove", "project", project.id, {"user": user_ref})
