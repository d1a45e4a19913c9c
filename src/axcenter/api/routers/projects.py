"""Projects: information, members, their allocations with warnings, usage over time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import projects as service
from axcenter.service.reports import project_usage
from axcenter.service.schemas import (
    MemberIn,
    ProjectDetailOut,
    ProjectIn,
    ProjectInfoListOut,
    ProjectInfoOut,
    ProjectPatchIn,
    ProjectUsageOut,
)

router = APIRouter(tags=["projects"])


@router.get("/projects")
def list_projects(center: CenterDep, who: PrincipalDep) -> ProjectInfoListOut:
    """Projects the caller may read (reviewers: also those whose requests they review)."""
    return ProjectInfoListOut(items=service.list_projects(center, who))


@router.post("/projects", status_code=status.HTTP_201_CREATED)
def create_project(body: ProjectIn, center: CenterDep, who: PrincipalDep) -> ProjectInfoOut:
    return service.create_project(center, who, body)


@router.get("/projects/{project}")
def get_project(project: str, center: CenterDep, who: PrincipalDep) -> ProjectDetailOut:
    """A project with its members and allocations (balances, warnings at 80% and 100%)."""
    return service.get_project(center, who, project)


@router.get("/projects/{project}/usage")
def get_project_usage(
    project: str,
    center: CenterDep,
    who: PrincipalDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> ProjectUsageOut:
    """The project's charges per day (of the center's time zone) and user."""
    return project_usage(center, who, project, days)


@router.patch("/projects/{project}")
def update_project(
    project: str, body: ProjectPatchIn, center: CenterDep, who: PrincipalDep
) -> ProjectInfoOut:
    return service.update_project(center, who, project, body)


@router.post("/projects/{project}/members", status_code=status.HTTP_201_CREATED)
def add_member(
    project: str, body: MemberIn, center: CenterDep, who: PrincipalDep
) -> ProjectDetailOut:
    return service.add_member(center, who, project, body.user)


@router.delete("/projects/{project}/members/{user}", status_code=status.HTTP_204_NO_CONTENT)
def remove_member(project: str, user: str, center: CenterDep, who: PrincipalDep) -> Response:
    service.remove_member(center, who, project, user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
