"""Projects: the list, and a project's grants (used vs granted), balances, warnings, the
burn-down of its grants in force with a forecast band, and usage over the last 30 days per
day and user."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from axcenter.service.center import Center
from axcenter.service.errors import Forbidden
from axcenter.service.projects import get_project, list_projects, submittable_names
from axcenter.service.reports import project_burndown, project_usage
from axcenter.service.schemas import BurndownOut, ProjectUsageOut
from axcenter.service.templates import delete_template, list_templates
from axcenter.web.charts import burndown_chart, grant_chart, usage_chart
from axcenter.web.render import center_zone, page
from axcenter.web.session import FormViewer, PageViewer

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
    usage: ProjectUsageOut | None = None
    burn: BurndownOut | None = None
    try:
        usage = project_usage(center, viewer.who, ref)
        burn = project_burndown(center, viewer.who, ref)
    except Forbidden:  # reviewers see a project's basic information only
        pass
    today = datetime.now(center_zone(request)).date()
    try:
        kept = list_templates(center, viewer.who, ref)
    except Forbidden:  # reviewers: no templates
        kept = None
    return page(
        request,
        viewer,
        "project.html",
        lang=viewer.lang,
        project=project,
        grant=grant_chart(project, viewer.lang),
        usage=usage_chart(usage, today, viewer.lang) if usage is not None else None,
        burndown=burn,
        burndown_chart=burndown_chart(burn, viewer.lang) if burn is not None else None,
        templates=kept,
        may_submit=project.name in submittable_names(center, viewer.who),
    )


@router.post("/projects/{ref}/templates/{name}/delete")
def delete_template_form(request: Request, viewer: FormViewer, ref: str, name: str) -> Response:
    center: Center = request.app.state.center
    delete_template(center, viewer.who, ref, name)
    return RedirectResponse(f"/ui/projects/{quote(ref, safe='')}#templates", status_code=303)
