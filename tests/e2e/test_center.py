"""End to end: ``axc up`` in a temporary data directory, jobs through the CLI and the API."""

from __future__ import annotations

import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.e2e.conftest import AXC, Service, free_port, supervisors, wait_for

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


def test_a_restart_leaves_jobs_running_and_adopts_them(service: Service) -> None:
    """Stopping or upgrading ``axc up`` stops no job: the restarted service adopts the
    running ones (same run, same start) and the queue goes on."""
    holders = [
        submit(service, "--gpus", "2", "--gpu-type", t, "--", "sleep", "60")
        for t in ("A100", "H100")
    ]
    queued = [submit(service, "--gpus", "2", "--", "sh", "-c", "echo ran") for _ in range(3)]
    started = {job_id: wait_state(service, job_id, "running")["started_at"] for job_id in holders}
    assert service.stop(signal.SIGTERM) == 0
    assert len(supervisors(service.data_dir)) == 2, "the jobs outlive the service"
    service.start()
    for job_id in holders:
        job = show(service, job_id)
        assert (job["state"], job["attempts"]) == ("running", 1)
        assert job["started_at"] == started[job_id]
    for job_id in queued:
        assert show(service, job_id)["state"] == "pending"
    for job_id in holders:
        service.axc("cancel", job_id, check=True)
    for job_id in queued:
        assert service.axc("wait", job_id).returncode == 0
    assert [e["to_state"] for e in show(service, holders[0])["events"]] == [
        "pending",
        "admitted",
        "running",
        "cancelled",
    ]


def test_stop_jobs_is_the_operators_choice(service: Service) -> None:
    holder = submit(service, "--gpus", "1", "--", "sleep", "60")
    wait_state(service, holder, "running")
    service.stop()
    service.env["AXC_STOP_JOBS_ON_SHUTDOWN"] = "true"
    service.start()  # adopts the holder; this incarnation stops its jobs on exit
    assert show(service, holder)["state"] == "running"
    assert service.stop(signal.SIGTERM) == 0
    assert supervisors(service.data_dir) == []
    del service.env["AXC_STOP_JOBS_ON_SHUTDOWN"]
    service.start()
    job = show(service, holder)
    assert job["state"] in {"pending", "admitted", "running"}
    assert [e["to_state"] for e in job["events"]][:5] == [
        "pending",
        "admitted",
        "running",
        "preempted",
        "pending",
    ]
    service.axc("cancel", holder, check=True)


def test_kill_9_neither_loses_nor_doubles_a_job(service: Service, exchange: Path) -> None:
    """The service is killed: the running job goes on under its supervisor and is
    adopted; the one that ended meanwhile is recorded with its real exit and never runs
    again."""
    pids = exchange / "pids.txt"
    job = submit(service, "--gpus", "1", "--", "sh", "-c", f"echo $$ >> {pids}; exec sleep 60")
    ends = exchange / "go"
    short = submit(
        service,
        "--gpus",
        "1",
        "--",
        "sh",
        "-c",
        f"echo short >> {pids}; while [ ! -e {ends} ]; do sleep 0.05; done; exit 7",
    )
    wait_state(service, job, "running")
    wait_state(service, short, "running")
    [first_pid, _] = wait_for(lambda: _lines(pids) if len(_lines(pids)) == 2 else None)
    service.stop(signal.SIGKILL)
    ends.touch()  # the short job ends while nobody listens
    wait_for(lambda: len(supervisors(service.data_dir)) == 1 or None)
    restarted_at = datetime.now(UTC)
    service.start()
    adopted = show(service, job)
    assert (adopted["state"], adopted["attempts"]) == ("running", 1)
    assert alive(int(first_pid))
    ended = show(service, short)
    assert (ended["state"], ended["exit_code"], ended["attempts"]) == ("failed", 7, 1)
    assert datetime.fromisoformat(ended["ended_at"]) < restarted_at, "its real end"
    service.axc("cancel", job, check=True)
    assert wait_state(service, job, "cancelled")["state"] == "cancelled"
    assert not alive(int(first_pid))
    assert _lines(pids).count("short") == 1, "a finished job never runs again"
    assert [e["to_state"] for e in show(service, job)["events"]] == [
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


def test_a_second_center_on_the_same_store_refuses_to_start(service: Service) -> None:
    """Two controllers on one store would settle each other's runs twice: the second
    says who holds the store and exits before it answers anything."""
    second = subprocess.run(
        [AXC, "up", "--data-dir", str(service.data_dir), "--port", str(free_port())],
        env=service.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode != 0
    assert "another axcenter" in second.stderr and "stop it first" in second.stderr
    assert "is up" not in second.stdout + second.stderr
    assert show_health(service)


def show_health(service: Service) -> bool:
    with service.api() as api:
        return bool(api.get("/jobs").status_code == 200)
