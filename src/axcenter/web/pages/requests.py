"""Allocation requests: the list with review stages, a request's page, filing a request,
and the steps on it: review, decision, and the applicant's resubmit (a returned request,
edited) and withdraw (each offered only where the service lists the step in the
request's ``actions``, from the rules it enforces).

Dates on the forms are days of the center's time zone: a window runs from 00:00 of its
first day to 24:00 of its last, there.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from axcenter.service import allocations, attachments
from axcenter.service.center import Center
from axcenter.service.errors import Forbidden, InvalidInput, NotFound
from axcenter.service.programs import list_programs
from axcenter.service.projects import get_project, requestable_names
from axcenter.service.requests import get_request, list_requests
from axcenter.service.schemas import ApproveIn, RequestIn, ResubmitIn
from axcenter.web.messages import detail
from axcenter.web.problems import FormProblem, say, whole
from axcenter.web.render import center_zone, page
from axcenter.web.session import FormViewer, PageViewer, Viewer

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/requests")
def requests_page(request: Request, viewer: PageViewer, status: str | None = None) -> HTMLResponse:
    center: Center = request.app.state.center
    items = list_requests(center, viewer.who, status=status or None)
    return page(
        request,
        viewer,
        "requests.html",
        lang=viewer.lang,
        requests=items,
        stage=status or "",
        may_file=bool(requestable_names(center, viewer.who)),
    )


KINDS = ("new", "topup", "extension", "termination")


def _new_form(
    request: Request,
    viewer: Viewer,
    error: str | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    center: Center = request.app.state.center
    projects = requestable_names(center, viewer.who)
    allocations = [
        (a.id, f"{a.id} · {name} · {a.program}")
        for name in projects
        for a in get_project(center, viewer.who, name).allocations
        if a.status == "active"
    ]
    return page(
        request,
        viewer,
        "request_new.html",
        lang=viewer.lang,
        status=400 if error else 200,
        projects=projects,
        programs=[p.name for p in list_programs(center, viewer.who)],
        allocations=allocations,
        kinds=KINDS,
        gpu_types=sorted({n.gpu_type for n in center.control.state.nodes.values()}),
        error=error,
        values=values or {},
    )


@router.get("/requests/new")
def new_request_page(request: Request, viewer: PageViewer) -> HTMLResponse:
    return _new_form(request, viewer)


def _hours(form: dict[str, str]) -> dict[str, int]:
    """``hours.<type>`` fields: GPU-hours per type (blank: not asked)."""
    items: dict[str, int] = {}
    for key, value in form.items():
        if key.startswith("hours.") and value.strip():
            items[key.removeprefix("hours.")] = whole(value, "items", 0)
    return items


def _day(value: str, field: str, zone: tzinfo, *, end: bool = False) -> datetime | None:
    """A form's day as the instant it starts (or, ``end``: ends) in the center's zone."""
    if not value.strip():
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError as exc:
        raise InvalidInput(
            field, "must be a date like 2026-03-01, not {value!r}", value=value
        ) from exc
    return datetime.combine(day + timedelta(days=1 if end else 0), time(), zone)


async def _fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.post("/requests/new")
async def file_request(request: Request, viewer: FormViewer) -> Response:
    center: Center = request.app.state.center
    values = await _fields(request)
    zone = center_zone(request)
    try:
        body = RequestIn(
            project=values.get("project", ""),
            kind=values.get("kind", "new"),
            program=values.get("program") or None,
            allocation=values.get("allocation") or None,
            items=_hours(values),
            starts_at=_day(values.get("starts_on", ""), "starts_on", zone),
            ends_at=_day(values.get("ends_on", ""), "ends_on", zone, end=True),
            justification=values.get("justification", ""),
        )
        made = await run_in_threadpool(allocations.create_request, center, viewer.who, body)
    except (ValidationError, FormProblem) as exc:
        return _new_form(request, viewer, say(exc, viewer.lang), values)
    except (InvalidInput, Forbidden, NotFound) as exc:
        return _new_form(request, viewer, detail(exc, viewer.lang), values)
    return RedirectResponse(f"/ui/requests/{made.id}", status_code=303)


@router.get("/requests/{request_id}")
def request_page(request: Request, viewer: PageViewer, request_id: str) -> HTMLResponse:
    center: Center = request.app.state.center
    req = get_request(center, viewer.who, request_id)
    zone = center_zone(request)
    return page(
        request,
        viewer,
        "request.html",
        lang=viewer.lang,
        req=req,
        may_review="review" in (req.actions or ()),
        may_decide="decide" in (req.actions or ()),
        may_resubmit="resubmit" in (req.actions or ()),
        may_withdraw="withdraw" in (req.actions or ()),
        may_attach="attach" in (req.actions or ()),
        max_mib=center.settings.attachment_max_bytes / (1 << 20),
        accepted=", ".join(sorted(attachments.TYPES)),
        ends_on=(req.ends_at.astimezone(zone) - timedelta(seconds=1)).date().isoformat(),
    )


def _back(request_id: str) -> Response:
    return RedirectResponse(f"/ui/requests/{request_id}", status_code=303)


@router.post("/requests/{request_id}/review")
async def review(request: Request, viewer: FormViewer, request_id: str) -> Response:
    """A review: ``score`` (1..5), or ``score.<criterion>`` for each of the rubric's."""
    center: Center = request.app.state.center
    values = await _fields(request)
    comment = values.get("comment", "")
    if len(comment) > 20_000:
        raise InvalidInput("comment", "at most 20000 characters")
    scores = {
        key.removeprefix("score."): whole(value, "score", 0)
        for key, value in values.items()
        if key.startswith("score.")
    }
    score = whole(values.get("score", ""), "score", 0) or None
    await run_in_threadpool(
        allocations.review, center, viewer.who, request_id, score, comment, scores or None
    )
    return _back(request_id)


@router.post("/requests/{request_id}/attachments")
async def attach(request: Request, viewer: FormViewer, request_id: str) -> Response:
    """Attach the form's ``file``; a problem with it is said on the error page."""
    center: Center = request.app.state.center
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidInput("file", "choose a file to attach")
    await run_in_threadpool(
        attachments.attach, center, viewer.who, request_id, upload.filename, upload.file
    )
    return _back(request_id)


@router.get("/requests/{request_id}/attachments/{attachment_id}")
def download(
    request: Request, viewer: PageViewer, request_id: str, attachment_id: str
) -> FileResponse:
    center: Center = request.app.state.center
    out, path = attachments.open_attachment(center, viewer.who, request_id, attachment_id)
    return FileResponse(
        path,
        media_type=out.content_type,
        filename=out.filename,
        headers={"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox"},
    )


@router.post("/requests/{request_id}/attachments/{attachment_id}/delete")
def detach(request: Request, viewer: FormViewer, request_id: str, attachment_id: str) -> Response:
    center: Center = request.app.state.center
    attachments.detach(center, viewer.who, request_id, attachment_id)
    return _back(request_id)


@router.post("/requests/{request_id}/approve")
async def approve(request: Request, viewer: FormViewer, request_id: str) -> Response:
    """Approve; GPU-hours below those asked (``hours.<type>`` fields) grant less."""
    center: Center = request.app.state.center
    form = await request.form()
    items: dict[str, int] = {}
    for key, value in form.multi_items():
        if key.startswith("hours.") and isinstance(value, str) and value.strip():
            items[key.removeprefix("hours.")] = whole(value, "items", 0)
    comment = form.get("comment")
    try:
        body = ApproveIn(items=items or None, comment=comment if isinstance(comment, str) else "")
    except ValidationError as exc:
        raise InvalidInput("approval", "{detail}", detail=say(exc, viewer.lang)) from exc
    await run_in_threadpool(allocations.approve, center, viewer.who, request_id, body)
    return _back(request_id)


@router.post("/requests/{request_id}/reject")
def reject(
    request: Request,
    viewer: FormViewer,
    request_id: str,
    comment: Annotated[str, Form(min_length=1, max_length=20_000)],
) -> Response:
    center: Center = request.app.state.center
    allocations.reject(center, viewer.who, request_id, comment)
    return _back(request_id)


@router.post("/requests/{request_id}/return")
def return_request(
    request: Request,
    viewer: FormViewer,
    request_id: str,
    comment: Annotated[str, Form(min_length=1, max_length=20_000)],
) -> Response:
    center: Center = request.app.state.center
    allocations.return_request(center, viewer.who, request_id, comment)
    return _back(request_id)


@router.post("/requests/{request_id}/withdraw")
def withdraw(
    request: Request,
    viewer: FormViewer,
    request_id: str,
    comment: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    center: Center = request.app.state.center
    allocations.withdraw(center, viewer.who, request_id, comment)
    return _back(request_id)


@router.post("/requests/{request_id}/resubmit")
async def resubmit(request: Request, viewer: FormViewer, request_id: str) -> Response:
    """Send a returned request back with the applicant's changes."""
    center: Center = request.app.state.center
    values = await _fields(request)
    try:
        body = ResubmitIn(
            items=_hours(values) or None,
            ends_at=_day(values.get("ends_on", ""), "ends_on", center_zone(request), end=True),
            justification=values.get("justification") or None,
            comment=values.get("comment", ""),
        )
    except (ValidationError, FormProblem) as exc:
        raise InvalidInput("resubmission", "{detail}", detail=say(exc, viewer.lang)) from exc
    await run_in_threadpool(allocations.resubmit, center, viewer.who, request_id, body)
    return _back(request_id)
