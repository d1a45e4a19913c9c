"""Visibility and permissions: what a principal may see, and what it may do.

Two questions, always asked in this order, so that a refusal leaks nothing:

1. **May the caller know the object exists?** Operators and program managers see
   everything; everyone else sees what belongs to their own organization (their tenant),
   the projects they are members of, the requests they are assigned to review, and
   center-wide objects (programs, prices). Anything else answers ``NotFound`` (404),
   exactly as an object that does not exist.
2. **May the caller do this to it?** One table, ``RULES``, maps each action to the
   (role, relation) pairs that allow it. A visible object the caller may not act on
   answers ``Forbidden`` (403).

List queries use the SQL clauses below (``visible_*``/``readable_*``); they select exactly
the objects the ``*.read`` rules allow, so a list never shows what a direct read refuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from axcenter.model.access import Principal, Role
from axcenter.service.errors import Forbidden, NotFound, Refusal
from axcenter.store import orm

__all__ = [
    "RULES",
    "Rel",
    "Target",
    "allocation_for",
    "allowed",
    "center_target",
    "org_target",
    "project_target",
    "readable_projects",
    "request_target",
    "require",
    "submittable_projects",
    "user_target",
    "visible",
    "visible_allocations",
    "visible_job_details",
    "visible_jobs",
    "visible_organizations",
    "visible_projects",
    "visible_requests",
    "visible_users",
]


class Rel(StrEnum):
    """How a caller relates to an object; a rule grants an action to a role *through* one."""

    ANY = "any"  # whatever the object: the role alone suffices
    ORG = "org"  # the object belongs to the caller's organization
    MEMBER = "member"  # the caller is a member of the object's project
    ASSIGNED = "assigned"  # the caller is an assigned reviewer of the object (a request)
    SELF = "self"  # the object is the caller (a user)


#: a grant: (role, or None for every role; the relation it needs)
Grant = tuple[Role | None, Rel]

OP: Grant = (Role.OPERATOR, Rel.ANY)
PM: Grant = (Role.PROGRAM_MANAGER, Rel.ANY)
ORG_ADMIN: Grant = (Role.ORG_ADMIN, Rel.ORG)
EVERYONE: Grant = (None, Rel.ANY)

#: action -> who may do it. Operators may do everything; the rest is spelled out.
RULES: dict[str, frozenset[Grant]] = {
    # funding programs (calls) and the price book are public within the center
    "program.read": frozenset({EVERYONE}),
    "program.write": frozenset({OP, PM}),
    "price.read": frozenset({EVERYONE}),
    "price.write": frozenset({OP}),
    "audit.read": frozenset({OP}),
    # organizations and people
    "organization.read": frozenset({OP, PM, (None, Rel.ORG)}),
    "organization.create": frozenset({OP, PM}),
    "user.read": frozenset({OP, PM, ORG_ADMIN, (None, Rel.SELF)}),
    "user.create": frozenset({OP, ORG_ADMIN}),  # org admins: members only (service)
    "user.role": frozenset({OP}),
    "token.manage": frozenset({OP, ORG_ADMIN, (None, Rel.SELF)}),
    # a reviewer's conflicts of interest: declared by the reviewer (or staff), withdrawn
    # by staff only (else a reviewer could withdraw one to be assigned)
    "conflict.declare": frozenset({OP, PM, (None, Rel.SELF)}),
    "conflict.withdraw": frozenset({OP, PM}),
    # projects: reviewers see basic information of the projects they review
    "project.read": frozenset(
        {OP, PM, ORG_ADMIN, (None, Rel.MEMBER), (Role.REVIEWER, Rel.ASSIGNED)}
    ),
    "project.members.read": frozenset({OP, PM, ORG_ADMIN, (None, Rel.MEMBER)}),
    "project.write": frozenset({OP, ORG_ADMIN}),
    # a project's job templates: read and kept by those who run its jobs
    "template.read": frozenset({OP, PM, ORG_ADMIN, (None, Rel.MEMBER)}),
    "template.write": frozenset({OP, ORG_ADMIN, (None, Rel.MEMBER)}),
    # allocation requests and their review
    "request.read": frozenset({OP, PM, ORG_ADMIN, (None, Rel.ASSIGNED)}),
    "request.create": frozenset({OP, ORG_ADMIN}),
    "request.change": frozenset({OP, ORG_ADMIN}),  # resubmit (edit) while returned, withdraw
    "request.assign": frozenset({OP, PM}),
    "request.review": frozenset({OP, (None, Rel.ASSIGNED)}),
    "request.decide": frozenset({OP, PM}),  # approve, reject, return
    # grants and their balances
    "allocation.read": frozenset({OP, PM, ORG_ADMIN, (None, Rel.MEMBER)}),
}


#: each action as a refusal says it ("your role (member) may not <phrase> <target>")
PHRASES: dict[str, str] = {
    "program.read": "read",
    "program.write": "change",
    "price.read": "read",
    "price.write": "change",
    "audit.read": "read",
    "organization.read": "read",
    "organization.create": "create",
    "user.read": "read",
    "user.create": "create users in",
    "user.role": "change the role of",
    "token.manage": "manage the tokens of",
    "conflict.declare": "declare conflicts of interest for",
    "conflict.withdraw": "withdraw conflicts of interest of",
    "project.read": "read",
    "project.members.read": "see the members of",
    "project.write": "change",
    "template.read": "read the job templates of",
    "template.write": "change the job templates of",
    "request.read": "read",
    "request.create": "create allocation requests for",
    "request.change": "edit or withdraw",
    "request.assign": "assign reviewers to",
    "request.review": "review",
    "request.decide": "approve, reject or return",
    "allocation.read": "read",
}


@dataclass(frozen=True, slots=True)
class Target:
    """What the rules need to know of an object: what it is, whose it is, and who is
    tied to it.

    ``organization_id`` None marks a center-wide object (a program, the price book, the
    audit log): every caller knows those exist, so refusals are 403.
    """

    kind: str
    name: str
    organization_id: str | None = None
    members: frozenset[str] = frozenset()
    reviewers: frozenset[str] = frozenset()
    user_id: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.name!r}" if self.name else self.kind


def _relations(who: Principal, target: Target) -> set[Rel]:
    rels = {Rel.ANY}
    if target.organization_id is not None and target.organization_id == who.organization_id:
        rels.add(Rel.ORG)
    if who.user_id in target.members:
        rels.add(Rel.MEMBER)
    if who.user_id in target.reviewers:
        rels.add(Rel.ASSIGNED)
    if target.user_id is not None and target.user_id == who.user_id:
        rels.add(Rel.SELF)
    return rels


def visible(who: Principal, target: Target) -> bool:
    """The caller may learn that ``target`` exists (else it must look absent)."""
    if who.role in (Role.OPERATOR, Role.PROGRAM_MANAGER) or target.organization_id is None:
        return True
    return bool(_relations(who, target) - {Rel.ANY})


def allowed(who: Principal, action: str, target: Target) -> bool:
    """The rule table's answer, without the visibility check."""
    if who.role is Role.OPERATOR:
        return True
    rels = _relations(who, target)
    return any(role in (None, who.role) and rel in rels for role, rel in RULES[action])


def require(who: Principal, action: str, target: Target, ref: str | None = None) -> None:
    """``NotFound`` if the caller may not know ``target``; ``Forbidden`` if it may not
    do ``action`` to it; nothing otherwise.

    ``ref`` is how the caller named the object: the 404 repeats it, word for word as for
    an object that does not exist, and never the object's name.
    """
    if action not in RULES:
        raise KeyError(f"no rule for action {action!r}")
    if not visible(who, target):
        raise NotFound("no {thing} {ref!r}", thing=target.kind, ref=ref or target.name)
    if not allowed(who, action, target):
        phrase = PHRASES.get(action, action)
        raise Forbidden(
            "your role ({role}) may not {phrase} {label}",
            Refusal(who.role.value, action, target.name),
            role=who.role.value,
            phrase=phrase,
            label=target.label,
        )


# -- targets ----------------------------------------------------------------------------


def center_target(kind: str) -> Target:
    """A center-wide object or collection (programs, prices, the audit log)."""
    return Target(kind=kind, name="")


def org_target(org: orm.Organization) -> Target:
    return Target(kind="organization", name=org.name, organization_id=org.id)


def user_target(user: orm.User) -> Target:
    return Target(
        kind="user", name=user.name, organization_id=user.organization_id, user_id=user.id
    )


def _members(session: Session, project_id: str) -> frozenset[str]:
    return frozenset(
        session.scalars(
            select(orm.ProjectMember.user_id).where(orm.ProjectMember.project_id == project_id)
        )
    )


def _reviewers(session: Session, request_ids: Iterable[str]) -> frozenset[str]:
    return frozenset(
        session.scalars(
            select(orm.RequestReviewer.reviewer_id).where(
                orm.RequestReviewer.request_id.in_(list(request_ids))
            )
        )
    )


def project_target(
    session: Session, project: orm.Project, kind: str = "project", name: str | None = None
) -> Target:
    """A project, or (``kind``, ``name``) something of it such as an allocation: its
    members, and the reviewers of any of its requests, are tied to it."""
    request_ids = session.scalars(
        select(orm.AllocationRequest.id).where(orm.AllocationRequest.project_id == project.id)
    ).all()
    return Target(
        kind=kind,
        name=project.name if name is None else name,
        organization_id=project.organization_id,
        members=_members(session, project.id),
        reviewers=_reviewers(session, request_ids),
    )


def allocation_for(
    session: Session, who: Principal, allocation_id: str, action: str, *, lock: bool = False
) -> tuple[orm.Allocation, orm.Project]:
    """The allocation ``allocation_id`` and its project, if ``who`` may do ``action`` on it
    (404 when there is none, as for every object of another tenant); ``lock``: its row
    is locked for the rest of the transaction (PostgreSQL)."""
    query = select(orm.Allocation).where(orm.Allocation.id == allocation_id)
    if lock:
        query = query.with_for_update()
    allocation = session.scalars(query).one_or_none()
    project = session.get(orm.Project, allocation.project_id) if allocation else None
    if allocation is None or project is None:
        raise NotFound("no allocation {allocation_id!r}", allocation_id=allocation_id)
    require(
        who, action, project_target(session, project, "allocation", allocation.id), allocation_id
    )
    return allocation, project


def request_target(
    session: Session, request: orm.AllocationRequest, project: orm.Project
) -> Target:
    return Target(
        kind="request",
        name=request.id,
        organization_id=project.organization_id,
        members=_members(session, project.id),
        reviewers=_reviewers(session, [request.id]),
    )


# -- list clauses (each matches its ``*.read`` rule) ----------------------------------------


def _member_projects(who: Principal) -> ColumnElement[bool]:
    return orm.Project.id.in_(
        select(orm.ProjectMember.project_id).where(orm.ProjectMember.user_id == who.user_id)
    )


def _assigned_requests(who: Principal) -> ColumnElement[bool]:
    return orm.AllocationRequest.id.in_(
        select(orm.RequestReviewer.request_id).where(orm.RequestReviewer.reviewer_id == who.user_id)
    )


def _sees_all(who: Principal) -> bool:
    return who.role in (Role.OPERATOR, Role.PROGRAM_MANAGER)


def visible_organizations(who: Principal) -> ColumnElement[bool]:
    return true() if _sees_all(who) else orm.Organization.id == who.organization_id


def visible_users(who: Principal) -> ColumnElement[bool]:
    if _sees_all(who):
        return true()
    if who.role is Role.ORG_ADMIN:
        return orm.User.organization_id == who.organization_id
    return orm.User.id == who.user_id


def readable_projects(who: Principal) -> ColumnElement[bool]:
    """Projects whose information ``who`` may read (``project.read``): those of
    ``visible_projects``, and for reviewers the projects of the requests they review."""
    if who.role is not Role.REVIEWER:
        return visible_projects(who)
    reviewed = select(orm.AllocationRequest.project_id).where(_assigned_requests(who))
    return _member_projects(who) | orm.Project.id.in_(reviewed)


def visible_requests(who: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``orm.AllocationRequest`` (``request.read``)."""
    if _sees_all(who):
        return true()
    if who.role is Role.ORG_ADMIN:
        return orm.AllocationRequest.project_id.in_(
            select(orm.Project.id).where(orm.Project.organization_id == who.organization_id)
        ) | _assigned_requests(who)
    return _assigned_requests(who)


def visible_allocations(who: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``orm.Allocation`` (``allocation.read``)."""
    if _sees_all(who):
        return true()
    if who.role is Role.ORG_ADMIN:
        projects = select(orm.Project.id).where(
            (orm.Project.organization_id == who.organization_id) | _member_projects(who)
        )
    else:
        projects = select(orm.Project.id).where(_member_projects(who))
    return orm.Allocation.project_id.in_(projects)


# -- projects and jobs (the scheduler's side; unchanged rules) -----------------------------


def visible_projects(who: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``orm.Project`` for the projects ``who`` may see and whose jobs
    and quotas it may read."""
    if _sees_all(who):
        return true()
    if who.role is Role.ORG_ADMIN:
        return (orm.Project.organization_id == who.organization_id) | _member_projects(who)
    return _member_projects(who)


def submittable_projects(who: Principal) -> ColumnElement[bool]:
    """Projects ``who`` may submit jobs to: operators anywhere, others where they belong."""
    if who.role is Role.OPERATOR:
        return true()
    if who.role is Role.ORG_ADMIN:
        return orm.Project.organization_id == who.organization_id
    return _member_projects(who)


def visible_jobs(who: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``orm.Job``: jobs of visible projects, and always one's own."""
    if _sees_all(who):
        return true()
    return orm.Job.project_id.in_(select(orm.Project.id).where(visible_projects(who))) | (
        orm.Job.user_id == who.user_id
    )


def visible_job_details(who: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``orm.Job`` for jobs whose log and environment ``who`` may read.

    Program managers read every job's state (they oversee the programs' use), but a log
    or an environment can hold a company's data and secrets: those stay within the
    tenant, as for everyone but operators.
    """
    if who.role is Role.OPERATOR:
        return true()
    if who.role is Role.PROGRAM_MANAGER:
        own = select(orm.Project.id).where(orm.Project.organization_id == who.organization_id)
        return orm.Job.project_id.in_(own) | (orm.Job.user_id == who.user_id)
    return visible_jobs(who)


def project_named(ref: str) -> ColumnElement[bool]:
    """A WHERE clause on ``orm.Project`` matching ``ref``: a ``prj_`` id or a name."""
    column = orm.Project.id if ref.startswith("prj_") else orm.Project.name
    return column == ref
