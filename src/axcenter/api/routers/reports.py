"""Reports: usage by any grouping, usage over time with drill-down, and a program's
burn-down, as JSON or CSV."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service import reports as service
from axcenter.service import usage as usage_service
from axcenter.service.schemas import BurndownOut, UsageOverTimeOut, UsageReportOut

router = APIRouter(tags=["reports"])

Format = Annotated[Literal["json", "csv"], Query(alias="format")]
_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv"}
}


def _answer(body: UsageReportOut | BurndownOut, csv_text: str | None, name: str) -> Response:
    if csv_text is not None:
        return Response(
            content=csv_text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    return Response(content=body.model_dump_json(), media_type="application/json")


@router.get("/reports/usage", response_model=UsageReportOut, responses=_CSV)
def usage(
    center: CenterDep,
    who: PrincipalDep,
    group_by: Annotated[list[str] | None, Query()] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    fmt: Format = "json",
) -> Response:
    """GPU-hours granted and used, won charged (public and co-pay), runs and waits per
    group, for the projects the caller may see; charges in ``[since, until)``. The total
    row is the sum of the rows."""
    report = service.usage(
        center, who, group_by or service.DEFAULT_GROUP_BY, since=since, until=until
    )
    return _answer(report, service.usage_csv(report) if fmt == "csv" else None, "usage")


@router.get("/reports/usage-over-time")
def usage_over_time(
    center: CenterDep,
    who: PrincipalDep,
    period: str = "month",
    organization: str | None = None,
    project: str | None = None,
    user: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> UsageOverTimeOut:
    """GPU-hours and won charged per day, week or month: by organization; one
    organization's projects (``organization``); one project's users (``project``); one
    user's jobs (``project`` and ``user``). Buckets in the center's zone, from its first
    charge on; one not over yet is ``partial``."""
    return usage_service.usage_over_time(
        center,
        who,
        period=period,
        organization=organization,
        project=project,
        user=user,
        since=_utc(since),
        until=_utc(until),
    )


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@router.get("/reports/burndown/{program}", response_model=BurndownOut, responses=_CSV)
def burndown(program: str, center: CenterDep, who: PrincipalDep, fmt: Format = "json") -> Response:
    """A program's budget, its charges per day, and when it runs out at the current rate."""
    out = service.burndown(center, who, program)
    return _answer(out, service.burndown_csv(out) if fmt == "csv" else None, "burndown")
