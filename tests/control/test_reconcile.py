"""Reconcile after a killed service: a job is never running twice.

The window these tests hold open: the service was killed after a job's process started
but before its pid was written (the job is ``admitted`` with no pid), or after (``running``
with its pid). Either way the restarted service kills the process before requeueing.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from axcenter.control.reconcile import reconcile
from axcenter.control.state import ClusterState
from axcenter.executors.base import NodeInventory
from axcenter.executors.local import LocalExecutor
from axcenter.model.jobs import JobState
from axcenter.store.db import Store
from tests.store.test_jobs import T0, Seed, job_row, move, seed, submit

__all__ = ["seed"]  # the fixture, used by name

S = JobState


@pytest.fixture
def executor() -> Iterator[LocalExecutor]:
    ex = LocalExecutor(
        [NodeInventory("gpu-01", "H100", 4, 64, 512_000, logical=True)], lambda report: None
    )
    yield ex
    ex.close(grace_s=0.5)


@pytest.fixture
def orphans(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Processes started "by the killed service" (own session, AXC_JOB_ID set), by job."""
    started: dict[str, subprocess.Popen[bytes]] = {}
    yield started
    for proc in started.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def start_orphan(
    orphans: dict[str, subprocess.Popen[bytes]], job_id: str, cwd: Path
) -> subprocess.Popen[bytes]:
    orphans[job_id] = subprocess.Popen(
        ["sleep", "60"],
        env={"PATH": os.environ["PATH"], "AXC_JOB_ID": job_id},
        start_new_session=True,
        cwd=cwd,
    )
    return orphans[job_id]


@pytest.mark.parametrize("pid_recorded", [False, True], ids=["admitted, no pid", "running"])
def test_the_process_of_a_lost_job_is_killed_before_it_is_requeued(
    store: Store,
    seed: Seed,
    executor: LocalExecutor,
    orphans: dict[str, subprocess.Popen[bytes]],
    tmp_path: Path,
    pid_recorded: bool,
) -> None:
    lost, bystander = submit(store, seed), submit(store, seed)
    proc = start_orphan(orphans, lost, tmp_path)
    other = start_orphan(orphans, bystander, tmp_path)  # its job is pending: not ours to kill
    move(store, lost, [S.PENDING], S.ADMITTED, gpu_type="H100")
    if pid_recorded:
        move(store, lost, [S.ADMITTED], S.RUNNING, pid=proc.pid, started_at=T0)

    reconcile(store, executor, T0 + timedelta(seconds=5), ClusterState())

    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert other.poll() is None
    assert job_row(store, lost).state == S.PENDING.value
