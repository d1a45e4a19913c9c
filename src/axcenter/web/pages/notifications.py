"""Notifications: what the reader should hear about (``service.notifications``), newest
first; opening the page marks them read (a cookie holds the moment)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from axcenter.service.center import Center
from axcenter.service.mail import KINDS, mail_settings, set_mail_settings
from axcenter.service.notifications import FEED_DAYS, notifications
from axcenter.service.schemas import MailSettingsIn
from axcenter.store.types import utcnow
from axcenter.web.problems import say
from axcenter.web.render import page
from axcenter.web.session import SEEN_COOKIE, FormViewer, PageViewer, Viewer, seen

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
        settings=mail_settings(center, viewer.who),
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


def _settings_page(
    request: Request, viewer: Viewer, error: str | None = None, saved: bool = False
) -> HTMLResponse:
    center: Center = request.app.state.center
    return page(
        request,
        viewer,
        "mail_settings.html",
        lang=viewer.lang,
        status=400 if error else 200,
        settings=mail_settings(center, viewer.who),
        kinds=list(KINDS),
        error=error,
        saved=saved,
    )


@router.get("/notifications/settings")
def settings_page(request: Request, viewer: PageViewer, saved: bool = False) -> HTMLResponse:
    """Which notifications come by e-mail, where, in which language."""
    return _settings_page(request, viewer, saved=saved)


@router.post("/notifications/settings")
async def save_settings(request: Request, viewer: FormViewer) -> Response:
    center: Center = request.app.state.center
    form = await request.form()
    address = form.get("address")
    language = form.get("language")
    try:
        body = MailSettingsIn(
            address=address.strip() or None if isinstance(address, str) else None,
            language=language if isinstance(language, str) else viewer.lang,
            kinds=[k for k in form.getlist("kind") if isinstance(k, str)],
        )
    except ValidationError as exc:
        return _settings_page(request, viewer, say(exc, viewer.lang))
    set_mail_settings(center, viewer.who, body)
    return RedirectResponse("/ui/notifications/settings?saved=true", status_code=303)
