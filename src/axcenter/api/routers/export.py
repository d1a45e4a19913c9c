"""Exports: the job history as a native trace (CSV) for the simulator."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from axcenter.api.deps import CenterDep, PrincipalDep
from axcenter.service.export import history_csv

router = APIRouter(tags=["export"])


@router.get("/export/history", response_class=StreamingResponse)
def history(
    center: CenterDep,
    who: PrincipalDep,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    """Finished jobs the caller may see, submitted in ``[since, until)``, as native CSV.

    Streamed page by page, so an export of years of history never sits in memory.
    """
    chunks = history_csv(center, who, since=since, until=until)
    return StreamingResponse(
        chunks,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="history.csv"'},
    )
