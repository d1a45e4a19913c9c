"""Hold, release and update a waiting job (Slurm's scontrol hold/release/update)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import Tenants
from tests.api.test_jobs import wait


def _submit(client: TestClient, tenants: Tenants, **fields: Any) -> dict[str, Any]:
    body = {"project": tenants.alice.project, "command": ["true"], "gpus_per_node": 0} | fields
    r = client.post("/api/v1/jobs", json=body, headers=tenants.alice.headers)
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


def test_a_held_job_waits_until_released(client: TestClient, tenants: Tenants) -> None:
    alice = tenants.alice.headers
    held = _submit(client, tenants, held=True, name="later")
    other = _submit(client, tenants)
    assert wait(client, tenants.alice, other["id"])["state"] == "succeeded"  # cycles ran
    shown = client.get(f"/api/v1/jobs/{held['id']}", headers=alice).json()
    assert (shown["state"], shown["reason"], shown["held"]) == ("pending", "held", True)

    changed = client.patch(
        f"/api/v1/jobs/{held['id']}",
        json={"time_limit_s": 120, "priority": 5, "name": "sooner"},
        headers=alice,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["time_limit_s"], changed.json()["priority"]) == (120, 5)
    assert (
        client.post(f"/api/v1/jobs/{held['id']}/hold", headers=tenants.bob.headers).status_code
        == 404
    )

    released = client.post(f"/api/v1/jobs/{held['id']}/release", headers=alice)
    assert released.status_code == 200 and released.json()["held"] is False
    done = wait(client, tenants.alice, held["id"])
    assert (done["state"], done["name"], done["time_limit_s"]) == ("succeeded", "sooner", 120)


def test_only_a_pending_job_is_held_or_rescheduled(client: TestClient, tenants: Tenants) -> None:
    alice = tenants.alice.headers
    job = _submit(client, tenants)
    assert wait(client, tenants.alice, job["id"])["state"] == "succeeded"
    late = client.post(f"/api/v1/jobs/{job['id']}/hold", headers=alice)
    assert late.status_code == 409
    assert late.json()["detail"] == (
        f"job {job['id']} is no longer pending (succeeded): only a pending job can be held"
    )
    assert (
        client.patch(f"/api/v1/jobs/{job['id']}", json={"priority": 1}, headers=alice).status_code
        == 409
    )
    renamed = client.patch(f"/api/v1/jobs/{job['id']}", json={"name": "kept"}, headers=alice)
    assert renamed.status_code == 200 and renamed.json()["name"] == "kept"
    empty = client.patch(f"/api/v1/jobs/{job['id']}", json={}, headers=alice)
    assert empty.status_code == 422 and "nothing to change" in empty.json()["detail"]


def test_an_exclusive_job_takes_whole_nodes(client: TestClient, tenants: Tenants) -> None:
    whole = _submit(client, tenants, exclusive=True, gpu_types=["H100"], gpus_per_node=1)
    assert (whole["gpus_per_node"], whole["nodes"]) == (4, 1)  # the H100 node's all
    cluster = client.get("/api/v1/cluster", headers=tenants.alice.headers).json()
    (h100,) = [n for n in cluster["nodes"] if n["gpu_type"] == "H100"]
    assert (whole["cpus_per_node"], whole["memory_mb_per_node"]) == (
        h100["cpus"],
        h100["memory_mb"],
    )
    body = {"project": tenants.alice.project, "command": ["true"], "exclusive": True}
    mixed = client.post("/api/v1/jobs", json=body, headers=tenants.alice.headers)
    assert mixed.status_code == 422
    assert mixed.json()["detail"].startswith(
        "exclusive: whole nodes of different sizes could be chosen (A100x2, H100x4)"
    )
