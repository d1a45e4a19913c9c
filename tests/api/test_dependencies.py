"""Jobs that wait for other jobs (--dependency): afterok, afternotok, afterany, singleton,
and the refusals of a dependency that cannot be."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.api.conftest import Tenants
from tests.api.test_jobs import wait


def _submit(client: TestClient, tenants: Tenants, command: list[str], **fields: Any) -> str:
    body = {"project": tenants.alice.project, "command": command, "gpus_per_node": 0} | fields
    r = client.post("/api/v1/jobs", json=body, headers=tenants.alice.headers)
    assert r.status_code == 201, r.text
    job_id: str = r.json()["id"]
    return job_id


def test_after_ok_notok_any(client: TestClient, tenants: Tenants) -> None:
    first = _submit(client, tenants, ["sleep", "0.5"])
    ok = _submit(client, tenants, ["true"], dependency=f"afterok:{first}")
    notok = _submit(client, tenants, ["true"], dependency=f"afternotok:{first}")
    anyway = _submit(client, tenants, ["true"], dependency=f"afterany:{first}")
    shown = client.get(f"/api/v1/jobs/{ok}", headers=tenants.alice.headers).json()
    if shown["state"] == "pending" and shown["reason"]:
        assert shown["reason"] in ("dependency", "priority")
    assert wait(client, tenants.alice, first)["state"] == "succeeded"
    done = {j: wait(client, tenants.alice, j) for j in (ok, notok, anyway)}
    assert done[ok]["state"] == done[anyway]["state"] == "succeeded"
    assert done[ok]["started_at"] >= wait(client, tenants.alice, first)["ended_at"]
    assert done[notok]["state"] == "cancelled"
    assert done[notok]["reason"] == f"dependency never satisfied: {first} succeeded (afternotok)"


def test_a_failed_job_cancels_what_waits_for_its_success(
    client: TestClient, tenants: Tenants
) -> None:
    failing = _submit(client, tenants, ["false"])
    waiting = _submit(client, tenants, ["true"], dependency=f"afterok:{failing}")
    end = wait(client, tenants.alice, waiting)
    assert (end["state"], end["reason"]) == (
        "cancelled",
        f"dependency never satisfied: {failing} failed (afterok)",
    )


def test_singleton_runs_one_at_a_time(client: TestClient, tenants: Tenants) -> None:
    first = _submit(client, tenants, ["sleep", "0.5"], name="single", dependency="singleton")
    second = _submit(client, tenants, ["true"], name="single", dependency="singleton")
    a, b = wait(client, tenants.alice, first), wait(client, tenants.alice, second)
    assert a["state"] == b["state"] == "succeeded"
    assert b["started_at"] >= a["ended_at"]


def test_a_dependency_names_a_job_that_is(client: TestClient, tenants: Tenants) -> None:
    headers = tenants.alice.headers
    body = {"project": tenants.alice.project, "command": ["true"], "gpus_per_node": 0}
    unknown = client.post(
        "/api/v1/jobs", json=body | {"dependency": "afterok:job_nope"}, headers=headers
    )
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == "dependency: no job 'job_nope' to depend on"
    bad = client.post("/api/v1/jobs", json=body | {"dependency": "after:5"}, headers=headers)
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("dependency: dependency 'after:5': cannot read")
    theirs = client.post(
        "/api/v1/jobs",
        json={"project": tenants.bob.project, "command": ["sleep", "5"], "gpus_per_node": 0},
        headers=tenants.bob.headers,
    ).json()["id"]
    other = client.post(
        "/api/v1/jobs", json=body | {"dependency": f"afterany:{theirs}"}, headers=headers
    )
    assert other.status_code == 422  # another tenant's job is not there for alice


def test_an_array_throttle_keeps_at_most_n_tasks_running(
    client: TestClient, tenants: Tenants
) -> None:
    body = {"project": tenants.alice.project, "command": ["sleep", "0.3"], "gpus_per_node": 0}
    r = client.post(
        "/api/v1/arrays", json=body | {"indices": "0-5%2"}, headers=tenants.alice.headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["throttle"] == 2
    array = r.json()["array_id"]
    ids = client.get(
        f"/api/v1/arrays/{array}", params={"ids": True}, headers=tenants.alice.headers
    ).json()["job_ids"]
    runs = [wait(client, tenants.alice, job_id) for job_id in ids]
    assert all(run["state"] == "succeeded" for run in runs)
    for run in runs:  # when any task started, at most one other ran
        overlapping = [
            o for o in runs if o["started_at"] <= run["started_at"] < o["ended_at"] and o != run
        ]
        assert len(overlapping) <= 1, (run, overlapping)
