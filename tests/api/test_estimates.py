"""Every pending job a caller may see has an estimated start: the scheduler run forward
over the live queue (``control/estimates.py``), refreshed when the queue changes, in the
job's view and the queue's, and nothing of another company's jobs in either."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from axcenter.service.center import Center
from tests.api.conftest import Tenants
from tests.api.test_jobs import submit

LIMIT_S = 600


def at(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def running_now(client: TestClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
        if job["state"] == "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"{job_id} did not start")


def test_every_pending_job_has_an_estimate_in_queue_order(
    center: Center, client: TestClient, tenants: Tenants
) -> None:
    alice, bob = tenants.alice, tenants.bob
    four = {"gpus_per_node": 4, "gpu_types": ["H100"], "time_limit_s": LIMIT_S}
    first = submit(client, alice, command=["sleep", "60"], **four)
    started = at(running_now(client, alice.headers, first["id"])["started_at"])
    refreshes = center.estimates.refreshes
    waiting = [submit(client, alice, command=["true"], **four)["id"] for _ in range(2)]
    theirs = submit(client, bob, command=["true"], **four)["id"]
    # refreshed once the queue settled; wait until the forecast covers all three
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(
        center.estimates.start_of(j) for j in [*waiting, theirs]
    ):
        center.estimates.wait_refresh(refreshes, 1.0)
        refreshes = center.estimates.refreshes
    estimates = [
        at(client.get(f"/api/v1/jobs/{j}", headers=alice.headers).json()["estimated_start"])
        for j in waiting
    ]
    # each waits for the H100s of the job ahead of it, ending at its time limit
    assert started + LIMIT_S <= estimates[0] <= started + LIMIT_S + 60
    assert estimates[0] + LIMIT_S <= estimates[1] <= estimates[0] + LIMIT_S + 60
    queue = client.get("/api/v1/queue", headers=alice.headers).json()
    assert [i["id"] for i in queue["items"]] == waiting
    assert [at(i["estimated_start"]) for i in queue["items"]] == estimates
    assert queue["queue_length"] == 3
    # bob sees his own job, third in the whole queue, with its estimate, and none of alice's
    theirs_queue = client.get("/api/v1/queue", headers=bob.headers).json()
    assert [(i["id"], i["position"]) for i in theirs_queue["items"]] == [(theirs, 3)]
    assert at(theirs_queue["items"][0]["estimated_start"]) >= estimates[1] + LIMIT_S
    for job_id in waiting:
        assert client.get(f"/api/v1/jobs/{job_id}", headers=bob.headers).status_code == 404
