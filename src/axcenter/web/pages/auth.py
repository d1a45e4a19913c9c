"""Signing in and out, and choosing the language.

The sign-in page offers what the center's configuration allows (``service.signin``):
single sign-on with the institution's OpenID provider, a password with a second factor
(TOTP or a recovery code; enrolled at the first sign-in, after an operator's reset link),
and an API token. Every way ends by opening a dashboard session with a fresh secret
(``web.session``); a session the browser brought along is revoked then, so no one can
fix a victim's session in advance. Failed attempts count against the API's limit
(``service.throttle``).

Every form here carries a double-submit CSRF value (a cookie set with the form, the same
value in a field); a sign-in under way is a cookie of its own (``SIGNIN_COOKIE``), and
single sign-on's ``state`` one more (``SSO_COOKIE``, ``SameSite=Lax``: the provider's
redirect back is a cross-site navigation, which a ``Strict`` cookie would not follow).
The provider's answer is therefore shown as a page that continues by itself to the
target (a same-site navigation, so the ``Strict`` session cookie goes with it).
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from axcenter.service import passwords, signin
from axcenter.service.center import Center
from axcenter.service.signin import Refused
from axcenter.service.throttle import token_prefix
from axcenter.store.accounts import authenticate, revoke_session
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
#: a password sign-in's next step (its flow's secret)
SIGNIN_COOKIE = "axc_signin"
#: single sign-on's state, checked against the provider's answer
SSO_COOKIE = "axc_sso"
_FLOW_AGE_S = int(signin.FLOW_LIFETIME.total_seconds())


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an absolute or protocol-relative URL, nor one a
    browser would make so (backslashes, tabs and newlines it drops, other controls)."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and all(ch.isprintable() and not ch.isspace() for ch in target)
    ):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return "/ui/"


def _address(request: Request) -> str:
    return request.client.host if request.client else "?"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _with_form_csrf(
    request: Request, template: str, *, status: int = 200, **context: Any
) -> HTMLResponse:
    """A sign-in page whose form carries a fresh double-submit CSRF value."""
    csrf = secrets.token_urlsafe(32)
    center: Center = request.app.state.center
    response = page(
        request,
        None,
        template,
        lang=language(request),
        status=status,
        csrf=csrf,
        sign_in=center.sign_in,
        **context,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        max_age=_LOGIN_FORM_AGE_S,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/ui/login",
    )
    return response


def _login_page(
    request: Request, next_url: str | None, *, status: int = 200, failed: str = ""
) -> HTMLResponse:
    return _with_form_csrf(
        request, "login.html", status=status, next=_safe_next(next_url), failed=failed
    )


def _csrf_ok(request: Request, sent: str) -> bool:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(expected) and hmac.compare_digest(sent, expected)


def _signed_in(request: Request, secret: str, response: Response) -> Response:
    """Give the browser its new session; the one it brought (if any) is revoked."""
    center: Center = request.app.state.center
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        with center.store.write() as session:
            revoke_session(session, old)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=center.settings.web_session_lifetime_s,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/",
    )
    for name, path in (
        (LOGIN_CSRF_COOKIE, "/ui/login"),
        (SIGNIN_COOKIE, "/ui/login"),
        (SSO_COOKIE, "/ui/login/sso"),
    ):
        response.delete_cookie(name, path=path)
    return response


def _refused(request: Request, refusal: Refused, next_url: str | None = None) -> HTMLResponse:
    response = _login_page(request, next_url, status=refusal.status, failed=refusal.reason)
    if refusal.retry_after:
        response.headers["Retry-After"] = str(refusal.retry_after)
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_page(request, next)


@router.post("/login")
def login(
    request: Request,
    token: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=2000)] = "/ui/",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Sign in with an API token."""
    center: Center = request.app.state.center
    if not _csrf_ok(request, csrf):
        return _login_page(request, next, status=403, failed="login.expired")
    if not center.sign_in.tokens:
        return _login_page(request, next, status=403, failed="login.token_off")
    token = token.strip()
    keys = (f"addr:{_address(request)}", f"token:{token_prefix(token)}")
    if center.auth_failures.retry_after(*keys):
        return _login_page(request, next, status=429, failed="login.too_many")
    with center.store.write() as session:
        who = authenticate(session, token)
        secret = signin.new_session(center, session, who.user_id) if who is not None else None
    if secret is None:
        center.auth_failures.failed(*keys)
        return _login_page(request, next, status=401, failed="login.bad_token")
    return _signed_in(request, secret, RedirectResponse(_safe_next(next), status_code=303))


def _to_step(request: Request, step: signin.Step) -> Response:
    target = "/ui/login/code" if step.kind == "second_factor" else "/ui/login/enrol"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SIGNIN_COOKIE,
        step.secret,
        max_age=_FLOW_AGE_S,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/ui/login",
    )
    return response


@router.post("/login/password")
def login_password(
    request: Request,
    name: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    next: Annotated[str, Form(max_length=2000)] = "/ui/",
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The first step: name and password; then the second factor (or its enrolment)."""
    center: Center = request.app.state.center
    if not _csrf_ok(request, csrf):
        return _login_page(request, next, status=403, failed="login.expired")
    try:
        step = passwords.password_step(center, name, password, _address(request), _safe_next(next))
    except Refused as refusal:
        return _refused(request, refusal, next)
    return _to_step(request, step)


@router.get("/login/code")
def code_form(request: Request) -> Response:
    center: Center = request.app.state.center
    name = signin.flow_user(center, request.cookies.get(SIGNIN_COOKIE), "second_factor")
    if name is None:
        return _login_page(request, None, status=403, failed="login.expired")
    return _with_form_csrf(request, "login_code.html", name=name, failed="")


@router.post("/login/code")
def login_code(
    request: Request,
    code: Annotated[str, Form(max_length=40)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    center: Center = request.app.state.center
    if not _csrf_ok(request, csrf):
        return _login_page(request, None, status=403, failed="login.expired")
    flow = request.cookies.get(SIGNIN_COOKIE)
    try:
        secret, next_url = passwords.second_factor_step(center, flow, code, _address(request))
    except Refused as refusal:
        name = signin.flow_user(center, flow, "second_factor")
        if name is None or refusal.retry_after:
            return _refused(request, refusal)
        return _with_form_csrf(
            request, "login_code.html", status=refusal.status, name=name, failed=refusal.reason
        )
    return _signed_in(request, secret, RedirectResponse(_safe_next(next_url), status_code=303))


def _enrol_page(request: Request, *, status: int = 200, failed: str = "") -> Response:
    center: Center = request.app.state.center
    try:
        key, uri, qr = passwords.begin_enrolment(center, request.cookies.get(SIGNIN_COOKIE))
    except Refused as refusal:
        return _refused(request, refusal)
    return _with_form_csrf(
        request, "login_enrol.html", status=status, key=key, uri=uri, qr=qr, failed=failed
    )


@router.get("/login/enrol")
def enrol_form(request: Request) -> Response:
    return _enrol_page(request)


@router.post("/login/enrol")
def enrol(
    request: Request,
    code: Annotated[str, Form(max_length=40)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The first code of the new second factor confirms it; the recovery codes are shown
    once, and the session is open."""
    center: Center = request.app.state.center
    if not _csrf_ok(request, csrf):
        return _login_page(request, None, status=403, failed="login.expired")
    try:
        secret, next_url, codes = passwords.confirm_enrolment(
            center, request.cookies.get(SIGNIN_COOKIE), code
        )
    except Refused as refusal:
        if refusal.reason == "login.bad_code":
            return _enrol_page(request, status=refusal.status, failed=refusal.reason)
        return _refused(request, refusal)
    shown = page(
        request,
        None,
        "login_recovery.html",
        lang=language(request),
        codes=codes,
        next=_safe_next(next_url),
    )
    return _signed_in(request, secret, shown)


@router.get("/login/reset")
def reset_form(request: Request, code: str = "") -> Response:
    return _with_form_csrf(request, "login_reset.html", code=code[:200], failed="")


@router.post("/login/reset")
def reset(
    request: Request,
    code: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=1000)],
    again: Annotated[str, Form(max_length=1000)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The operator's reset link: a new password, then the second factor's enrolment."""
    center: Center = request.app.state.center
    if not _csrf_ok(request, csrf):
        return _login_page(request, None, status=403, failed="login.expired")
    try:
        step = passwords.set_password(center, code, password, again)
    except Refused as refusal:
        return _with_form_csrf(
            request, "login_reset.html", status=refusal.status, code=code, failed=refusal.reason
        )
    return _to_step(request, step)


def _callback_uri(request: Request) -> str:
    center: Center = request.app.state.center
    assert center.sign_in.oidc is not None
    configured = center.sign_in.oidc.redirect_uri
    return configured or str(request.base_url).rstrip("/") + "/ui/login/sso/callback"


@router.get("/login/sso")
def sso_start(request: Request, next: str | None = None) -> Response:
    """Off to the institution's sign-on, with a state this browser keeps."""
    center: Center = request.app.state.center
    if center.sso is None:
        return _login_page(request, next, status=404, failed="login.sso_failed")
    try:
        url, state = center.sso.start(center, _callback_uri(request), _safe_next(next))
    except Refused as refusal:
        return _refused(request, refusal, next)
    except Exception:  # the provider is away: say so, not 500
        return _login_page(request, next, status=502, failed="login.sso_failed")
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        SSO_COOKIE,
        state,
        max_age=_FLOW_AGE_S,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/ui/login/sso",
    )
    return response


@router.get("/login/sso/callback")
def sso_callback(request: Request, state: str = "", code: str = "", error: str = "") -> Response:
    """The provider's answer: its code exchanged (with the PKCE verifier), the ID token
    checked (signature, issuer, audience, expiry, nonce), its person mapped to a user."""
    center: Center = request.app.state.center
    if center.sso is None:
        return _login_page(request, None, status=404, failed="login.sso_failed")
    if error or not code or not state:
        return _login_page(request, None, status=403, failed="login.sso_denied")
    try:
        secret, next_url = center.sso.finish(
            center,
            _callback_uri(request),
            state=state[:200],
            browser_state=request.cookies.get(SSO_COOKIE),
            code=code[:2000],
        )
    except Refused as refusal:
        return _refused(request, refusal)
    shown = page(
        request,
        None,
        "login_continue.html",
        lang=language(request),
        next=_safe_next(next_url),
    )
    return _signed_in(request, secret, shown)


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
