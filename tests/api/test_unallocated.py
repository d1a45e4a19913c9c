"""The demo center (both stores): its first README example runs within its project's
guarantee, and the GPU jobs of its project without an allocation follow the center's
``unallocated_gpu_jobs`` policy, which ``/projects/{project}`` shows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from axcenter.api.app import create_app
from axcenter.service.bootstrap import DEMO_GPUS, ensure_operator, load_demo
from axcenter.service.center import Center
from axcenter.settings import Settings
from tests.api.conftest import Account
from tests.api.test_jobs import submit, wait

API = "/api/v1"


@pytest.fixture(params=["free", "refuse"])
def demo(
    request: pytest.FixtureRequest, db: tuple[str, str | None], tmp_path: Path
) -> Iterator[tuple[TestClient, dict[str, Account], str]]:
    url, schema = db
    settings = Settings(
        stop_jobs_on_shutdown=True,
        data_dir=tmp_path / "data",
        database_url=url,
        database_schema=schema,
        local_gpus=DEMO_GPUS,
        kill_grace_s=2.0,
        unallocated_gpu_jobs=request.param,
    )
    center = Center(settings)
    center.start()
    try:
        ensure_operator(center.store)
        accounts = {
            c.user: Account(c.user, c.token, None) for c in load_demo(center.store) if c.token
        }
        center.control.policy_changed()  # as `axc up --demo` does
        with TestClient(create_app(center)) as client:
            yield client, accounts, request.param
    finally:
        center.stop()


def test_the_readme_first_example_runs_within_its_projects_guarantee(
    demo: tuple[TestClient, dict[str, Account], str],
) -> None:
    client, accounts, _ = demo
    hanbit = accounts["hanbit-engineer"]
    # axc submit --project hanbit-adas --gpus 2 --gpu-type H100 --time 2h -- ...
    job = submit(
        client,
        hanbit,
        project="hanbit-adas",
        gpus_per_node=2,
        gpu_types=["H100"],
        time_limit_s=2 * 3600,
        command=["sh", "-c", "echo $CUDA_VISIBLE_DEVICES"],
    )
    done = wait(client, hanbit, job["id"])
    assert (done["state"], done["gpu_type"], done["borrowed"]) == ("succeeded", "H100", False)
    shown = client.get(f"{API}/projects/hanbit-adas", headers=hanbit.headers).json()
    assert shown["allocated"] is True


def test_a_project_without_an_allocation_follows_the_centers_policy(
    demo: tuple[TestClient, dict[str, Account], str],
) -> None:
    client, accounts, policy = demo
    jinro = accounts["jinro-engineer"]
    shown = client.get(f"{API}/projects/jinro-pilot", headers=jinro.headers).json()
    assert (shown["allocated"], shown["unallocated_gpu_jobs"]) == (False, policy)

    body: dict[str, Any] = {"project": "jinro-pilot", "command": ["true"], "gpus_per_node": 1}
    r = client.post(f"{API}/jobs", json=body, headers=jinro.headers)
    if policy == "refuse":
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == (
            "project: jinro-pilot has no active allocation, and this center runs no GPU job "
            "without one (its policy: unallocated_gpu_jobs=refuse): ask for GPU-hours with "
            "`axc alloc request`, or submit with --gpus 0"
        )
    else:  # runs free of charge, as a preemptible borrower (the project has no quota)
        assert r.status_code == 201, r.text
        done = wait(client, jinro, r.json()["id"])
        assert (done["state"], done["borrowed"]) == ("succeeded", True)
        charges = client.get(f"{API}/jobs/{done['id']}/charges", headers=jinro.headers)
        assert charges.status_code == 200 and charges.json()["charged_won"] == 0, charges.text
    # a CPU-only job runs whatever the policy
    cpu = submit(client, jinro, project="jinro-pilot", command=["true"], gpus_per_node=0)
    assert wait(client, jinro, cpu["id"])["state"] == "succeeded"
