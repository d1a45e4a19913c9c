"""End to end: ``axc up`` in a temporary data directory, jobs through the CLI and the API."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Service, wait_for

PROJECT = "hanbit-adas"  # from the demo data


def submit(service: Service, *args: str) -> str:
    done = service.axc("submit", "--project", PROJECT, *args, check=True)
    job_id = done.stdout.strip()
    assert job_id.startswith("job_"), done.stdout
    return job_id


def show(service: Service, job_id: str) -> dict[str, Any]:
    with service.api() as api:
        job: dict[str, Any] = api.get(f"/jobs/{job_id}").json()
        return job


def wait_state(service: Service, job_id: str, state: str) -> dict[str, Any]:
    """Long-poll the job until it reaches ``state`` (or ends): no fixed sleeps."""
    with service.api() as api:
        for _ in range(600):
            job: dict[str, Any] = api.get(f"/jobs/{job_id}/wait", params={"timeout": 0.1}).json()
            if job["state"] == state or job["ended_at"] is not None:
                return job
    raise AssertionError(f"{job_id} never reached {state}")


def test_jobs_through_cli_and_api(service: Service) -> None:
    ok = submit(
        service,
        "--gpus",
        "1",
        "--gpu-type",
        "A100",
        "--name",
        "ok",
        "--",
        "sh",
        "-c",
        "echo visible=$CUDA_VISIBLE_DEVICES",
    )
    fails = submit(service, "--gpus", "0", "--", "sh", "-c", "echo failing >&2; exit 3")
    slow = submit(service, "--gpus", "1", "--time-limit", "2s", "--", "sleep", "30")
    # two H100 jobs that need both H100s: the second waits for the first
    first = submit(service, "--gpus", "2", "--gpu-type", "H100", "--", "sleep", "60")
    second = submit(
        service,
        "--gpus",
        "2",
        "--gpu-type",
        "H100",
        "--",
        "sh",
        "-c",
        "echo second=$CUDA_VISIBLE_DEVICES",
    )

    assert service.axc("wait", ok).returncode == 0
    assert service.axc("wait", fails).returncode == 3
    assert service.axc("wait", slow).returncode != 0
    assert show(service, slow)["state"] == "timed_out"

    logs = service.axc("logs", ok, check=True).stdout
    devices = show(service, ok)["placement"][0]["devices"]
    assert f"visible={','.join(map(str, devices))}" in logs
    assert "failing" in service.axc("logs", fails, check=True).stdout

    assert wait_state(service, first, "running")["state"] == "running"
    waiting = show(service, second)
    assert waiting["state"] == "pending"
    assert waiting["reason"] == "resources"
    shown = service.axc("show", second, check=True).stdout
    assert "resources" in shown

    cluster = service.axc("cluster", check=True).stdout
    assert "H100" in cluster and first in cluster

    # cancel the running holder: the waiting job then starts on the same devices
    cancel = service.axc("cancel", first, check=True)
    assert "cancelled" in cancel.stdout
    assert service.axc("wait", second).returncode == 0
    assert show(service, first)["state"] == "cancelled"
    h100 = show(service, first)["placement"][0]["devices"]
    second_log = service.axc("logs", second, check=True).stdout
    assert f"second={','.join(map(str, h100))}" in second_log

    jobs = service.axc("jobs", "--json", check=True).stdout
    for job_id in (ok, fails, slow, first, second):
        assert job_id in jobs

    # the API directly, with an idempotency key
    with service.api() as api:
        body = {"project": PROJECT, "command": ["true"], "idempotency_key": "e2e-1"}
        a, b = api.post("/jobs", json=body), api.post("/jobs", json=body)
        assert (a.status_code, b.status_code) == (201, 200)
        assert a.json()["id"] == b.json()["id"]


def test_bad_input_is_refused_with_the_field_named(service: Service) -> None:
    cases = [
        (["--gpus", "-1"], "gpus"),
        (["--gpus", "64"], "gpus_per_node"),
        (["--gpu-type", "TPU"], "gpu_types"),
        (["--project", "nope"], "project"),
    ]
    for args, field in cases:
        done = service.axc("submit", "--project", PROJECT, *args, "--", "true")
        assert done.returncode != 0, args
        assert field in done.stderr, (args, done.stderr)
    empty = service.axc("submit", "--project", PROJECT, "--")
    assert empty.returncode != 0
    assert "command" in empty.stderr.lower()
    with service.api() as api:
        assert api.get("/jobs").json()["items"] == []


def test_restart_loses_nothing(service: Service) -> None:
    # all four GPUs busy, three more jobs queued behind them
    holders = [
        submit(service, "--gpus", "2", "--gpu-type", t, "--", "sleep", "60")
        for t in ("A100", "H100")
    ]
    queued = [submit(service, "--gpus", "2", "--", "sh", "-c", "echo ran") for _ in range(3)]
    for job_id in holders:
        wait_state(service, job_id, "running")
    assert service.stop(signal.SIGTERM) == 0
    service.start()
    # the running holders were stopped and requeued; nothing was lost
    for job_id in holders + queued:
        assert show(service, job_id)["state"] in {"pending", "running"}
    for job_id in holders:
        service.axc("cancel", job_id, check=True)
    for job_id in queued:
        assert service.axc("wait", job_id).returncode == 0
    requeued = show(service, holders[0])
    assert [e["to_state"] for e in requeued["events"]][:5] == [
        "pending",
        "admitted",
        "running",
        "preempted",
        "pending",
    ]


def test_kill_9_neither_loses_nor_doubles_a_job(service: Service) -> None:
    pids = service.data_dir.parent / "pids.txt"
    job = submit(service, "--gpus", "1", "--", "sh", "-c", f"echo $$ >> {pids}; exec sleep 60")
    wait_state(service, job, "running")
    [first_pid] = wait_for(lambda: _lines(pids) if len(_lines(pids)) == 1 else None)
    service.stop(signal.SIGKILL)
    assert alive(int(first_pid)), "the job outlives its service (own session)"
    service.start()
    # reconcile killed the orphaned process and requeued the job, which runs again
    restarted = wait_state(service, job, "running")
    assert restarted["attempts"] == 2
    wait_for(lambda: len(_lines(pids)) == 2 or None)
    assert not alive(int(first_pid))
    service.axc("cancel", job, check=True)
    states = [e["to_state"] for e in show(service, job)["events"]]
    assert states == [
        "pending",
        "admitted",
        "running",
        "preempted",
        "pending",
        "admitted",
        "running",
        "cancelled",
    ]


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def alive(pid: int) -> bool:
    """True unless the process is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
