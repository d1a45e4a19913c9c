"""The push behind live pages: a text/event-stream per open page (``service/live.py``).

A page whose ``<main>`` names a stream (``data-live``) opens it with ``EventSource``;
each message is a sequence number, and the page fetches itself again (``app.js``), so
what it shows is read with the reader's own session, as a reload would. Without the
stream (an old browser, a proxy that buffers) the page polls as before."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from axcenter.service import live
from axcenter.service.center import Center
from axcenter.web.session import PageViewer

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get("/live")
def live_stream(request: Request, viewer: PageViewer, job: str | None = None) -> StreamingResponse:
    """Changes to ``job`` (a job the reader may read: 404 otherwise), or to the projects
    the reader sees."""
    center: Center = request.app.state.center
    sub = live.subscribe(center, viewer.who, job or None)
    return StreamingResponse(
        live.events(center, sub),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
