"""A center whose pool is a real Slurm partition (scripts/slurm), end to end: ``axc up``
places and charges, Slurm runs, as a real unix account. The service is killed with
SIGKILL while its jobs run and end; the next one adopts what runs and records what ended
with Slurm's own times, which are what ``sacct`` says."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from axcenter.executors.base import RunAs
from axcenter.model.money import gpu_seconds
from axcenter.service.center import HOLD_SLACK_S
from tests.conftest import TEST_PREFIX, service_env
from tests.e2e.conftest import Service, wait_for
from tests.slurm.cluster import PARTITION, Cluster

pytestmark = pytest.mark.e2e

KILL_GRACE_S = 2


@pytest.fixture
def center(
    slurm_cluster: Cluster, slurm_account: RunAs, slurm_shared: Path, tmp_path: Path
) -> Iterator[Service]:
    config = tmp_path / "center.yaml"
    config.write_text(
        "pools:\n  - name: hpc\n    engine: slurm\n    slurm:\n"
        f"      partition: {PARTITION}\n      slurm_conf: {slurm_cluster.slurm_conf}\n"
        f"      gpu_type: H100\n      poll_s: 0.2\n"
        f"      output_dir: {slurm_shared / 'logs'}\n"
    )
    env = {k: v for k, v in service_env().items() if not k.startswith("SLURM_")}
    env |= {"AXC_CONFIG": str(config), "AXC_KILL_GRACE_S": str(KILL_GRACE_S)}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")
    svc = Service(data_dir=tmp_path / "data", env=env, gpus="")
    svc.start()
    yield svc
    if svc.proc is not None:
        svc.stop()
    ids = slurm_cluster.run("squeue", "-h", "-o", "%i").stdout.split()
    if ids:
        slurm_cluster.run("scancel", *ids, check=False)


def _job(api: Any, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = api.get(f"/jobs/{job_id}").json()
    return job


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _sacct(cluster: Cluster, run_id: str) -> dict[str, str]:
    fields = "JobName,State,ExitCode,Start,End,User,NodeList"
    out = cluster.run(
        "env", "SLURM_TIME_FORMAT=%s", "sacct", "-X", "-n", "-P", "-S", "now-1hour",
        f"--name=axc-{run_id}", f"--format={fields}",
    ).stdout  # fmt: skip
    lines = out.splitlines()  # none while slurmdbd has the job as "allocation"
    assert len(lines) <= 1, lines
    return dict(zip(fields.split(","), lines[0].split("|"), strict=True)) if lines else {}


def test_slurm_runs_what_axcenter_places_through_a_kill_9(
    center: Service, slurm_cluster: Cluster, slurm_account: RunAs, slurm_shared: Path
) -> None:
    # the demo's operator submits: its jobs run as its managed unix account, in its home
    user = f"{TEST_PREFIX}operator"
    with center.api() as api:

        def submit(command: list[str], **fields: Any) -> str:
            body = {"project": "hanbit-adas", "command": command}
            answer = api.post("/jobs", json={**body, "gpus_per_node": 1, **fields})
            assert answer.status_code == 201, answer.text
            job_id: str = answer.json()["id"]
            return job_id

        gang = submit(["sh", "-c", "echo $SLURMD_NODENAME $(id -un)"], nodes=2, gpus_per_node=2)
        long = submit(["sleep", "60"])
        short = submit(["sh", "-c", "sleep 3; exit 2"])
        wait_for(lambda: _job(api, gang)["state"] == "succeeded" or None, timeout=60)
        for job_id in (long, short):
            wait_for(lambda j=job_id: _job(api, j)["state"] == "running" or None, timeout=60)
        log = (slurm_shared / "logs" / f"{gang}.log").read_text().split("\n")[:-1]
        assert len(log) == 2 and {line.split()[1] for line in log} == {user}
        before = _job(api, long)["started_at"]
    center.stop(signal.SIGKILL)  # the service dies; Slurm's jobs do not
    wait_for(lambda: _sacct(slurm_cluster, f"{short}.1").get("State") == "FAILED" or None, 60)
    center.start()
    with center.api() as api:
        wait_for(lambda: _job(api, short)["state"] == "failed" or None, timeout=60)
        assert _job(api, long)["state"] == "running"
        assert _job(api, long)["started_at"] == before  # adopted: the same run
        assert center.axc("cancel", long).returncode == 0
        wait_for(lambda: _job(api, long)["state"] == "cancelled" or None, timeout=60)
        for job_id in (gang, short, long):
            job = _job(api, job_id)
            record = _sacct(slurm_cluster, f"{job_id}.1")
            assert record["User"] == user  # never root
            assert _epoch(job["started_at"]) == int(record["Start"]), (job, record)
            assert _epoch(job["ended_at"]) == int(record["End"]), (job, record)
        assert _job(api, short)["exit_code"] == 2
    # one Slurm job per run: nothing was submitted twice across the restart
    names = slurm_cluster.run(
        "sacct", "-X", "-n", "-P", "-S", "now-1hour", "--format=JobName",
        f"--name={','.join(f'axc-{j}.1' for j in (gang, long, short))}",
    ).stdout.split()  # fmt: skip
    assert sorted(names) == sorted(f"axc-{j}.1" for j in (gang, long, short))


def test_slurms_own_time_limit_while_the_service_is_away_is_recorded_and_charged(
    center: Service, slurm_cluster: Cluster
) -> None:
    """Slurm ends a job at its ``--time`` (whole minutes, checked every 30 s) while nobody
    listens: the next service records it timed out at the end Slurm recorded, and charges
    what it ran up to its time limit and grace (its hold): the overrun is the center's,
    not the user's."""
    with center.api() as api:
        answer = api.post(
            "/jobs",
            json={"project": "hanbit-adas", "command": ["sleep", "600"], "gpus_per_node": 1,
                  "time_limit_s": 60},
        )  # fmt: skip
        assert answer.status_code == 201, answer.text
        job_id = answer.json()["id"]
        wait_for(lambda: _job(api, job_id)["state"] == "running" or None, timeout=60)
    center.stop(signal.SIGKILL)
    # Slurm looks at time limits every 30 s, then gives KillWait (2 s here)
    record = wait_for(
        lambda: (
            ((r := _sacct(slurm_cluster, f"{job_id}.1")).get("State") == "TIMEOUT" and r) or None
        ),
        timeout=150,
    )
    center.start()
    with center.api() as api:
        job = wait_for(
            lambda: ((j := _job(api, job_id))["state"] == "timed_out" and j) or None, timeout=60
        )
        assert _epoch(job["started_at"]) == int(record["Start"]), (job, record)
        assert _epoch(job["ended_at"]) == int(record["End"]), (job, record)
        ran = int(record["End"]) - int(record["Start"])
        assert ran >= 60
        charges = api.get(f"/jobs/{job_id}/charges").json()
        assert charges["held_won"] == 0
        charged = [c["gpu_seconds"] for c in charges["items"] if c["kind"] == "charge"]
        assert charged == [gpu_seconds(1, min(ran, 60 + KILL_GRACE_S + HOLD_SLACK_S))]
