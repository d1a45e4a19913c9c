"""API tokens expire and rotate: the new token is shown once, the old one stops at once."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update

from axcenter.service.center import Center
from axcenter.store import orm
from axcenter.store.types import utcnow
from tests.api.conftest import Tenants

API = "/api/v1"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_token_with_an_expiry_stops_working_then(
    client: TestClient, center: Center, tenants: Tenants
) -> None:
    op = tenants.operator
    r = client.post(f"{API}/users/bob/tokens", json={"expires_in_days": 30}, headers=op.headers)
    assert r.status_code == 201, r.text
    issued = r.json()
    expires = datetime.fromisoformat(issued["expires_at"])
    assert timedelta(days=29) < expires - utcnow() <= timedelta(days=30)
    assert client.get(f"{API}/whoami", headers=bearer(issued["token"])).status_code == 200
    with center.store.write() as s:
        s.execute(
            update(orm.ApiToken)
            .where(orm.ApiToken.id == issued["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert client.get(f"{API}/whoami", headers=bearer(issued["token"])).status_code == 401
    too_long = client.post(
        f"{API}/users/bob/tokens", json={"expires_in_days": 100_000}, headers=op.headers
    )
    assert too_long.status_code == 422 and "expires_in_days" in too_long.json()["detail"]


def test_rotating_replaces_the_token_and_revokes_the_old_one(
    client: TestClient, tenants: Tenants
) -> None:
    op = tenants.operator
    old = client.post(
        f"{API}/users/bob/tokens", json={"name": "ci", "expires_in_days": 10}, headers=op.headers
    ).json()
    r = client.post(f"{API}/tokens/{old['id']}/rotate", json={}, headers=bearer(old["token"]))
    assert r.status_code == 201, r.text  # bob rotates his own token with it
    new = r.json()
    assert new["name"] == "ci" and new["token"] != old["token"]
    lifetime = datetime.fromisoformat(new["expires_at"]) - datetime.fromisoformat(new["created_at"])
    assert timedelta(days=9, hours=23) < lifetime <= timedelta(days=10, seconds=5)
    assert client.get(f"{API}/whoami", headers=bearer(old["token"])).status_code == 401
    assert client.get(f"{API}/whoami", headers=bearer(new["token"])).json()["name"] == "bob"
    again = client.post(f"{API}/tokens/{old['id']}/rotate", json={}, headers=op.headers)
    assert again.status_code == 409
    # another tenant cannot rotate (nor learn of) bob's token
    other = client.post(f"{API}/tokens/{new['id']}/rotate", json={}, headers=tenants.alice.headers)
    assert other.status_code == 404
    actions = [
        e["action"]
        for e in client.get(f"{API}/audit", params={"action": "token."}, headers=op.headers).json()[
            "items"
        ]
    ]
    assert "token.rotate" in actions
