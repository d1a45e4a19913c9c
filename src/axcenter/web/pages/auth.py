"""Signing in and out, and choosing the language."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from axcenter.service.center import Center
from axcenter.store.accounts import authenticate
from axcenter.web.i18n import LANGUAGES
from axcenter.web.render import page
from axcenter.web.session import LANG_COOKIE, SESSION_COOKIE, language

router = APIRouter(prefix="/ui", include_in_schema=False)

#: a year: the token itself decides how long the session is valid
_COOKIE_AGE_S = 365 * 86400


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute or protocol-relative URL."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    lang = language(request)
    return page(request, None, "login.html", lang=lang, next=_safe_next(next), failed=False)


@router.post("/login")
def login(
    request: Request,
    token: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form()] = "/ui/",
) -> Response:
    center: Center = request.app.state.center
    token = token.strip()
    with center.store.read() as session:
        who = authenticate(session, token)
    if who is None:
        lang = language(request)
        return page(
            request, None, "login.html", lang=lang, status=401, next=_safe_next(next), failed=True
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=_COOKIE_AGE_S,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/lang/{code}")
def choose_language(code: str, next: str | None = None) -> Response:
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in LANGUAGES:
        response.set_cookie(LANG_COOKIE, code, max_age=_COOKIE_AGE_S, samesite="lax", path="/")
    return response
