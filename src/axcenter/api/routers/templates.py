"""A project's job templates (``service.templates``): kept, listed, used, deleted."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import templates as service
from axcenter.service.schemas import (
    JobOut,
    TemplateIn,
    TemplateListOut,
    TemplateOut,
    TemplateUseIn,
)

router = APIRouter(tags=["templates"])

TEMPLATES = "/projects/{project}/templates"


@router.get(TEMPLATES)
def list_templates(project: str, center: CenterDep, who: PrincipalDep) -> TemplateListOut:
    return TemplateListOut(items=service.list_templates(center, who, project))


@router.post(TEMPLATES, status_code=status.HTTP_201_CREATED)
def create_template(
    project: str, body: TemplateIn, center: CenterDep, who: PrincipalDep
) -> TemplateOut:
    """Keep a job (command or script, resources) under a name in the project."""
    return service.create_template(center, who, project, body)


@router.get(TEMPLATES + "/{name}")
def get_template(project: str, name: str, center: CenterDep, who: PrincipalDep) -> TemplateOut:
    return service.get_template(center, who, project, name)


@router.delete(TEMPLATES + "/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_template(project: str, name: str, center: CenterDep, who: PrincipalDep) -> Response:
    service.delete_template(center, who, project, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(TEMPLATES + "/{name}/jobs", status_code=status.HTTP_201_CREATED)
def use_template(
    project: str,
    name: str,
    center: CenterDep,
    who: PrincipalDep,
    body: TemplateUseIn | None = None,
) -> JobOut:
    """Submit the template's job (with what differs this time)."""
    return service.use_template(center, who, project, name, body).job
