"""Funding programs: budgets, burn-down with forecast, spending by organization, sector,
GPU type and company size (SME share), the same CSV exports as the API, and what each
grant owes (tranches, progress reports, surveys); a grant's own page."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from axcenter.model.access import Role
from axcenter.service import monitoring, obligations, reports, settlement, tranches
from axcenter.service.center import Center
from axcenter.service.grants import get_allocation
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


def _by(report: UsageReportOut, program: str, dim: str) -> UsageReportOut:
    """One program's won per group of ``dim``, summed from the finer report's rows."""
    sums: dict[str | None, list[int]] = {}
    for row in report.rows:
        if row.keys.get("program") == program:
            acc = sums.setdefault(row.keys.get(dim), [0, 0, 0])
            acc[0] += row.charged_won
            acc[1] += row.public_won
            acc[2] += row.copay_won
    rows = [
        report.total.model_copy(
            update={
                "keys": {"program": program, dim: key},
                "charged_won": won,
                "public_won": public,
                "copay_won": copay,
            }
        )
        for key, (won, public, copay) in sums.items()
    ]
    return report.model_copy(update={"group_by": ["program", dim], "rows": rows})


def _sme_share(report: UsageReportOut) -> float | None:
    total = sum(r.charged_won for r in report.rows)
    sme = sum(r.charged_won for r in report.rows if r.keys.get("size_class") == "SME")
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
        # one pass over the ledger at the finest grain, summed per breakdown here
        fine = reports.usage(
            center, viewer.who, ("program", *(d for d, _, _ in BREAKDOWNS)), waits=False
        )
        for dim, chart_id, key in BREAKDOWNS:
            report = _by(fine, program.name, dim)
            if dim == "size_class":
                sme_share = _sme_share(report)
            charts.append(
                spending_chart(chart_id, translate(key, viewer.lang), report, dim, viewer.lang)
            )
    owed = None
    if viewer.role is not Role.REVIEWER:
        owed = obligations.obligations(center, viewer.who, program.id)
    return page(
        request,
        viewer,
        "program.html",
        lang=viewer.lang,
        program=program,
        burndown=burndown,
        charts=charts,
        sme_share=sme_share,
        owed=owed,
    )


@router.get("/grants/{allocation_id}")
def grant_page(request: Request, viewer: PageViewer, allocation_id: str) -> HTMLResponse:
    """One grant: its balance, tranches and progress reports, what it owes (reports and
    surveys, with where each stands) and the notices sent about it."""
    center: Center = request.app.state.center
    allocation = get_allocation(center, viewer.who, allocation_id)
    return page(
        request,
        viewer,
        "grant.html",
        lang=viewer.lang,
        a=allocation,
        parts=tranches.get_tranches(center, viewer.who, allocation_id),
        owed=obligations.one_grant(center, viewer.who, allocation_id),
        notices=obligations.list_notices(center, viewer.who, allocation_id),
        use=monitoring.one_grant_use(center, viewer.who, allocation_id),
    )


def _csv(body: str, name: str) -> Response:
    """A CSV for people: UTF-8 with a byte-order mark, so that Excel on Korean Windows
    reads the Hangul instead of guessing a legacy code page."""
    return Response(
        "\ufeff" + body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def _header(lang: str) -> Callable[[str], str]:
    """Column names in the page's language (the API's own names in English)."""
    if lang != "ko":
        return str
    return lambda column: translate(f"csv.{column}", lang)


@router.get("/programs/{ref}/usage.csv")
def usage_csv(request: Request, viewer: PageViewer, ref: str) -> Response:
    """This program's usage by organization: the rows of the API's
    ``/reports/usage?group_by=program&group_by=organization&format=csv`` that are the
    program's, and the program's own total."""
    center: Center = request.app.state.center
    program = get_program(center, viewer.who, ref)
    report = reports.usage(center, viewer.who, ("program", "organization"))
    totals = reports.usage(center, viewer.who, ("program",), waits=True)
    mine = [r for r in totals.rows if r.keys.get("program") == program.name]
    total = mine[0] if mine else _nothing(totals.total)
    one = report.model_copy(
        update={
            "rows": [r for r in report.rows if r.keys.get("program") == program.name],
            "total": total.model_copy(update={"keys": {"program": None}}),
        }
    )
    return _csv(reports.usage_csv(one, _header(viewer.lang)), "usage")


def _nothing(total: UsageRowOut) -> UsageRowOut:
    """A total row of zeros (a program nobody used yet)."""
    zero = {
        name: (0 if isinstance(value, int) else None)
        for name, value in total.model_dump().items()
        if name != "keys"
    }
    return total.model_copy(
        update={**zero, "granted_gpu_hours": Decimal(0), "used_gpu_hours": Decimal(0)}
    )


@router.get("/programs/{ref}/burndown.csv")
def burndown_csv(request: Request, viewer: PageViewer, ref: str) -> Response:
    """The API's ``/reports/burndown/{program}?format=csv`` (days of the center's zone)."""
    center: Center = request.app.state.center
    b = reports.burndown(center, viewer.who, ref)
    return _csv(reports.burndown_csv(b, _header(viewer.lang)), "burndown")


@router.get("/programs/{ref}/settlement.{fmt}")
def settlement_file(request: Request, viewer: PageViewer, ref: str, fmt: str) -> Response:
    """The API's ``/programs/{p}/settlement?format=csv|xlsx``: the program's settlement
    up to now, in the documented layout (the caller's scope)."""
    center: Center = request.app.state.center
    if fmt not in ("csv", "xlsx"):
        return Response(status_code=404)
    out = settlement.program_settlement(center, viewer.who, ref)
    if fmt == "csv":
        return _csv(settlement.sheet_csv(out), "settlement")
    return Response(
        settlement.sheet_xlsx(out),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": 'attachment; filename="settlement.xlsx"'},
    )
