"""How the local executor prepares a launch (the control loop's hot path): directories
are made only when missing, and the service's environment is read once.

(Here rather than in tests/executors so as not to touch that package's files.)
"""

from __future__ import annotations

import os
import queue
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from axcenter.executors.base import ExitReport, Launch, LaunchError, NodeInventory, Outcome
from axcenter.executors.local import LocalExecutor

NODE = NodeInventory("local-0", "H100", 4, 8, 64_000, logical=True)


@pytest.fixture
def ex(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalExecutor, queue.Queue[ExitReport]]]:
    monkeypatch.setenv("AXCTEST_SERVICE_VAR", "at-start")
    reports: queue.Queue[ExitReport] = queue.Queue()
    executor = LocalExecutor([NODE], reports.put, grace_s=0.5)
    yield executor, reports
    executor.close(grace_s=0.5)


def launch(job_id: str, workdir: Path, log: Path, script: str = "pwd; env") -> Launch:
    return Launch(
        job_id=job_id,
        command=("sh", "-c", script),
        workdir=str(workdir),
        env={"JOB_VAR": job_id},
        node_devices=(("local-0", (1,)),),
        time_limit_s=60,
        log_path=str(log),
    )


def run(ex: tuple[LocalExecutor, queue.Queue[ExitReport]], job: Launch) -> dict[str, str]:
    executor, reports = ex
    executor.start(job)
    report = reports.get(timeout=10)
    assert report.outcome is Outcome.SUCCEEDED, report
    lines = Path(job.log_path).read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines[1:] if "=" in line)
    env["PWD_SEEN"] = lines[0]
    return env


def test_missing_directories_are_made_and_remade(
    ex: tuple[LocalExecutor, queue.Queue[ExitReport]], tmp_path: Path
) -> None:
    logs = tmp_path / "data" / "logs"
    work = tmp_path / "jobs" / "deep" / "j1"  # parents missing too
    env = run(ex, launch("j1", work, logs / "j1.log"))
    assert env["PWD_SEEN"] == str(work)
    shared = tmp_path / "shared"
    shared.mkdir()
    run(ex, launch("j2", shared, logs / "j2.log"))  # an existing working directory
    shutil.rmtree(logs)  # removed while the service runs: made again
    run(ex, launch("j3", shared, logs / "j3.log"))
    assert (logs / "j3.log").exists()


def test_directory_errors_keep_their_messages(
    ex: tuple[LocalExecutor, queue.Queue[ExitReport]], tmp_path: Path
) -> None:
    executor, _ = ex
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    with pytest.raises(LaunchError, match=r"working directory .*a-file is not a directory"):
        executor.start(launch("j1", a_file, tmp_path / "logs" / "j1.log"))
    with pytest.raises(LaunchError, match=r"working directory .*: a parent is not a directory"):
        executor.start(launch("j1", a_file / "sub", tmp_path / "logs" / "j1.log"))
    with pytest.raises(LaunchError, match=r"log directory .*a-file is not a directory"):
        executor.start(launch("j1", tmp_path, a_file / "j1.log"))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "j1.log").mkdir()  # the log path is a directory
    with pytest.raises(LaunchError, match=r"cannot open log file .*j1.log: Is a directory"):
        executor.start(launch("j1", tmp_path, tmp_path / "logs" / "j1.log"))
    assert executor.running() == set()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_place_is_named(
    ex: tuple[LocalExecutor, queue.Queue[ExitReport]], tmp_path: Path
) -> None:
    executor, _ = ex
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(LaunchError, match=r"cannot create working directory .*: Permission"):
        executor.start(launch("j1", locked / "w", tmp_path / "logs" / "j1.log"))
    with pytest.raises(LaunchError, match=r"cannot create log directory .*: Permission"):
        executor.start(launch("j1", tmp_path, locked / "logs" / "j1.log"))


def test_the_service_environment_is_read_when_the_executor_is_made(
    ex: tuple[LocalExecutor, queue.Queue[ExitReport]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AXCTEST_SERVICE_VAR", "changed later")
    monkeypatch.setenv("AXC_SECRET", "never passed on")
    env = run(ex, launch("j1", tmp_path, tmp_path / "j1.log"))
    assert env["AXCTEST_SERVICE_VAR"] == "at-start"
    assert env["JOB_VAR"] == "j1"
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert "AXC_SECRET" not in env
    env = run(ex, launch("j2", tmp_path, tmp_path / "j2.log"))  # one job's env stays its own
    assert env["JOB_VAR"] == "j2" and env["AXC_JOB_ID"] == "j2"
