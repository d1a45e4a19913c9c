"""Mounting the dashboard on the API's application: pages under ``/ui``, static files."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from axcenter.service.errors import ServiceError
from axcenter.web.messages import detail
from axcenter.web.pages import (
    auth,
    cluster,
    jobs,
    live,
    notifications,
    programs,
    projects,
    requests,
    usage,
)
from axcenter.web.problems import FormProblem, say
from axcenter.web.render import page
from axcenter.web.session import BadForm, SignInRequired, language, optional_viewer

__all__ = ["ROUTERS", "error_page", "is_page", "mount"]

STATIC = Path(__file__).parent / "static"
#: every page of the dashboard (tests walk this table: each page must need a session)
ROUTERS = tuple(
    m.router
    for m in (auth, cluster, jobs, projects, requests, programs, notifications, live, usage)
)


def mount(app: FastAPI) -> None:
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(SignInRequired, _sign_in)  # type: ignore[arg-type]
    app.add_exception_handler(BadForm, _bad_form)  # type: ignore[arg-type]
    app.add_exception_handler(FormProblem, _form_problem)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=303)


def is_page(request: Request) -> bool:
    return request.url.path == "/ui" or request.url.path.startswith("/ui/")


def error_page(
    request: Request,
    status: int,
    message: str,
    key: str = "",
    *,
    error: ServiceError | None = None,
) -> HTMLResponse:
    """An error on a page: the same status as the API, said in the page's language
    (``error.<status>``, or ``key``), the details under it (a service's ``error`` in the
    page's language, ``messages.detail``; else ``message``), and the navigation kept
    (when the caller is signed in)."""
    viewer = optional_viewer(request)
    lang = viewer.lang if viewer is not None else language(request)
    if error is not None:
        message = detail(error, lang)
    return page(
        request,
        viewer,
        "error.html",
        lang=lang,
        status=status,
        code=status,
        headline=key or f"error.{status if status in _SAID else 400}",
        message=message,
    )


#: statuses with their own sentence in the catalog
_SAID = frozenset({400, 403, 404, 405, 409, 422})


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """The framework's own errors (no such page, a method a page does not take): under
    ``/ui`` a page in the reader's language with the navigation; elsewhere FastAPI's JSON."""
    if not is_page(request):
        return await http_exception_handler(request, exc)
    return error_page(request, exc.status_code, str(exc.detail))


async def _sign_in(_: Request, exc: SignInRequired) -> Response:
    return RedirectResponse(exc.location, status_code=303)


async def _form_problem(request: Request, exc: FormProblem) -> Response:
    """A field a form's handler could not read (``problems.whole``), named as the form
    labels it, in the reader's language."""
    viewer = optional_viewer(request)
    return error_page(request, 400, say(exc, viewer.lang if viewer else language(request)))


async def _bad_form(request: Request, _: BadForm) -> Response:
    return error_page(
        request,
        403,
        "the form is stale or came from another site: reload the page",
        "error.stale_form",
    )
