"""Every API route needs a valid bearer token; the check is generated from the route table."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from axcenter.api.app import create_app
from axcenter.service.center import Center
from tests.api.conftest import Tenants


def api_routes(center: Center) -> list[tuple[str, str]]:
    """Every (method, path) of the API, from the OpenAPI document the app generates."""
    paths = create_app(center).openapi()["paths"]
    return [
        (method.upper(), re.sub(r"\{[^}]+\}", "job_x", path))
        for path, operations in paths.items()
        if path.startswith("/api/")
        for method in operations
    ]


@pytest.mark.parametrize("token", [None, "axc_not-a-real-token", "Basic abc"])
def test_every_route_refuses_missing_or_bad_tokens(
    client: TestClient, center: Center, token: str | None
) -> None:
    routes = api_routes(center)
    assert len(routes) >= 8
    center.auth_failures.per_minute = 10 * len(routes)  # this test is not about the limit
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    for method, path in routes:
        r = client.request(method, path, headers=headers)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers.get("www-authenticate") == "Bearer"


def test_revoked_token_is_refused(client: TestClient, center: Center, tenants: Tenants) -> None:
    from sqlalchemy import update

    from axcenter.store import orm
    from axcenter.store.types import utcnow

    assert client.get("/api/v1/whoami", headers=tenants.bob.headers).status_code == 200
    with center.store.write() as s:
        s.execute(update(orm.ApiToken).values(revoked_at=utcnow()))
    assert client.get("/api/v1/whoami", headers=tenants.bob.headers).status_code == 401


def test_whoami(client: TestClient, tenants: Tenants) -> None:
    me = client.get("/api/v1/whoami", headers=tenants.alice.headers).json()
    assert (me["name"], me["organization"], me["role"]) == ("alice", "Acme", "member")


def test_cached_access_follows_changes_at_once(
    client: TestClient, center: Center, tenants: Tenants
) -> None:
    """Authentication and the project a job goes to are cached; a change is seen at once."""
    from axcenter.store import orm

    job = {"project": "acme-vision", "command": ["true"], "gpus_per_node": 0}
    assert client.post("/api/v1/jobs", json=job, headers=tenants.alice.headers).status_code == 201
    r = client.delete(
        "/api/v1/projects/acme-vision/members/alice", headers=tenants.acme_admin.headers
    )
    assert r.status_code == 204
    r = client.post("/api/v1/jobs", json=job, headers=tenants.alice.headers)
    assert r.status_code == 422, r.text  # no longer a member: unknown project to her
    assert client.get("/api/v1/whoami", headers=tenants.alice.headers).status_code == 200
    with center.store.write() as s:  # unit of work, as the service layer writes
        user = s.query(orm.User).filter_by(name="alice").one()
        user.active = False
    assert client.get("/api/v1/whoami", headers=tenants.alice.headers).status_code == 401
