"""Who is looking: the signed-in principal (from a cookie), the page language, CSRF.

Signing in with an API token opens a dashboard session of its own (``web_sessions``):
the cookie holds the session's random secret, never the API token, and the session ends
after ``Settings.web_session_lifetime_s``, when its user is deactivated, or when the
user signs out (the server revokes it: a copied cookie is worthless after that). It is
checked on every request. The cookie is ``HttpOnly`` (no script reads it),
``SameSite=Strict`` (no other site's page sends it), and ``Secure`` behind HTTPS.

Forms carry a CSRF value derived from the session's secret, which another site cannot
know. The sign-in form, before any session, carries a random value that must equal the
one in a cookie set with the form (a double-submit cookie), so another site cannot sign
a browser in under an account of its choosing.
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
from axcenter.store.accounts import session_principal
from axcenter.web.i18n import negotiate

__all__ = [
    "LANG_COOKIE",
    "LOGIN_CSRF_COOKIE",
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
#: the sign-in form's double-submit value
LOGIN_CSRF_COOKIE = "axc_login_csrf"
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


def csrf_for(secret: str) -> str:
    """The forms' CSRF value of the session whose secret is ``secret``."""
    return hmac.new(secret.encode(), b"axcenter-web-form", hashlib.sha256).hexdigest()


def language(request: Request) -> str:
    return negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def _viewer(request: Request) -> Viewer:
    center: Center = request.app.state.center
    # what the page will show is read after this: a live page's stream that says a later
    # version has it fetched again at once (``app.js``), so no change in between is lost
    request.state.live_version = center.live.version
    secret = request.cookies.get(SESSION_COOKIE)
    who = None
    if secret:
        with center.store.read() as session:
            who = session_principal(session, secret)
    if secret is None or who is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return Viewer(who=who, csrf=csrf_for(secret), lang=language(request))


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
