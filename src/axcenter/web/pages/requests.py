"""Allocation requests: the list with review stages, a request's page, and the review
and decision forms (each offered only where the service lists the step in the request's
``actions``, from the rules it enforces)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from axcenter.service import allocations
from axcenter.service.center import Center
from axcenter.service.errors import InvalidInput
from axcenter.service.requests import get_request, list_requests
from axcenter.service.schemas import ApproveIn
from axcenter.web.render import page
from axcenter.web.session import FormViewer, PageViewer

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/requests")
def requests_page(request: Request, viewer: PageViewer, status: str | None = None) -> HTMLResponse:
    center: Center = request.app.state.center
    items = list_requests(center, viewer.who, status=status or None)
    return page(
        request, viewer, "requests.html", lang=viewer.lang, requests=items, stage=status or ""
    )


@router.get("/requests/{request_id}")
def request_page(request: Request, viewer: PageViewer, request_id: str) -> HTMLResponse:
    center: Center = request.app.state.center
    req = get_request(center, viewer.who, request_id)
    return page(
        request,
        viewer,
        "request.html",
        lang=viewer.lang,
        req=req,
        may_review="review" in (req.actions or ()),
        may_decide="decide" in (req.actions or ()),
    )


def _back(request_id: str) -> Response:
    return RedirectResponse(f"/ui/requests/{request_id}", status_code=303)


@router.post("/requests/{request_id}/review")
def review(
    request: Request,
    viewer: FormViewer,
    request_id: str,
    score: Annotated[int, Form(ge=1, le=5)],
    comment: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    center: Center = request.app.state.center
    allocations.review(center, viewer.who, request_id, score, comment)
    return _back(request_id)


@router.post("/requests/{request_id}/approve")
async def approve(request: Request, viewer: FormViewer, request_id: str) -> Response:
    """Approve; GPU-hours below those asked (``hours.<type>`` fields) grant less."""
    center: Center = request.app.state.center
    form = await request.form()
    items: dict[str, int] = {}
    for key, value in form.multi_items():
        if key.startswith("hours.") and isinstance(value, str) and value.strip():
            try:
                items[key.removeprefix("hours.")] = int(value)
            except ValueError as exc:
                raise InvalidInput(key, f"must be a whole number, not {value!r}") from exc
    comment = form.get("comment")
    try:
        body = ApproveIn(items=items or None, comment=comment if isinstance(comment, str) else "")
    except ValidationError as exc:
        raise InvalidInput("approval", str(exc.errors()[0]["msg"])) from exc
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
