"""The price book speaks the center's GPU types: one spelling, no type without a node, and
a mistaken price removed before it takes effect."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import Tenants
from tests.api.test_programs import API, iso, ok


def test_gpu_types_are_spelled_as_the_nodes_spell_them(
    client: TestClient, tenants: Tenants
) -> None:
    op = tenants.operator
    body = {"gpu_type": "h100", "won_per_gpu_hour": 4500}
    assert ok(client.post(f"{API}/prices", json=body, headers=op.headers), 201)["gpu_type"] == (
        "H100"
    )
    r = client.post(
        f"{API}/prices", json={"gpu_type": "B200", "won_per_gpu_hour": 9000}, headers=op.headers
    )
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "gpu_type: no node of this center has GPU type 'B200' (it has A100, H100): "
        "price the types the center runs"
    )
    # a job asking for h100 is a job asking for H100, not refused
    job = {"project": tenants.alice.project, "command": ["true"], "gpu_types": ["h100"]}
    submitted = client.post(f"{API}/jobs", json=job, headers=tenants.alice.headers)
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["gpu_types"] == ["H100"]


def test_a_price_is_removed_before_it_takes_effect_never_after(
    client: TestClient, tenants: Tenants
) -> None:
    op = tenants.operator
    now = ok(
        client.post(
            f"{API}/prices", json={"gpu_type": "A100", "won_per_gpu_hour": 2800}, headers=op.headers
        ),
        201,
    )
    typo = ok(
        client.post(
            f"{API}/prices",
            json={"gpu_type": "A100", "won_per_gpu_hour": 30000, "effective_from": iso(30)},
            headers=op.headers,
        ),
        201,
    )
    removed = client.delete(f"{API}/prices/{typo['id']}", headers=op.headers)
    assert removed.status_code == 200, removed.text
    listed = ok(client.get(f"{API}/prices", headers=op.headers))["items"]
    assert [p["id"] for p in listed] == [now["id"]]
    in_force = client.delete(f"{API}/prices/{now['id']}", headers=op.headers)
    assert in_force.status_code == 409
    assert "set a new price from now" in in_force.json()["detail"]
    assert client.delete(f"{API}/prices/prc_nope", headers=op.headers).status_code == 404
    member = client.delete(f"{API}/prices/{now['id']}", headers=tenants.alice.headers)
    assert member.status_code == 403
    actions = [a["action"] for a in ok(client.get(f"{API}/audit", headers=op.headers))["items"]]
    assert "price.remove" in actions
