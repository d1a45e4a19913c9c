"""A running job reports checkpoints (issue 23): stored, seen by the scheduler's cache."""

from __future__ import annotations

from fastapi.testclient import TestClient

from axcenter.control.convert import epoch
from axcenter.service.center import Center
from axcenter.store import orm
from tests.api.conftest import Tenants
from tests.api.test_jobs import submit
from tests.api.test_preemption import until


def test_a_running_job_reports_a_checkpoint(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    alice, bob = tenants.alice, tenants.bob
    job = submit(client, alice, command=["sleep", "60"], gpus_per_node=1)
    path = f"/api/v1/jobs/{job['id']}/checkpoint"
    until(client, alice, job["id"], "running")
    assert job["last_checkpoint_at"] is None

    r = client.post(path, headers=alice.headers)
    assert r.status_code == 200, r.text
    reported = r.json()["last_checkpoint_at"]
    assert reported is not None
    with center.store.read() as s:
        row = s.get(orm.Job, job["id"])
        assert row is not None and row.last_checkpoint_at is not None
        at = epoch(row.last_checkpoint_at)
    # the next cycle (here: the one admitting another job) gives it to the scheduler
    other = submit(client, alice, command=["sleep", "60"], gpus_per_node=1)
    until(client, alice, other["id"], "running")
    assert center.control.state.running[job["id"]].last_checkpoint_at == at

    # not someone else's job; not a job that is not running
    assert client.post(path, headers=bob.headers).status_code == 404
    for j in (job, other):
        client.post(f"/api/v1/jobs/{j['id']}/cancel", headers=alice.headers)
    ended = client.post(path, headers=alice.headers)
    assert ended.status_code == 409
    assert "only a running job checkpoints" in ended.json()["detail"]
