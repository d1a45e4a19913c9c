"""The FastAPI application: API routers, the dashboard, error shapes, the guard
(authentication before any body, body size, failed-authentication limit: ``guard``),
health (``/healthz``, ``/readyz``) and metrics (``/metrics``)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.telemetry import TelemetryConfig
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Receive, Scope, Send

from axcenter import __version__
from axcenter.api.guard import Guard
from axcenter.api.problems import describe
from axcenter.api.routers import (
    allocations,
    audit,
    charges,
    cluster,
    export,
    funding,
    jobs,
    organizations,
    people,
    policy,
    prices,
    programs,
    projects,
    reports,
    templates,
)
from axcenter.service.center import Center
from axcenter.service.errors import ServiceError
from axcenter.store.db import RETRY_AFTER_S, unavailable
from axcenter.web import app as web

__all__ = ["create_app"]

log = logging.getLogger(__name__)

#: FastAPI's own OpenTelemetry hooks, off: axcenter configures no OpenTelemetry provider
#: (its metrics are Prometheus'), and looking for one cost 5-7% of a submission's CPU
NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def create_app(center: Center) -> FastAPI:
    app = FastAPI(
        title="axcenter",
        version=__version__,
        description="Operating platform of a shared AI computing center.",
        lifespan=_lifespan,
        telemetry=NO_TELEMETRY,
        docs_url=None,  # served below from local files: FastAPI's page loads them from a CDN
        redoc_url=None,
    )
    app.state.center = center
    app.include_router(jobs.router, prefix="/api/v1")  # first: routes are tried in order
    app.include_router(projects.router, prefix="/api/v1")
    app.include_router(templates.router, prefix="/api/v1")
    app.include_router(people.router, prefix="/api/v1")
    app.include_router(charges.router, prefix="/api/v1")
    app.include_router(cluster.router, prefix="/api/v1")
    app.include_router(policy.router, prefix="/api/v1")
    app.include_router(export.router, prefix="/api/v1")
    app.include_router(reports.router, prefix="/api/v1")
    app.include_router(programs.router, prefix="/api/v1")
    app.include_router(funding.router, prefix="/api/v1")
    app.include_router(organizations.router, prefix="/api/v1")
    app.include_router(allocations.router, prefix="/api/v1")
    app.include_router(prices.router, prefix="/api/v1")
    app.include_router(audit.router, prefix="/api/v1")
    app.add_exception_handler(ServiceError, _service_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(SQLAlchemyError, _store_error)
    app.add_exception_handler(OSError, _store_error)
    app.add_middleware(StandbyReadsOnly, center=center)
    app.add_middleware(Guard)  # outermost: authentication before anything
    web.mount(app)
    _mount_docs(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP (it checks nothing else, so a supervisor
        restarts the process only when it is really stuck). Needs no token, says nothing."""
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        """Readiness: 200 when the store answers, the control loop cycled lately and the
        engine's calls succeed; else 503 naming the checks that failed. No token."""
        verdict = center.readiness()
        return JSONResponse(
            {"status": "ready" if verdict.ready else "not ready", "checks": verdict.checks},
            status_code=200 if verdict.ready else 503,
            headers=None if verdict.ready else {"Retry-After": str(RETRY_AFTER_S)},
        )

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        """Prometheus metrics (``control/metrics.py``), in the text format. No token:
        counts and times only, as a scraper on the operator's network expects."""
        return Response(generate_latest(center.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _mount_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs`` with its scripts and styles served from this process (the
    ``swagger-ui-bundle-v2`` package ships them): the page works offline, and loads
    nothing another site could change."""
    app.mount("/docs/static", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), "docs")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url="/docs/static/swagger-ui-bundle.js",
            swagger_css_url="/docs/static/swagger-ui.css",
            swagger_favicon_url="/docs/static/favicon-32x32.png",
        )


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """At shutdown, close what the center's writes hold on this event loop."""
    yield
    center: Center = app.state.center
    await center.writes.aclose()


async def _service_error(request: Request, exc: ServiceError) -> Response:
    """The same status and message for the API (JSON) and the dashboard (a page)."""
    if web.is_page(request):
        return web.error_page(request, exc.status, exc.message, error=exc)
    return JSONResponse({"detail": exc.message}, status_code=exc.status)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    """One readable line per problem, each naming its field (``jobs.0.gpus_per_node: …``)
    and what it accepts (``api/problems.py``)."""
    problems = [describe(err) for err in exc.errors()]
    if web.is_page(request):
        return web.error_page(request, 422, "; ".join(problems))
    return JSONResponse({"detail": "; ".join(problems)}, status_code=422)


async def _store_error(request: Request, exc: Exception) -> Response:
    """The store cannot serve now (unreachable, busy, its disk full): 503 with
    ``Retry-After``, which clients retry with the same idempotency key. Any other
    database or disk error is ours: a JSON 500 that says so, the details in the log."""
    reason = unavailable(exc)
    center: Center = request.app.state.center
    if reason is None:
        log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
        status, message, headers = 500, "internal error (logged on the server)", None
    else:
        log.warning("request %s %s: %s: %s", request.method, request.url.path, reason, exc)
        center.metrics.store_errors.labels("api").inc()
        status, message = 503, f"{reason}; try again shortly"
        headers = {"Retry-After": str(RETRY_AFTER_S)}
    if web.is_page(request):  # no page template: rendering one reads the store
        return HTMLResponse(
            f"<!doctype html><title>axcenter</title><p>{message}</p>",
            status_code=status,
            headers=headers,
        )
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


class StandbyReadsOnly:
    """A standby center (``axc up --standby``) serves reads; a request that would change
    something is answered 503 with ``Retry-After`` until it takes over."""

    def __init__(self, app: ASGIApp, center: Center) -> None:
        self.app = app
        self.center = center

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.center.standby
            and scope["method"] not in ("GET", "HEAD", "OPTIONS")
        ):
            response = JSONResponse(
                {"detail": "this center is a standby: it serves reads until it takes over"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
