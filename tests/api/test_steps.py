"""Steps in a running job's allocation (``POST /jobs/{id}/steps``, ``axc srun``), against a
real center: the local engine, real unix accounts and control groups when run as root.

A step must run as the job's own account, on the job's devices, in the job's control
group; only the job's owner (or an operator) may start one; the job's end ends it; and
each is recorded as ``JOB.N`` with its end and exit code.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from axcenter.service.center import Center
from axcenter.store import orm
from tests.api.conftest import Account, Tenants

PROBE = (
    'echo "uid=$(id -u) gid=$(id -g) cuda=$CUDA_VISIBLE_DEVICES job=$AXC_JOB_ID '
    'step=$AXC_STEP_ID var=$STEP_VAR"; cat /proc/self/cgroup'
)


def submit(client: TestClient, who: Account, command: list[str], gpus: int = 2) -> str:
    body = {"project": who.project, "command": command, "gpus_per_node": gpus}
    r = client.post("/api/v1/jobs", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def running(client: TestClient, who: Account, job_id: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        job: dict[str, Any] = client.get(f"/api/v1/jobs/{job_id}", headers=who.headers).json()
        return job if job["state"] == "running" else None

    found: dict[str, Any] = until(check, f"{job_id} to run")
    return found


def step(
    client: TestClient, who: Account, job_id: str, command: list[str], **env: str
) -> tuple[int, str, dict[str, Any] | None]:
    """(HTTP status, the step's output, the step as it ended or None)."""
    body = {"command": command, "env": env}
    with client.stream(
        "POST", f"/api/v1/jobs/{job_id}/steps", json=body, headers=who.headers
    ) as response:
        if response.status_code != 200:
            response.read()
            return response.status_code, response.text, None
        output, ended = "", None
        for line in response.iter_lines():
            item = json.loads(line)
            if "output" in item:
                output += item["output"]
            else:
                ended = item.get("step")
                assert ended is not None, item
        return 200, output, ended


def test_a_step_runs_as_the_job_on_its_devices_in_its_group(
    center: Center, client: TestClient, tenants: Tenants
) -> None:
    alice = tenants.alice
    job_id = submit(client, alice, ["sleep", "60"])
    job = running(client, alice, job_id)
    # the job's own view, from its own process: what a step must see too
    status, output, ended = step(client, alice, job_id, ["sh", "-c", PROBE], STEP_VAR="x")
    assert status == 200 and ended is not None, output
    assert ended["id"] == f"{job_id}.0" and ended["state"] == "succeeded", ended
    assert ended["exit_code"] == 0 and ended["user"] == "alice"
    devices = ",".join(str(d) for d in job["placement"][0]["devices"])
    assert f"cuda={devices} job={job_id} step=0 var=x" in output, output
    with center.store.read() as s:
        account = s.query(orm.UnixAccount).filter_by(user_id=_user_id(center, "alice")).one()
    if os.geteuid() == 0:  # confined: the job's account and control group
        assert f"uid={account.uid} " in output, output
        assert f"/{job_id}.1" in output.split("\n", 1)[1], output  # the run's cgroup
    # numbered in order, failures keep their code, and `show` lists them
    status, _, ended = step(client, alice, job_id, ["sh", "-c", "echo oops >&2; exit 3"])
    assert ended is not None and ended["id"] == f"{job_id}.1", ended
    assert ended["state"] == "failed" and ended["exit_code"] == 3
    shown = client.get(f"/api/v1/jobs/{job_id}", headers=alice.headers).json()
    assert [(s["id"], s["state"], s["exit_code"]) for s in shown["steps"]] == [
        (f"{job_id}.0", "succeeded", 0),
        (f"{job_id}.1", "failed", 3),
    ]
    assert shown["steps"][1]["ended_at"] >= shown["steps"][1]["started_at"]
    client.post(f"/api/v1/jobs/{job_id}/cancel", headers=alice.headers)


def test_only_the_owner_or_an_operator_may_start_a_step(
    center: Center, client: TestClient, tenants: Tenants
) -> None:
    alice = tenants.alice
    job_id = submit(client, alice, ["sleep", "60"], gpus=0)
    running(client, alice, job_id)
    status, text, _ = step(client, tenants.acme_admin, job_id, ["id"])
    assert status == 403 and "only its owner" in text, text  # may cancel it, not run as alice
    status, text, _ = step(client, tenants.bob, job_id, ["id"])
    assert status == 404, text  # another company's job is not there
    status, output, ended = step(client, tenants.operator, job_id, ["sh", "-c", "id -u"])
    assert status == 200 and ended is not None and ended["state"] == "succeeded"
    if os.geteuid() == 0:  # the operator's step still runs as alice's account, never root
        assert output.strip() not in ("", "0"), output
        with center.store.read() as s:
            uid = s.query(orm.UnixAccount).filter_by(user_id=_user_id(center, "alice")).one().uid
        assert output.strip() == str(uid)
    client.post(f"/api/v1/jobs/{job_id}/cancel", headers=alice.headers)
    until(
        lambda: (
            client.get(f"/api/v1/jobs/{job_id}", headers=alice.headers).json()["state"]
            == "cancelled"
        ),
        "the cancel",
    )
    status, text, _ = step(client, alice, job_id, ["true"])
    assert status == 409 and "cancelled" in text, text
    r = client.post(f"/api/v1/jobs/{job_id}/steps", json={"command": []}, headers=alice.headers)
    assert r.status_code == 422, r.text
    body = {"command": ["true"], "env": {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}}
    r = client.post(f"/api/v1/jobs/{job_id}/steps", json=body, headers=alice.headers)
    assert r.status_code == 422 and "set by axcenter" in r.text, r.text


def test_ending_the_job_ends_its_steps(
    center: Center, client: TestClient, tenants: Tenants
) -> None:
    alice = tenants.alice
    job_id = submit(client, alice, ["sleep", "60"], gpus=1)
    running(client, alice, job_id)
    result: list[tuple[int, str, dict[str, Any] | None]] = []
    marker = f"step-of-{job_id}"
    command = ["sh", "-c", f"echo started; exec sleep 300 # {marker}"]
    thread = threading.Thread(target=lambda: result.append(step(client, alice, job_id, command)))
    thread.start()
    until(lambda: _processes_with(marker), "the step's process")
    r = client.post(f"/api/v1/jobs/{job_id}/cancel", headers=alice.headers)
    assert r.status_code == 200, r.text
    thread.join(30)
    assert not thread.is_alive(), "the step outlived its job"
    ((status, output, ended),) = result
    assert status == 200 and "started" in output and ended is not None
    assert ended["state"] == "failed" and "ended with its job" in ended["message"], ended
    assert not _processes_with(marker)


def _processes_with(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


def _user_id(center: Center, name: str) -> str:
    with center.store.read() as s:
        return s.query(orm.User).filter_by(name=name).one().id
