"""Notifications: what the reader should hear about (``service.notifications``), newest
first; opening the page marks them read (a cookie holds the moment)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from axcenter.service.center import Center
from axcenter.service.notifications import FEED_DAYS, notifications
from axcenter.store.types import utcnow
from axcenter.web.render import page
from axcenter.web.session import SEEN_COOKIE, PageViewer, seen

router = APIRouter(prefix="/ui", include_in_schema=False)

#: where each kind of notification leads
LINKS = {
    "job": "/ui/jobs/",
    "request": "/ui/requests/",
    "grant": "/ui/projects/",
    "notice": "/ui/grants/",
}


@router.get("/notifications")
def notifications_page(request: Request, viewer: PageViewer) -> HTMLResponse:
    center: Center = request.app.state.center
    before = seen(request)
    items = notifications(center, viewer.who)
    response = page(
        request,
        viewer,
        "notifications.html",
        lang=viewer.lang,
        items=[n for n in items if n.at is not None],
        alerts=[n for n in items if n.at is None],
        last_seen=before,
        days=FEED_DAYS,
        links=LINKS,
    )
    if request.headers.get("x-refresh") is None:
        response.set_cookie(
            SEEN_COOKIE,
            utcnow().isoformat(),
            max_age=365 * 86400,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
    return response
