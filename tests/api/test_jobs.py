"""Jobs through the real API: submit, run on the local executor, wait, cancel, logs."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from axcenter.service.center import Center
from axcenter.store import orm
from tests.api.conftest import Account, Tenants


def submit(client: TestClient, who: Account, **body: Any) -> dict[str, Any]:
    body.setdefault("project", who.project)
    r = client.post("/api/v1/jobs", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    job: dict[str, Any] = r.json()
    return job


def wait(client: TestClient, who: Account, job_id: str, timeout: float = 30) -> dict[str, Any]:
    r = client.get(f"/api/v1/jobs/{job_id}/wait", params={"timeout": timeout}, headers=who.headers)
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


def job_count(center: Center) -> int:
    with center.store.read() as s:
        return s.scalar(select(func.count()).select_from(orm.Job)) or 0


def test_job_runs_on_its_devices_and_succeeds(client: TestClient, tenants: Tenants) -> None:
    alice = tenants.alice
    job = submit(
        client,
        alice,
        command=["sh", "-c", "echo devices=$CUDA_VISIBLE_DEVICES id=$AXC_JOB_ID gpus=$AXC_GPUS"],
        gpus_per_node=2,
        gpu_types=["H100"],
    )
    assert job["state"] == "pending"
    done = wait(client, alice, job["id"])
    assert done["state"] == "succeeded", done
    assert done["exit_code"] == 0
    assert done["gpu_type"] == "H100"
    [placement] = done["placement"]
    devices = placement["devices"]
    assert len(devices) == 2
    log = client.get(f"/api/v1/jobs/{job['id']}/log", headers=alice.headers)
    assert log.status_code == 200
    text = log.text
    assert f"devices={','.join(map(str, devices))}" in text
    assert f"id={job['id']}" in text
    assert log.headers["X-Job-State"] == "succeeded"
    assert int(log.headers["X-Log-Offset"]) == len(log.content)
    rest = client.get(f"/api/v1/jobs/{job['id']}/log", params={"offset": 4}, headers=alice.headers)
    assert rest.content == log.content[4:]
    states = [e["to_state"] for e in done["events"]]
    assert states == ["pending", "admitted", "running", "succeeded"]
    assert done["events"][-1]["to_state"] == done["state"]


def test_discarded_output_runs_without_a_log_file(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    """``output=discard`` (Slurm's ``--output=/dev/null``): the job runs with its output
    going nowhere, no log file is created, and asking for its log says why there is none;
    a resubmission discards too."""
    alice = tenants.alice
    quiet = submit(client, alice, command=["sh", "-c", "echo x; echo y >&2"], output="discard")
    loud = submit(client, alice, command=["echo", "kept"])
    assert quiet["output"] == "discard" and loud["output"] == "log"
    assert wait(client, alice, quiet["id"])["state"] == "succeeded"
    assert wait(client, alice, loud["id"])["state"] == "succeeded"
    logs = center.settings.logs_dir
    assert (logs / f"{loud['id']}.log").read_text() == "kept\n"
    assert not (logs / f"{quiet['id']}.log").exists()
    r = client.get(f"/api/v1/jobs/{quiet['id']}/log", headers=alice.headers)
    assert r.status_code == 409, r.text
    assert "output=discard" in r.json()["detail"]
    assert client.get(f"/api/v1/jobs/{quiet['id']}", headers=alice.headers).json()["output"] == (
        "discard"
    )
    again = client.post(f"/api/v1/jobs/{quiet['id']}/resubmit", headers=alice.headers)
    assert again.status_code == 201, again.text
    assert again.json()["output"] == "discard"


def test_failed_and_timed_out_jobs(client: TestClient, tenants: Tenants) -> None:
    alice = tenants.alice
    failing = submit(client, alice, command=["sh", "-c", "exit 3"], gpus_per_node=0)
    slow = submit(client, alice, command=["sleep", "30"], gpus_per_node=1, time_limit_s=1)
    failed = wait(client, alice, failing["id"])
    assert (failed["state"], failed["exit_code"]) == ("failed", 3)
    timed_out = wait(client, alice, slow["id"])
    assert timed_out["state"] == "timed_out"
    assert "time limit" in timed_out["reason"]


def test_launch_failure_is_a_failed_job_with_the_cause(
    client: TestClient, tenants: Tenants
) -> None:
    job = submit(client, tenants.alice, command=["/no/such/program"], gpus_per_node=0)
    done = wait(client, tenants.alice, job["id"])
    assert done["state"] == "failed"
    assert "/no/such/program" in done["reason"]


def test_jobs_admitted_together_launch_side_by_side(client: TestClient, tenants: Tenants) -> None:
    """One cycle admits the batch; its launches run in parallel, and the one that cannot
    start fails alone, with its cause."""
    ok = {"project": "acme-vision", "command": ["true"], "gpus_per_node": 0}
    bad = {**ok, "command": ["/no/such/program"]}
    r = client.post(
        "/api/v1/jobs:batch", json={"jobs": [ok, ok, bad, ok]}, headers=tenants.alice.headers
    )
    assert r.status_code == 201, r.text
    done = [wait(client, tenants.alice, j["id"]) for j in r.json()["items"]]
    assert [j["state"] for j in done] == ["succeeded", "succeeded", "failed", "succeeded"]
    assert "/no/such/program" in done[2]["reason"]
    assert all(j["attempts"] == 1 for j in done if j["state"] == "succeeded")


def test_cancel_running_job(client: TestClient, tenants: Tenants, center: Center) -> None:
    alice = tenants.alice
    job = submit(client, alice, command=["sleep", "60"], gpus_per_node=1)
    # the job is running once its start event is recorded
    running = wait(client, alice, job["id"], timeout=0)
    for _ in range(200):
        if running["state"] == "running":
            break
        running = wait(client, alice, job["id"], timeout=0.05)
    assert running["state"] == "running"
    r = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=alice.headers)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "cancelled"
    again = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=alice.headers)
    assert again.status_code == 409
    assert "already ended" in again.json()["detail"]


def test_a_job_that_cannot_start_waits_for_the_next_event_without_a_cycle(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    """Every GPU is held: a submission that can neither start nor reclaim (the latest
    cycle's start hint says so) joins the next cycle without waking the loop. Its reason
    is known at once, and the exit of a holder starts it."""
    alice = tenants.alice
    center.control.safety_cycle_s = 3600.0  # from the next wait on: no timer cycle here
    hogs = [
        submit(client, alice, command=["sleep", "60"], gpus_per_node=n, gpu_types=[t])
        for n, t in ((2, "A100"), (4, "H100"))
    ]
    for hog in hogs:
        for _ in range(200):
            if wait(client, alice, hog["id"], timeout=0.05)["state"] == "running":
                break
    for _ in range(200):  # the cycle that started the last one publishes its hint
        hint = center.control.start_hint
        if hint is not None and hint.free_gpus == 0:
            break
        wait(client, alice, hogs[0]["id"], timeout=0.05)
    assert hint is not None and hint.free_gpus == 0 and not hint.may_reclaim

    cycles = center.control.cycles
    waiting = submit(client, alice, command=["true"], gpus_per_node=2, gpu_types=["A100"])
    shown = client.get(f"/api/v1/jobs/{waiting['id']}", headers=alice.headers).json()
    assert (shown["state"], shown["reason"]) == ("pending", "resources")
    assert center.control.state.reason(waiting["id"]) is None  # no cycle has taken it
    assert center.control.cycles == cycles
    client.post(f"/api/v1/jobs/{hogs[0]['id']}/cancel", headers=alice.headers)
    assert wait(client, alice, waiting["id"])["state"] == "succeeded"
    client.post(f"/api/v1/jobs/{hogs[1]['id']}/cancel", headers=alice.headers)


def test_waiting_job_has_a_reason_and_can_be_cancelled(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    alice = tenants.alice
    hog = submit(client, alice, command=["sleep", "60"], gpus_per_node=4, gpu_types=["H100"])
    waiting = submit(client, alice, command=["true"], gpus_per_node=4, gpu_types=["H100"])
    shown = client.get(f"/api/v1/jobs/{waiting['id']}", headers=alice.headers).json()
    for _ in range(200):
        if shown["reason"] is not None:
            break
        shown = wait(client, alice, waiting["id"], timeout=0.05)
    assert shown["state"] == "pending"
    assert shown["reason"] == "resources"
    r = client.post(f"/api/v1/jobs/{waiting['id']}/cancel", headers=alice.headers)
    assert r.json()["state"] == "cancelled"
    client.post(f"/api/v1/jobs/{hog['id']}/cancel", headers=alice.headers)
    assert wait(client, alice, hog["id"])["state"] == "cancelled"
    # the cancelled waiter never ran
    assert wait(client, alice, waiting["id"])["started_at"] is None


def test_idempotent_submission(client: TestClient, tenants: Tenants, center: Center) -> None:
    alice = tenants.alice
    body = {"project": alice.project, "command": ["true"], "idempotency_key": "k-1"}
    first = client.post("/api/v1/jobs", json=body, headers=alice.headers)
    second = client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert job_count(center) == 1
    # another user may use the same key
    bob = tenants.bob
    other = client.post("/api/v1/jobs", json={**body, "project": bob.project}, headers=bob.headers)
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]


def test_a_cached_submission_is_written_alone_and_a_reused_key_still_replays(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    """Once the project is cached, a submission is prepared without reading and written
    alone (on PostgreSQL one statement from the event loop, no group-commit transaction).
    A key used before then fails that write on the unique key and is replayed, leaving
    neither a second job nor a stray event."""
    alice = tenants.alice
    submit(client, alice, command=["true"])  # makes alice's unix identity
    submit(client, alice, command=["true"])  # reads the project: now cached
    commits, inserted = center.writes.committed, _statement_inserts(center)
    body = {"project": alice.project, "command": ["true"], "idempotency_key": "k-2"}
    first = client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert first.status_code == 201, first.text
    if center.writes.job_inserts is not None:  # PostgreSQL
        assert (center.writes.committed, _statement_inserts(center)) == (commits, inserted + 1)
    again = client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    r = client.post("/api/v1/jobs:batch", json={"jobs": [body, body]}, headers=alice.headers)
    assert r.status_code == 201 and {j["id"] for j in r.json()["items"]} == {first.json()["id"]}
    with center.store.read() as s:
        events = s.scalar(
            select(func.count()).select_from(orm.JobEvent).where(orm.JobEvent.reason == "submitted")
        )
    assert job_count(center) == events == 3  # two to warm the caches, one with the key


def _statement_inserts(center: Center) -> int:
    return center.writes.job_inserts.written if center.writes.job_inserts is not None else 0


def test_batch_is_all_or_nothing(client: TestClient, tenants: Tenants, center: Center) -> None:
    alice = tenants.alice
    good = {"project": alice.project, "command": ["true"], "gpus_per_node": 0}
    bad = {**good, "gpu_types": ["TPU"], "gpus_per_node": 1}
    r = client.post("/api/v1/jobs:batch", json={"jobs": [good, bad]}, headers=alice.headers)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("jobs[1].gpu_types:")
    assert job_count(center) == 0
    r = client.post("/api/v1/jobs:batch", json={"jobs": [good] * 3}, headers=alice.headers)
    assert r.status_code == 201
    ids = [j["id"] for j in r.json()["items"]]
    assert len(set(ids)) == 3
    for job_id in ids:
        assert wait(client, alice, job_id)["state"] == "succeeded"


BAD_INPUTS = [
    pytest.param({"gpus_per_node": -1}, "gpus_per_node", id="negative GPUs"),
    pytest.param({"gpus_per_node": 5}, "gpus_per_node", id="more GPUs than any node has"),
    pytest.param(
        {"gpus_per_node": 3, "gpu_types": ["A100"]}, "gpus_per_node", id="more GPUs than the type"
    ),
    pytest.param({"gpus_per_node": 4, "nodes": 2}, "nodes", id="gang larger than the center"),
    pytest.param({"project": "no-such-project"}, "project", id="unknown project"),
    pytest.param({"project": "bolt-llm"}, "project", id="another tenant's project"),
    pytest.param({"gpu_types": ["TPUv9"]}, "gpu_types", id="unknown GPU type"),
    pytest.param({"gpu_types": ["bad type!"]}, "gpu_types", id="malformed GPU type"),
    pytest.param({"command": []}, "command", id="empty command"),
    pytest.param({"command": [""]}, "command", id="empty program"),
    pytest.param({"command": ["x" * 5000]}, "command", id="oversized argument"),
    pytest.param({"name": "n" * 201}, "name", id="oversized name"),
    pytest.param({"env": {"AXC_JOB_ID": "x"}}, "env", id="reserved environment"),
    pytest.param({"env": {"1BAD": "x"}}, "env", id="bad environment name"),
    pytest.param({"workdir": "relative/dir"}, "workdir", id="relative workdir"),
    pytest.param({"time_limit_s": 0}, "time_limit_s", id="zero time limit"),
    pytest.param({"time_limit_s": 10**9}, "time_limit_s", id="time limit above maximum"),
    pytest.param({"cpus_per_node": 10**4}, "cpus_per_node", id="too many CPUs"),
    pytest.param({"memory_mb_per_node": 10**8}, "memory_mb_per_node", id="too much memory"),
    pytest.param({"priority": 5000}, "priority", id="priority out of range"),
    pytest.param({"output": "/dev/null"}, "output", id="unknown output"),
    pytest.param({"surprise": 1}, "surprise", id="unknown field"),
]


@pytest.mark.parametrize(("change", "field"), BAD_INPUTS)
def test_bad_input_names_the_field_and_writes_nothing(
    client: TestClient, tenants: Tenants, center: Center, change: dict[str, Any], field: str
) -> None:
    body = {"project": tenants.alice.project, "command": ["true"], **change}
    r = client.post("/api/v1/jobs", json=body, headers=tenants.alice.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(field), r.json()
    assert job_count(center) == 0


def test_tenants_do_not_see_each_other(client: TestClient, tenants: Tenants) -> None:
    alice, bob = tenants.alice, tenants.bob
    job = submit(client, alice, command=["true"], gpus_per_node=0)
    for method, path in (
        ("GET", f"/api/v1/jobs/{job['id']}"),
        ("GET", f"/api/v1/jobs/{job['id']}/log"),
        ("GET", f"/api/v1/jobs/{job['id']}/wait?timeout=0"),
        ("POST", f"/api/v1/jobs/{job['id']}/cancel"),
    ):
        r = client.request(method, path, headers=bob.headers)
        assert r.status_code == 404, (method, path, r.text)
    missing = client.get("/api/v1/jobs/job_doesnotexist", headers=bob.headers)
    assert missing.json() == {"detail": "no job 'job_doesnotexist'"}
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=bob.headers).json() == {
        "detail": f"no job '{job['id']}'"
    }
    bobs = client.get("/api/v1/jobs", headers=bob.headers).json()["items"]
    assert bobs == []
    assert [
        p["name"] for p in client.get("/api/v1/projects", headers=bob.headers).json()["items"]
    ] == ["bolt-llm"]
    # the organization admin and the operator see it
    for who in (tenants.acme_admin, tenants.operator):
        r = client.get(f"/api/v1/jobs/{job['id']}", headers=who.headers)
        assert r.status_code == 200


def test_org_admin_may_cancel_members_job_but_member_of_other_org_may_not(
    client: TestClient, tenants: Tenants
) -> None:
    job = submit(client, tenants.alice, command=["sleep", "60"], gpus_per_node=0)
    r = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=tenants.acme_admin.headers)
    assert r.status_code == 200
    assert r.json()["state"] == "cancelled"


def test_list_pagination_and_filters(client: TestClient, tenants: Tenants) -> None:
    alice = tenants.alice
    ids = [submit(client, alice, command=["true"], gpus_per_node=0)["id"] for _ in range(5)]
    for job_id in ids:
        wait(client, alice, job_id)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/api/v1/jobs", params=params, headers=alice.headers).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    succeeded = client.get(
        "/api/v1/jobs", params={"state": "succeeded"}, headers=alice.headers
    ).json()["items"]
    assert len(succeeded) == 5
    bad = client.get("/api/v1/jobs", params={"state": "exploded"}, headers=alice.headers)
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("state:")


def test_cluster_shows_holders_only_to_those_who_may_see_them(
    client: TestClient, tenants: Tenants
) -> None:
    alice = tenants.alice
    job = submit(client, alice, command=["sleep", "60"], gpus_per_node=2, gpu_types=["A100"])
    for _ in range(200):
        if wait(client, alice, job["id"], timeout=0.05)["state"] == "running":
            break
    view = client.get("/api/v1/cluster", headers=alice.headers).json()
    assert view["summary"]["gpus"] == 6
    assert view["summary"]["gpus_used"] == 2
    held = [d for n in view["nodes"] for d in n["devices"] if d["busy"]]
    assert {d["job_id"] for d in held} == {job["id"]}
    assert all(n["logical"] for n in view["nodes"])
    bob_view = client.get("/api/v1/cluster", headers=tenants.bob.headers).json()
    hidden = [d for n in bob_view["nodes"] for d in n["devices"] if d["busy"]]
    assert len(hidden) == 2
    assert all(d["job_id"] is None and d["user"] == "(other tenant)" for d in hidden)
    client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=alice.headers)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("env", {"A": "x\u0000y"}),
        ("command", ["echo", "a\u0000b"]),
        ("workdir", "/tmp/a\u0000b"),
    ],
)
def test_a_nul_byte_is_refused_with_its_field_and_others_still_run(
    client: TestClient, tenants: Tenants, field: str, value: object
) -> None:
    """The operating system refuses a NUL byte in an argument, a variable or a path: such
    a job is refused at the API (it once failed every control cycle), and the next job
    runs."""
    alice = tenants.alice
    body = {"project": alice.project, "command": ["true"], field: value}
    r = client.post("/api/v1/jobs", json=body, headers=alice.headers)
    assert r.status_code == 422
    assert field in r.text
    ok = submit(client, alice, command=["true"])
    assert wait(client, alice, ok["id"])["state"] == "succeeded"
