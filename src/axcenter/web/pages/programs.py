"""Funding programs: budgets, burn-down with forecast, spending by organization, sector,
GPU type and company size (SME share), and the same CSV exports as the API."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from axcenter.model.access import Role
from axcenter.service import reports
from axcenter.service.center import Center
from axcenter.service.programs import get_program, list_programs
from axcenter.service.schemas import UsageReportOut, UsageRowOut
from axcenter.web.charts import burndown_chart, spending_chart
from axcenter.web.i18n import translate
from axcenter.web.render import page
from axcenter.web.session import PageViewer

router = APIRouter(prefix="/ui", include_in_schema=False)

#: (dimension, chart id, catalog key of the chart's title)
BREAKDOWNS = (
    ("organization", "by-org", "programs.by_org"),
    ("sector", "by-sector", "programs.by_sector"),
    ("gpu_type", "by-type", "programs.by_type"),
    ("size_class", "by-size", "programs.by_size"),
)


@router.get("/programs")
def programs_page(request: Request, viewer: PageViewer) -> HTMLResponse:
    center: Center = request.app.state.center
    items = list_programs(center, viewer.who)
    return page(request, viewer, "programs.html", lang=viewer.lang, programs=items)


def _of_program(report: UsageReportOut, program: str) -> UsageReportOut:
    """The rows of one program (the report groups by program first)."""
    rows = [r for r in report.rows if r.keys.get("program") == program]
    return report.model_copy(update={"rows": rows})


def _sme_share(rows: list[UsageRowOut]) -> float | None:
    total = sum(r.charged_won for r in rows)
    sme = sum(r.charged_won for r in rows if r.keys.get("size_class") == "SME")
    return sme / total if total else None


@router.get("/programs/{ref}")
def program_page(request: Request, viewer: PageViewer, ref: str) -> HTMLResponse:
    center: Center = request.app.state.center
    program = get_program(center, viewer.who, ref)
    burndown = None
    charts = []
    sme_share = None
    if viewer.oversees:
        burndown = reports.burndown(center, viewer.who, program.id)
        charts.append(burndown_chart(burndown, viewer.lang))
    if viewer.role is not Role.REVIEWER:  # reviewers see no usage (as in the API)
        for dim, chart_id, key in BREAKDOWNS:
            report = _of_program(reports.usage(center, viewer.who, ("program", dim)), program.name)
            if dim == "size_class":
                sme_share = _sme_share(report.rows)
            charts.append(
                spending_chart(chart_id, translate(key, viewer.lang), report, dim, viewer.lang)
            )
    return page(
        request,
        viewer,
        "program.html",
        lang=viewer.lang,
        program=program,
        burndown=burndown,
        charts=charts,
        sme_share=sme_share,
    )


def _csv(body: str, name: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/programs/{ref}/usage.csv")
def usage_csv(request: Request, viewer: PageViewer, ref: str) -> Response:
    """The API's ``/reports/usage?group_by=program&group_by=organization&format=csv``."""
    center: Center = request.app.state.center
    get_program(center, viewer.who, ref)
    report = reports.usage(center, viewer.who, ("program", "organization"))
    return _csv(reports.usage_csv(report), "usage")


@router.get("/programs/{ref}/burndown.csv")
def burndown_csv(request: Request, viewer: PageViewer, ref: str) -> Response:
    """The API's ``/reports/burndown/{program}?format=csv``."""
    center: Center = request.app.state.center
    return _csv(reports.burndown_csv(reports.burndown(center, viewer.who, ref)), "burndown")
