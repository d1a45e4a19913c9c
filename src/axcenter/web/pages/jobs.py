"""Jobs: the list with filters, a job's page (spec, events, placement, log, charges),
submitting, cancelling and resubmitting."""

from __future__ import annotations

import re
import shlex
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from axcenter.model.access import Role
from axcenter.model.jobs import JobState
from axcenter.service import jobs as service
from axcenter.service.center import Center
from axcenter.service.charges import job_charges
from axcenter.service.errors import Conflict, Forbidden, InvalidInput
from axcenter.service.projects import submittable_names
from axcenter.service.schemas import JobIn, JobOut, TemplateIn, TemplateOut
from axcenter.service.templates import create_template, get_template
from axcenter.web.messages import detail
from axcenter.web.problems import FormProblem, number, say, whole
from axcenter.web.render import page
from axcenter.web.session import FormViewer, PageViewer, Viewer

router = APIRouter(prefix="/ui", include_in_schema=False)

PAGE = 50
#: the first bytes of a log shown with the page; the rest streams in (live tail)
LOG_CHUNK = 256 * 1024
FINISHED = tuple(s.value for s in JobState if s.terminal)
VIEWS = {
    "all": (),
    "pending": (JobState.PENDING.value,),
    "running": (JobState.ADMITTED.value, JobState.RUNNING.value, JobState.PREEMPTED.value),
    "finished": FINISHED,
}


@router.get("/jobs")
def jobs_page(
    request: Request,
    viewer: PageViewer,
    view: str = "all",
    state: str | None = None,
    project: str | None = None,
    mine: bool = False,
    cursor: str | None = None,
) -> HTMLResponse:
    center: Center = request.app.state.center
    states = (state,) if state else VIEWS.get(view, ())
    items, next_cursor = service.list_jobs(
        center,
        viewer.who,
        states=states,
        project=project or None,
        mine=mine,
        limit=PAGE,
        cursor=cursor,
    )
    return page(
        request,
        viewer,
        "jobs.html",
        lang=viewer.lang,
        jobs=items,
        next_cursor=next_cursor,
        view=view if view in VIEWS else "all",
        views=list(VIEWS),
        states=[s.value for s in JobState],
        state=state or "",
        project=project or "",
        mine=mine,
        may_submit=bool(submittable_names(center, viewer.who)),
    )


def _new_form(
    request: Request,
    viewer: Viewer,
    error: str | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    center: Center = request.app.state.center
    projects = submittable_names(center, viewer.who)
    types = sorted({n.gpu_type for n in center.control.state.nodes.values()})
    return page(
        request,
        viewer,
        "job_new.html",
        lang=viewer.lang,
        status=400 if error else 200,
        projects=projects,
        gpu_types=types,
        error=error,
        values=values or {},
    )


@router.get("/jobs/new")
def new_job_page(
    request: Request, viewer: PageViewer, project: str = "", template: str = ""
) -> HTMLResponse:
    """The form, filled from a template of the project when one is named; who has no
    project to submit to (a reviewer) is told so, not shown an empty form."""
    center: Center = request.app.state.center
    if not submittable_names(center, viewer.who):
        return page(
            request,
            viewer,
            "error.html",
            lang=viewer.lang,
            status=403,
            code=403,
            headline="error.no_project",
            message="no project to submit jobs to",
        )
    if not (project and template):
        return _new_form(request, viewer, values={"project": project} if project else None)
    return _new_form(
        request, viewer, values=template_values(get_template(center, viewer.who, project, template))
    )


def template_values(template: TemplateOut) -> dict[str, str]:
    """A template as the submit form's fields."""
    job = template.job
    command = [str(a) for a in job.get("command") or []]
    if command[: len(SCRIPT)] == list(SCRIPT) and len(command) == len(SCRIPT) + 1:
        shown = command[-1].rstrip("\n")
    else:
        shown = shlex.join(command)
    limit = job.get("time_limit_s")
    types = job.get("gpu_types") or []
    return {
        "project": template.project,
        "name": str(job.get("name", "")),
        "command": shown,
        "gpus_per_node": str(job.get("gpus_per_node", 1)),
        "nodes": str(job.get("nodes", 1)),
        "gpu_type": types[0] if types else "",
        "time_limit_min": f"{limit / 60:g}" if limit else "",
        "priority": str(job.get("priority", 0)),
        "output": str(job.get("output", "log")),
        "template": template.name,
    }


@router.post("/jobs/new")
def submit_job(
    request: Request,
    viewer: FormViewer,
    project: Annotated[str, Form()],
    command: Annotated[str, Form()],
    gpus_per_node: Annotated[str, Form()] = "1",
    nodes: Annotated[str, Form()] = "1",
    gpu_type: Annotated[str, Form()] = "",
    time_limit_min: Annotated[str, Form()] = "",
    priority: Annotated[str, Form()] = "0",
    name: Annotated[str, Form()] = "",
    output: Annotated[str, Form()] = "log",
    save_as: Annotated[str, Form()] = "",
    template: Annotated[str, Form()] = "",
) -> Response:
    """Submit the job; with ``save_as`` (the "save as a template" button), keep it as a
    template of the project under the name ``template`` instead."""
    center: Center = request.app.state.center
    values = {
        "project": project,
        "command": command,
        "gpus_per_node": gpus_per_node,
        "nodes": nodes,
        "gpu_type": gpu_type,
        "time_limit_min": time_limit_min,
        "priority": priority,
        "name": name,
        "output": output,
        "template": template,
    }
    try:
        minutes = number(time_limit_min, "time_limit_min")
        spec = JobIn(
            project=project,
            name=name,
            command=command_line(command),
            gpus_per_node=whole(gpus_per_node, "gpus_per_node", 0),
            nodes=whole(nodes, "nodes", 1),
            gpu_types=[gpu_type] if gpu_type else [],
            time_limit_s=int(minutes * 60) if minutes is not None else None,
            priority=whole(priority, "priority", 0),
            output=output,
        )
    except (ValueError, ValidationError) as exc:
        return _new_form(request, viewer, say(exc, viewer.lang), values)
    if save_as:
        try:
            if not TEMPLATE_NAME.fullmatch(template.strip()):
                raise FormProblem("template", "form.template_name", template)
            body = TemplateIn(name=template.strip(), job=spec.model_copy(update={"project": None}))
            create_template(center, viewer.who, project, body)
        except (FormProblem, ValidationError) as exc:
            return _new_form(request, viewer, say(exc, viewer.lang), values)
        except (InvalidInput, Forbidden, Conflict) as exc:
            return _new_form(request, viewer, detail(exc, viewer.lang), values)
        return RedirectResponse(
            f"/ui/projects/{quote(project, safe='')}#templates", status_code=303
        )
    try:
        submitted = service.submit(center, viewer.who, [spec])
    except (InvalidInput, Forbidden) as exc:
        return _new_form(request, viewer, detail(exc, viewer.lang), values)
    return RedirectResponse(f"/ui/jobs/{submitted[0].job.id}", status_code=303)


#: a template's name (``service.schemas.TemplateIn``)
TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

#: how a script typed in the form runs: bash, stopping at the first failing line
SCRIPT = ("bash", "-euo", "pipefail", "-c")


def command_line(text: str) -> list[str]:
    """The form's command: one line split as a shell would, several lines a bash script."""
    script = text.replace("\r\n", "\n").strip()
    if "\n" in script:
        return [*SCRIPT, script + "\n"]
    try:
        return shlex.split(script)
    except ValueError:  # an unclosed quote
        raise FormProblem("command", "form.quote", script) from None


def _may_manage(viewer: Viewer, job: JobOut) -> bool:
    """Whether to offer cancel/resubmit (the service checks again on the request)."""
    return viewer.role in (Role.OPERATOR, Role.ORG_ADMIN) or job.user == viewer.who.name


@router.get("/jobs/{job_id}")
def job_page(request: Request, viewer: PageViewer, job_id: str) -> HTMLResponse:
    center: Center = request.app.state.center
    job = service.get_job(center, viewer.who, job_id)
    charges = job_charges(center, viewer.who, job_id)
    try:
        data, next_offset, _ = service.read_log(center, viewer.who, job_id, 0, LOG_CHUNK)
        log: str | None = data.decode(errors="replace")
    except (Forbidden, Conflict):  # another organization's, or discarded: said on the page
        log, next_offset = None, 0
    return page(
        request,
        viewer,
        "job.html",
        lang=viewer.lang,
        job=job,
        charges=charges,
        log=log,
        log_offset=next_offset,
        live=not JobState(job.state).terminal,
        may_manage=_may_manage(viewer, job),
    )


@router.get("/jobs/{job_id}/log")
def job_log(
    request: Request,
    viewer: PageViewer,
    job_id: str,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    """The next bytes of the log for the page's live tail."""
    center: Center = request.app.state.center
    data, next_offset, state = service.read_log(center, viewer.who, job_id, offset, LOG_CHUNK)
    return JSONResponse(
        {
            "text": data.decode(errors="replace"),
            "next": next_offset,
            "done": JobState(state).terminal,
        },
        headers={"Cache-Control": "no-store"},
    )


@router.post("/jobs/{job_id}/cancel")
def cancel_job(request: Request, viewer: FormViewer, job_id: str) -> Response:
    center: Center = request.app.state.center
    service.cancel(center, viewer.who, job_id)
    return RedirectResponse(f"/ui/jobs/{job_id}", status_code=303)


@router.post("/jobs/{job_id}/resubmit")
def resubmit_job(request: Request, viewer: FormViewer, job_id: str) -> Response:
    """A new job with the same specification (the original keeps its history)."""
    center: Center = request.app.state.center
    submitted = service.resubmit(center, viewer.who, job_id)
    return RedirectResponse(f"/ui/jobs/{submitted.job.id}", status_code=303)
