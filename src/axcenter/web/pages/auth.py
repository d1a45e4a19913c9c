"""Signing in and out, and choosing the language.

Signing in takes an API token and opens a dashboard session (``web.session``); failed
attempts count against the same limit as the API's (``service.throttle``).
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from axcenter.service.center import Center
from axcenter.service.throttle import token_prefix
from axcenter.store.accounts import authenticate, open_session, revoke_session
from axcenter.web.i18n import LANGUAGES
from axcenter.web.render import page
from axcenter.web.session import (
    LANG_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    FormViewer,
    language,
)

router = APIRouter(prefix="/ui", include_in_schema=False)

#: a year, for the language choice
_COOKIE_AGE_S = 365 * 86400
#: how long a sign-in form may be filled in
_LOGIN_FORM_AGE_S = 3600


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute or protocol-relative URL."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


def _login_page(
    request: Request, next_url: str | None, *, status: int = 200, failed: str = ""
) -> HTMLResponse:
    """The sign-in form with a fresh double-submit CSRF value (cookie and field)."""
    csrf = secrets.token_urlsafe(32)
    response = page(
        request,
        None,
        "login.html",
        lang=language(request),
        status=status,
        next=_safe_next(next_url),
        failed=failed,
        csrf=csrf,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        max_age=_LOGIN_FORM_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/ui/login",
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_page(request, next)


@router.post("/login")
def login(
    request: Request,
    token: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form()] = "/ui/",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    center: Center = request.app.state.center
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(csrf, expected):
        return _login_page(request, next, status=403, failed="login.expired")
    token = token.strip()
    client = request.client
    keys = (f"addr:{client.host if client else '?'}", f"token:{token_prefix(token)}")
    if center.auth_failures.retry_after(*keys):
        return _login_page(request, next, status=429, failed="login.too_many")
    with center.store.write() as session:
        who = authenticate(session, token)
        secret = (
            open_session(
                session, who.user_id, timedelta(seconds=center.settings.web_session_lifetime_s)
            )
            if who is not None
            else None
        )
    if secret is None:
        center.auth_failures.failed(*keys)
        return _login_page(request, next, status=401, failed="login.bad_token")
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=center.settings.web_session_lifetime_s,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui/login")
    return response


@router.post("/logout")
def logout(request: Request, viewer: FormViewer) -> Response:
    """Revoke the session on the server (the cookie is worthless from now on)."""
    center: Center = request.app.state.center
    secret = request.cookies.get(SESSION_COOKIE, "")
    with center.store.write() as session:
        revoke_session(session, secret)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{code}")
def choose_language(code: str, next: str | None = None) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=_COOKIE_AGE_S, samesite="lax", path="/")
    return response
