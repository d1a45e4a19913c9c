"""Dashboard sessions: their own short-lived credential, revoked on the server at sign
out; the sign-in form's CSRF value; failed sign-ins rate limited."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy import update

from axcenter.api.app import create_app
from axcenter.service.center import Center
from axcenter.store import orm
from axcenter.store.types import utcnow
from axcenter.web.session import SESSION_COOKIE
from tests.api.conftest import Tenants


def signed_in(center: Center, token: str) -> tuple[TestClient, str]:
    """A browser that signed in through the form; (it, the form CSRF of its pages)."""
    client = TestClient(create_app(center), follow_redirects=False)
    form = client.get("/ui/login").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf
    r = client.post("/ui/login", data={"token": token, "csrf": csrf.group(1)})
    assert r.status_code == 303, r.text
    page = client.get("/ui/jobs").text
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return client, found.group(1)


def test_sign_in_needs_the_forms_csrf_value(center: Center, tenants: Tenants) -> None:
    """Another site's page cannot sign a browser in (login CSRF)."""
    client = TestClient(create_app(center), follow_redirects=False)
    r = client.post("/ui/login", data={"token": tenants.alice.token})
    assert r.status_code == 403
    assert SESSION_COOKIE not in r.cookies
    client.get("/ui/login")  # the cookie is set, but the field must match it
    r = client.post("/ui/login", data={"token": tenants.alice.token, "csrf": "forged"})
    assert r.status_code == 403


def test_the_api_token_is_no_session(center: Center, tenants: Tenants) -> None:
    client = TestClient(create_app(center), follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, tenants.alice.token)
    assert client.get("/ui/jobs").status_code == 303


def test_sign_out_revokes_the_session_on_the_server(center: Center, tenants: Tenants) -> None:
    client, csrf = signed_in(center, tenants.alice.token)
    stolen = client.cookies[SESSION_COOKIE]
    assert client.get("/ui/jobs").status_code == 200
    assert client.post("/ui/logout", data={}).status_code == 403  # needs the CSRF value
    assert client.post("/ui/logout", data={"csrf": csrf}).status_code == 303
    thief = TestClient(create_app(center), follow_redirects=False)
    thief.cookies.set(SESSION_COOKIE, stolen)
    assert thief.get("/ui/jobs").status_code == 303
    # the API token itself is untouched
    assert thief.get("/api/v1/whoami", headers=tenants.alice.headers).status_code == 200


def test_a_session_expires(center: Center, tenants: Tenants) -> None:
    client, _ = signed_in(center, tenants.alice.token)
    assert client.get("/ui/jobs").status_code == 200
    with center.store.write() as s:
        s.execute(update(orm.WebSession).values(expires_at=utcnow()))
    assert client.get("/ui/jobs").status_code == 303


def test_failed_sign_ins_are_rate_limited(center: Center, tenants: Tenants) -> None:
    client = TestClient(create_app(center), follow_redirects=False)
    for n in range(center.auth_failures.per_minute):
        csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
        assert csrf
        r = client.post("/ui/login", data={"token": f"axc_guess{n}", "csrf": csrf.group(1)})
        assert r.status_code == 401
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
    assert csrf
    r = client.post("/ui/login", data={"token": tenants.alice.token, "csrf": csrf.group(1)})
    assert r.status_code == 429
