"""Quotas as the scheduler applies them: a grant's own quotas are listed, an operator's
replace them, and no quota guarantees GPUs the center does not have."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import Tenants
from tests.api.test_allocations import grant, setup
from tests.api.test_programs import API, ok


def _quotas(client: TestClient, who: object) -> list[tuple[str, str, int, str]]:
    items = ok(client.get(f"{API}/quotas", headers=who.headers))["items"]  # type: ignore[attr-defined]
    return [(q["project"], q["gpu_type"], q["nominal"], q["source"]) for q in items]


def test_grants_give_quotas_and_an_operators_quota_replaces_them(
    client: TestClient, tenants: Tenants
) -> None:
    staff = setup(client, tenants)
    grant(client, tenants, staff, {"A100": 1000})  # over 30 days: 1.4 GPUs, so 2
    assert _quotas(client, tenants.alice) == [("acme-vision", "A100", 2, "grant")]
    assert _quotas(client, tenants.bob) == []  # another tenant's quota stays hidden
    r = client.put(
        f"{API}/quotas/acme-vision/a100", json={"nominal": 1}, headers=tenants.operator.headers
    )
    assert r.status_code == 200, r.text
    assert (r.json()["gpu_type"], r.json()["source"]) == ("A100", "set")
    assert _quotas(client, tenants.alice) == [("acme-vision", "A100", 1, "set")]


def test_a_quota_guarantees_no_more_than_the_center_has(
    client: TestClient, tenants: Tenants
) -> None:
    r = client.put(
        f"{API}/quotas/bolt-llm/H100", json={"nominal": 100}, headers=tenants.operator.headers
    )
    assert r.status_code == 422
    assert r.json()["detail"].startswith(
        "nominal: 100 H100 GPUs guaranteed, but the center has 4: a nominal quota is a guarantee"
    )
