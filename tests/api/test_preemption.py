"""Live reclaim: a project inside its guaranteed quota preempts a borrower, end to end."""

from __future__ import annotations

import secrets
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from axcenter.service.center import Center
from axcenter.store import orm
from tests.api.conftest import Tenants
from tests.api.test_jobs import submit, wait
from tests.conftest import home_of


def set_quota(center: Center, project: str, gpu_type: str, nominal: int) -> None:
    with center.store.write() as s:
        project_id = s.scalars(select(orm.Project.id).where(orm.Project.name == project)).one()
        s.merge(
            orm.ProjectQuota(
                project_id=project_id,
                gpu_type=gpu_type,
                nominal=nominal,
                borrowing_limit=None,
                lending_limit=None,
            )
        )
    center.control.policy_changed()


def until(client: TestClient, who: object, job_id: str, state: str) -> dict[str, object]:
    for _ in range(400):
        job = wait(client, who, job_id, timeout=0.05)  # type: ignore[arg-type]
        if job["state"] == state:
            return job
    raise AssertionError(f"{job_id} never reached {state}: {job}")


def test_guaranteed_quota_is_reclaimed_from_a_borrower(
    client: TestClient, tenants: Tenants, center: Center, tmp_path: Path
) -> None:
    set_quota(center, "acme-vision", "H100", 4)  # alice's project owns the H100s
    marker = f"term-{secrets.token_hex(4)}.txt"  # in bob's home: his job's directory
    # bob has no quota: his job borrows all four idle H100s, and checkpoints on SIGTERM
    borrower = submit(
        client,
        tenants.bob,
        gpus_per_node=4,
        gpu_types=["H100"],
        command=["sh", "-c", f"trap 'echo checkpoint >> {marker}; exit 0' TERM; sleep 60 & wait"],
    )
    until(client, tenants.bob, borrower["id"], "running")
    with center.store.read() as s:
        assert s.get(orm.Job, borrower["id"]).borrowed  # type: ignore[union-attr]

    owner = submit(
        client,
        tenants.alice,
        gpus_per_node=4,
        gpu_types=["H100"],
        command=["sh", "-c", "echo mine"],
    )
    done = wait(client, tenants.alice, owner["id"])
    assert done["state"] == "succeeded"
    # the borrower got SIGTERM first
    assert (home_of("bob") / marker).read_text().strip() == "checkpoint"

    requeued = client.get(f"/api/v1/jobs/{borrower['id']}", headers=tenants.bob.headers).json()
    states = [e["to_state"] for e in requeued["events"]]
    assert states[:5] == ["pending", "admitted", "running", "preempted", "pending"]
    preempted = requeued["events"][3]
    assert owner["id"] in preempted["reason"]
    # with the owner done, the borrower runs again
    until(client, tenants.bob, borrower["id"], "running")
    client.post(f"/api/v1/jobs/{borrower['id']}/cancel", headers=tenants.bob.headers)
