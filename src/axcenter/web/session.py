"""Who is looking: the signed-in principal (from a cookie), the page language, CSRF.

The session cookie holds the user's API token: the same credential the API takes, checked
the same way on every request (so revoking a token signs its pages out at once). It is
``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's page sends it),
and ``Secure`` behind HTTPS. Forms also carry a CSRF value derived from the token, which
another site cannot know.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request

from axcenter.model.access import Principal, Role
from axcenter.service.center import Center
from axcenter.store.accounts import authenticate
from axcenter.web.i18n import negotiate

__all__ = [
    "LANG_COOKIE",
    "SEEN_COOKIE",
    "SESSION_COOKIE",
    "BadForm",
    "FormViewer",
    "PageViewer",
    "SignInRequired",
    "Viewer",
    "csrf_for",
    "language",
    "optional_viewer",
    "seen",
]

SESSION_COOKIE = "axc_session"
LANG_COOKIE = "axc_lang"
#: when the reader last opened the notifications (what is newer counts as unread)
SEEN_COOKIE = "axc_seen"


class SignInRequired(Exception):
    """No valid session: the page redirects to the sign-in form, then back to ``next``."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url

    @property
    def location(self) -> str:
        return f"/ui/login?next={quote(self.next_url, safe='/')}"


class BadForm(Exception):
    """A form without the page's CSRF value: refused (403) before anything changes."""


@dataclass(frozen=True, slots=True)
class Viewer:
    who: Principal
    csrf: str
    lang: str

    @property
    def role(self) -> Role:
        return self.who.role

    @property
    def oversees(self) -> bool:
        """Operators and program managers: center-wide views (burn-downs, decisions)."""
        return self.who.role in (Role.OPERATOR, Role.PROGRAM_MANAGER)


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"axcenter-web-form", hashlib.sha256).hexdigest()


def language(request: Request) -> str:
    return negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def _viewer(request: Request) -> Viewer:
    center: Center = request.app.state.center
    token = request.cookies.get(SESSION_COOKIE)
    who = None
    if token:
        with center.store.read() as session:
            who = authenticate(session, token)
    if token is None or who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return Viewer(who=who, csrf=csrf_for(token), lang=language(request))


async def _form_viewer(request: Request) -> Viewer:
    viewer = _viewer(request)
    form = await request.form()
    sent = form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, viewer.csrf):
        raise BadForm
    return viewer


def seen(request: Request) -> datetime | None:
    """When this browser last showed the notifications (None: never)."""
    value = request.cookies.get(SEEN_COOKIE)
    try:
        at = datetime.fromisoformat(value) if value else None
    except ValueError:
        return None
    return at if at is None or at.tzinfo else at.replace(tzinfo=UTC)


def optional_viewer(request: Request) -> Viewer | None:
    """The signed-in viewer, or None (for pages that also show to strangers: errors)."""
    try:
        return _viewer(request)
    except SignInRequired:
        return None


PageViewer = Annotated[Viewer, Depends(_viewer)]
#: for POST handlers: a signed-in viewer whose form carries the CSRF value
FormViewer = Annotated[Viewer, Depends(_form_viewer)]
