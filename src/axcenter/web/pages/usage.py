"""Usage over time with drill-down (``service.usage``): organizations, then one
organization's projects, one project's users, one user's jobs; per day, week or month."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from axcenter.service.center import Center
from axcenter.service.usage import PERIODS, usage_over_time
from axcenter.web.charts import usage_over_time_charts
from axcenter.web.render import page
from axcenter.web.session import PageViewer

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/usage")
def usage_page(
    request: Request,
    viewer: PageViewer,
    period: str = "month",
    organization: str | None = None,
    project: str | None = None,
    user: str | None = None,
) -> HTMLResponse:
    center: Center = request.app.state.center
    out = usage_over_time(
        center,
        viewer.who,
        period=period,
        organization=organization or None,
        project=project or None,
        user=user or None,
    )
    return page(
        request,
        viewer,
        "usage.html",
        lang=viewer.lang,
        out=out,
        charts=usage_over_time_charts(out, viewer.lang) if out.series else [],
        periods=PERIODS,
    )
