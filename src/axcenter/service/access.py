"""Visibility: which projects and jobs a principal may see and use.

Every query of the API goes through these clauses, so a caller never learns that another
tenant's object exists (the API answers 404 for both "absent" and "not yours").
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select, true

from axcenter.model.access import Principal, Role
from axcenter.store import orm

__all__ = ["submittable_projects", "visible_jobs", "visible_projects"]


def visible_projects(who: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``orm.Project`` for the projects ``who`` may see."""
    if who.role in (Role.OPERATOR, Role.PROGRAM_MANAGER):
        return true()
    if who.role is Role.ORG_ADMIN:
        return orm.Project.organization_id == who.organization_id
    return orm.Project.id.in_(
        select(orm.ProjectMember.project_id).where(orm.ProjectMember.user_id == who.user_id)
    )


def submittable_projects(who: Principal) -> ColumnElement[bool]:
    """Projects ``who`` may submit jobs to: operators anywhere, others where they belong."""
    if who.role is Role.OPERATOR:
        return true()
    if who.role is Role.ORG_ADMIN:
        return orm.Project.organization_id == who.organization_id
    return orm.Project.id.in_(
        select(orm.ProjectMember.project_id).where(orm.ProjectMember.user_id == who.user_id)
    )


def visible_jobs(who: Principal) -> ColumnElement[bool]:
    """A WHERE clause on ``orm.Job``: jobs of visible projects, and always one's own."""
    if who.role in (Role.OPERATOR, Role.PROGRAM_MANAGER):
        return true()
    return orm.Job.project_id.in_(select(orm.Project.id).where(visible_projects(who))) | (
        orm.Job.user_id == who.user_id
    )
