"""A project's job templates: a named job (a command or a multi-line script, its GPUs,
nodes, types, time limit...) that the project's people submit again and again, as Open
OnDemand's job composer keeps them.

Templates are the project's: its members, its organization's admin and operators keep
them (``template.write``), program managers may read them (``template.read``). Using one
submits its job through ``service.jobs.submit``, which checks the submission as any other
(the caller must be able to submit to the project); the web form is filled from it first,
so a person may change a field before submitting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from axcenter.model.access import Principal
from axcenter.model.ids import new_id
from axcenter.service import jobs
from axcenter.service.access import project_target, require
from axcenter.service.errors import Conflict, InvalidInput, NotFound
from axcenter.service.projects import project_by_ref
from axcenter.service.schemas import JobIn, TemplateIn, TemplateOut, TemplateUseIn
from axcenter.store import orm
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.service.center import Center

__all__ = [
    "create_template",
    "delete_template",
    "get_template",
    "job_of",
    "list_templates",
    "use_template",
]

#: a submission's own fields, never a template's
_NOT_KEPT = {"project", "idempotency_key", "held", "dependency"}


def _project(session: Session, who: Principal, ref: str, action: str) -> orm.Project:
    project = project_by_ref(session, ref)
    require(who, action, project_target(session, project), ref)
    return project


def _out(session: Session, row: orm.Template, project: orm.Project) -> TemplateOut:
    creator = session.get(orm.User, row.created_by)
    return TemplateOut(
        id=row.id,
        project=project.name,
        name=row.name,
        description=row.spec.get("description", ""),
        job=row.spec["job"],
        created_by=creator.name if creator else "?",
        created_at=row.created_at,
    )


def create_template(
    center: Center, who: Principal, project_ref: str, body: TemplateIn
) -> TemplateOut:
    """Keep ``body`` as a template of the project (409 if the name is taken)."""
    if body.job.project is not None and body.job.project != project_ref:
        raise InvalidInput("job.project", "a template's job runs in the template's project")
    for field in sorted(_NOT_KEPT - {"project"}):
        if getattr(body.job, field) not in (None, False):
            raise InvalidInput(f"job.{field}", "is the submission's own: a template has none")
    job = body.job.model_dump(mode="json", exclude=_NOT_KEPT, exclude_defaults=True)
    try:
        with center.store.write() as session:
            project = _project(session, who, project_ref, "template.write")
            row = orm.Template(
                id=new_id("tpl"),
                project_id=project.id,
                name=body.name,
                spec={"description": body.description, "job": job},
                created_by=who.user_id,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return _out(session, row, project)
    except IntegrityError:
        raise Conflict(
            "{project_ref} already has a template {name!r}", project_ref=project_ref, name=body.name
        ) from None


def list_templates(center: Center, who: Principal, project_ref: str) -> list[TemplateOut]:
    with center.store.read() as session:
        project = _project(session, who, project_ref, "template.read")
        rows = session.scalars(
            select(orm.Template)
            .where(orm.Template.project_id == project.id)
            .order_by(orm.Template.name)
        ).all()
        return [_out(session, row, project) for row in rows]


def _find(session: Session, project: orm.Project, name: str) -> orm.Template:
    row = session.scalars(
        select(orm.Template).where(orm.Template.project_id == project.id, orm.Template.name == name)
    ).one_or_none()
    if row is None:
        raise NotFound("{project} has no template {name!r}", project=project.name, name=name)
    return row


def get_template(center: Center, who: Principal, project_ref: str, name: str) -> TemplateOut:
    with center.store.read() as session:
        project = _project(session, who, project_ref, "template.read")
        return _out(session, _find(session, project, name), project)


def delete_template(center: Center, who: Principal, project_ref: str, name: str) -> None:
    with center.store.write() as session:
        project = _project(session, who, project_ref, "template.write")
        session.delete(_find(session, project, name))


def job_of(template: TemplateOut, changes: TemplateUseIn | None = None) -> JobIn:
    """The job a template submits, with what differs this time."""
    fields: dict[str, Any] = {**template.job, "project": template.project}
    if changes is not None:
        fields |= changes.model_dump(exclude_none=True, exclude_defaults=True)
    try:
        return JobIn.model_validate(fields)
    except ValidationError as exc:  # a template kept before a limit changed
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "job"
        raise InvalidInput(f"job.{where}", "{detail}", detail=str(first.get("msg", ""))) from None


def use_template(
    center: Center,
    who: Principal,
    project_ref: str,
    name: str,
    changes: TemplateUseIn | None = None,
) -> jobs.Submitted:
    """Submit the template's job, with what differs this time."""
    template = get_template(center, who, project_ref, name)
    (submitted,) = jobs.submit(center, who, [job_of(template, changes)])
    return submitted
