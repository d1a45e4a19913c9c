"""Projects: the list, and a project's grants (used vs granted), balances and warnings."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from axcenter.service.center import Center
from axcenter.service.projects import get_project, list_projects
from axcenter.web.charts import grant_chart
from axcenter.web.render import page
from axcenter.web.session import PageViewer

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/projects")
def projects_page(request: Request, viewer: PageViewer) -> HTMLResponse:
    center: Center = request.app.state.center
    items = list_projects(center, viewer.who)
    return page(request, viewer, "projects.html", lang=viewer.lang, projects=items)


@router.get("/projects/{ref}")
def project_page(request: Request, viewer: PageViewer, ref: str) -> HTMLResponse:
    center: Center = request.app.state.center
    project = get_project(center, viewer.who, ref)
    return page(
        request,
        viewer,
        "project.html",
        lang=viewer.lang,
        project=project,
        grant=grant_chart(project, viewer.lang),
    )
