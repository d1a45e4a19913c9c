"""Requeue (Slurm's ``scontrol requeue``): a job that ran or ended goes back to pending
with its id, its events and its log, and runs again as its next attempt."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import Account, Tenants
from tests.api.test_jobs import submit, wait


def _until(
    client: TestClient, who: Account, job_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The job once ``done`` holds, read between short long-polls (no sleeps)."""
    job = wait(client, who, job_id, timeout=0)
    for _ in range(400):
        if done(job):
            return job
        job = wait(client, who, job_id, timeout=0.05)
    raise AssertionError(f"job {job_id} never got there: {job}")


def _transitions(job: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["from_state"], e["to_state"]) for e in job["events"]]


def test_an_ended_job_runs_again_with_its_id_and_history(
    client: TestClient, tenants: Tenants
) -> None:
    alice = tenants.alice
    job = submit(client, alice, command=["sh", "-c", "echo ran; exit 3"], gpus_per_node=0)
    first = wait(client, alice, job["id"])
    assert (first["state"], first["exit_code"], first["attempts"]) == ("failed", 3, 1)

    assert (
        client.post(f"/api/v1/jobs/{job['id']}/requeue", headers=tenants.bob.headers).status_code
        == 404
    )
    r = client.post(f"/api/v1/jobs/{job['id']}/requeue", headers=alice.headers)
    assert r.status_code == 200, r.text
    back = r.json()
    assert back["id"] == job["id"]
    # pending again, or already on its way: the run's end is gone from the row
    assert back["state"] in ("pending", "admitted", "running"), back
    assert back["ended_at"] is None and back["exit_code"] is None

    again = wait(client, alice, job["id"])
    assert (again["state"], again["exit_code"], again["attempts"]) == ("failed", 3, 2)
    chain = _transitions(client.get(f"/api/v1/jobs/{job['id']}", headers=alice.headers).json())
    assert chain == [
        (None, "pending"),
        ("pending", "admitted"),
        ("admitted", "running"),
        ("running", "failed"),
        ("failed", "pending"),
        ("pending", "admitted"),
        ("admitted", "running"),
        ("running", "failed"),
    ]
    requeued = [e for e in again["events"] if e["from_state"] == "failed"]
    assert requeued[0]["reason"] == "requeued by alice"
    log = client.get(f"/api/v1/jobs/{job['id']}/log", headers=alice.headers)
    # the second run's output follows the first's
    assert log.content == f"ran\n\n[axcenter] run 2 of job {job['id']}\nran\n".encode()


def test_a_pending_job_is_not_requeued_and_an_admin_may_requeue(
    client: TestClient, tenants: Tenants
) -> None:
    alice = tenants.alice
    waiting = submit(client, alice, command=["true"], gpus_per_node=0, held=True)
    r = client.post(f"/api/v1/jobs/{waiting['id']}/requeue", headers=alice.headers)
    assert r.status_code == 409
    assert r.json()["detail"].startswith(f"job {waiting['id']} is pending already")

    done = submit(client, alice, command=["true"], gpus_per_node=0)
    assert wait(client, alice, done["id"])["state"] == "succeeded"
    # the organization's admin may requeue a member's job, held this time
    r = client.post(
        f"/api/v1/jobs/{done['id']}/requeue",
        params={"hold": "true"},
        headers=tenants.acme_admin.headers,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["held"]) == ("pending", True)
    shown = _until(client, alice, done["id"], lambda j: j["reason"] == "held")
    assert (shown["state"], shown["attempts"]) == ("pending", 1)
    released = client.post(f"/api/v1/jobs/{done['id']}/release", headers=alice.headers)
    assert released.status_code == 200, released.text
    assert wait(client, alice, done["id"])["attempts"] == 2


def test_a_running_job_is_stopped_and_requeued(client: TestClient, tenants: Tenants) -> None:
    alice = tenants.alice
    job = submit(client, alice, command=["sleep", "60"], gpus_per_node=1, gpu_types=["H100"])
    _until(client, alice, job["id"], lambda j: j["state"] == "running")

    r = client.post(
        f"/api/v1/jobs/{job['id']}/requeue", params={"hold": "true"}, headers=alice.headers
    )
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["reason"]) == ("running", "requeue requested by alice")

    back = _until(client, alice, job["id"], lambda j: j["state"] == "pending")
    assert (back["held"], back["placement"], back["attempts"]) == (True, [], 1)
    assert _transitions(back)[-2:] == [("running", "preempted"), ("preempted", "pending")]
    assert back["events"][-1]["reason"] == "requeued by alice"
    cluster = client.get("/api/v1/cluster", headers=alice.headers).json()
    assert not any(d["busy"] for n in cluster["nodes"] for d in n["devices"])
    again = client.post(f"/api/v1/jobs/{job['id']}/requeue", headers=alice.headers)
    assert again.status_code == 409
    assert client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=alice.headers).json()[
        "state"
    ] == ("cancelled")
