"""LocalExecutor with real subprocesses: outcomes, environment, signals, shutdown."""

from __future__ import annotations

import dataclasses
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from axcenter.executors.base import (
    ExitReport,
    Launch,
    LaunchError,
    NodeInventory,
    Outcome,
    StopReason,
)
from axcenter.executors.local import LocalExecutor

NODES = [
    NodeInventory("local-0", "H100", 4, 8, 64_000, logical=True),
    NodeInventory("local-1", "H100", 4, 8, 64_000, logical=True),
]
WAIT_S = 10.0


class Harness:
    """An executor whose exit reports land in a queue, plus a launch builder."""

    def __init__(self, tmp_path: Path, grace_s: float = 1.0) -> None:
        self.tmp = tmp_path
        self.reports: queue.Queue[ExitReport] = queue.Queue()
        self.ex = LocalExecutor(NODES, self.reports.put, grace_s=grace_s)

    def launch(
        self,
        job_id: str,
        script: str,
        *,
        time_limit_s: int = 60,
        devices: tuple[tuple[str, tuple[int, ...]], ...] = (("local-0", (0,)),),
        env: dict[str, str] | None = None,
        extra_env: dict[str, str] | None = None,
        workdir: str | None = None,
    ) -> Launch:
        return Launch(
            job_id=job_id,
            command=("sh", "-c", script),
            workdir=workdir or str(self.tmp / "work" / job_id),
            env=env or {},
            node_devices=devices,
            time_limit_s=time_limit_s,
            log_path=str(self.log(job_id)),
            extra_env=extra_env or {},
        )

    def log(self, job_id: str) -> Path:
        return self.tmp / "logs" / f"{job_id}.log"

    def next_report(self) -> ExitReport:
        return self.reports.get(timeout=WAIT_S)

    def wait_log(self, job_id: str, text: str) -> str:
        """Wait until the job's log contains ``text`` (the job signals readiness this way)."""
        return wait_for(lambda: text in self.log(job_id).read_text(), what=f"{text!r} in log")


def wait_for(check: Callable[[], bool | str], what: str, timeout: float = WAIT_S) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return what
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.ex.close(grace_s=0.5)


def pid_gone(pid: int) -> bool:
    """Dead, or a zombie waiting for a reaper that is not ours to wait for."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_success_writes_log(h: Harness) -> None:
    started = h.ex.start(h.launch("j1", "echo hello; echo oops >&2"))
    assert started.job_id == "j1" and started.pid > 0
    r = h.next_report()
    assert (r.job_id, r.outcome, r.exit_code) == ("j1", Outcome.SUCCEEDED, 0)
    assert r.ended_at >= started.started_at
    assert h.log("j1").read_text() == "hello\noops\n"
    assert h.ex.running() == set()


def test_no_log_path_discards_output_and_creates_no_file(h: Harness) -> None:
    """``log_path=None`` (``output=discard``): stdout and stderr go to /dev/null."""
    script = " && ".join(f'test "$(readlink /proc/$$/fd/{fd})" = /dev/null' for fd in (1, 2))
    h.ex.start(dataclasses.replace(h.launch("j1", script), log_path=None))
    r = h.next_report()
    assert (r.outcome, r.exit_code) == (Outcome.SUCCEEDED, 0)
    assert not (h.tmp / "logs").exists()


def test_failure_exit_code(h: Harness) -> None:
    h.ex.start(h.launch("j1", "exit 3"))
    r = h.next_report()
    assert (r.outcome, r.exit_code, r.message) == (Outcome.FAILED, 3, "exit code 3")


def test_killed_by_foreign_signal_is_failed(h: Harness) -> None:
    h.ex.start(h.launch("j1", "kill -9 $$"))
    r = h.next_report()
    assert (r.outcome, r.exit_code) == (Outcome.FAILED, -9)
    assert "SIGKILL" in r.message


def test_environment(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXC_TOKEN", "service-secret")
    monkeypatch.setenv("AXC_DATABASE_URL", "sqlite://")
    devices = (("local-1", (2, 3)), ("local-0", (0,)))
    h.ex.start(
        h.launch(
            "j1",
            "env",
            devices=devices,
            env={"FOO": "bar", "CUDA_VISIBLE_DEVICES": "7"},
            extra_env={"AXC_ARRAY_INDEX": "5"},
        )
    )
    assert h.next_report().outcome is Outcome.SUCCEEDED
    env = dict(line.split("=", 1) for line in h.log("j1").read_text().splitlines() if "=" in line)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"  # the batch host's devices only
    assert env["AXC_JOB_ID"] == "j1"
    assert env["AXC_GPUS"] == "local-1:2,local-1:3,local-0:0"
    assert env["AXC_NODELIST"] == "local-1,local-0"
    assert env["AXC_NUM_NODES"] == "2"
    assert env["AXC_ARRAY_INDEX"] == "5"
    assert env["FOO"] == "bar"
    assert "AXC_TOKEN" not in env and "AXC_DATABASE_URL" not in env
    assert env["PATH"] == os.environ["PATH"]


def test_device_ids_translate_cuda_visible_devices(tmp_path: Path) -> None:
    node = NodeInventory("gpu-host", "H100", 2, 8, 1000, logical=False, device_ids=(5, 7))
    reports: queue.Queue[ExitReport] = queue.Queue()
    ex = LocalExecutor([node], reports.put)
    try:
        log = tmp_path / "j.log"
        ex.start(
            Launch(
                "j1",
                ("sh", "-c", "echo $CUDA_VISIBLE_DEVICES $AXC_GPUS"),
                str(tmp_path),
                {},
                (("gpu-host", (1,)),),
                60,
                str(log),
            )
        )
        assert reports.get(timeout=WAIT_S).outcome is Outcome.SUCCEEDED
        assert log.read_text() == "7 gpu-host:1\n"
    finally:
        ex.close()


def test_workdir_is_created_and_used(h: Harness) -> None:
    workdir = h.tmp / "deep" / "er" / "wd"
    h.ex.start(h.launch("j1", "pwd; echo data > out.txt", workdir=str(workdir)))
    assert h.next_report().outcome is Outcome.SUCCEEDED
    assert h.log("j1").read_text().strip() == str(workdir)
    assert (workdir / "out.txt").read_text() == "data\n"


def test_time_limit(h: Harness) -> None:
    t0 = time.monotonic()
    h.ex.start(h.launch("j1", "sleep 30", time_limit_s=1))
    r = h.next_report()
    elapsed = time.monotonic() - t0
    assert r.outcome is Outcome.TIMED_OUT
    assert r.exit_code == -15
    assert "time limit 1s" in r.message
    assert 0.9 < elapsed < 5


def test_time_limit_wins_over_clean_exit_on_sigterm(h: Harness) -> None:
    h.ex.start(h.launch("j1", "trap 'exit 0' TERM; echo ready; sleep 30 & wait", time_limit_s=1))
    r = h.next_report()
    assert (r.outcome, r.exit_code) == (Outcome.TIMED_OUT, 0)
    assert "ready" in h.log("j1").read_text()


def test_sigterm_ignored_gets_sigkill_after_grace(h: Harness) -> None:
    # The ignored disposition is inherited by `sleep`, so the whole group ignores SIGTERM.
    h.ex.start(h.launch("j1", "trap '' TERM; echo ready; sleep 30"))
    h.wait_log("j1", "ready")
    t0 = time.monotonic()
    h.ex.stop("j1", StopReason.CANCEL, grace_s=0.5)
    r = h.next_report()
    elapsed = time.monotonic() - t0
    assert (r.outcome, r.exit_code) == (Outcome.CANCELLED, -9)
    assert 0.4 < elapsed < 5


def test_time_limit_then_sigkill_after_default_grace(tmp_path: Path) -> None:
    h = Harness(tmp_path, grace_s=0.5)
    try:
        t0 = time.monotonic()
        h.ex.start(h.launch("j1", "trap '' TERM; sleep 30", time_limit_s=1))
        r = h.next_report()
        assert (r.outcome, r.exit_code) == (Outcome.TIMED_OUT, -9)
        assert 1.4 < time.monotonic() - t0 < 6
    finally:
        h.ex.close()


def test_cancel_kills_grandchildren(h: Harness) -> None:
    h.ex.start(h.launch("j1", "sleep 100 & echo grandchild=$!; wait"))
    h.wait_log("j1", "\n")
    grandchild = int(h.log("j1").read_text().split("=")[1])
    assert not pid_gone(grandchild)
    h.ex.stop("j1", StopReason.CANCEL)
    r = h.next_report()
    assert r.outcome is Outcome.CANCELLED and r.message.startswith("cancelled")
    wait_for(lambda: pid_gone(grandchild), what=f"grandchild {grandchild} to die", timeout=5)


def test_leftover_background_process_is_killed_when_job_ends(h: Harness) -> None:
    # The main process exits at once; its background child must not outlive the job.
    h.ex.start(h.launch("j1", "trap '' TERM; sleep 100 & echo grandchild=$!"))
    assert h.next_report().outcome is Outcome.SUCCEEDED
    grandchild = int(h.log("j1").read_text().split("=")[1])
    wait_for(lambda: pid_gone(grandchild), what=f"grandchild {grandchild} to die", timeout=5)


def test_preempt(h: Harness) -> None:
    h.ex.start(h.launch("j1", "sleep 30"))
    h.ex.stop("j1", StopReason.PREEMPT)
    r = h.next_report()
    assert (r.outcome, r.exit_code) == (Outcome.PREEMPTED, -15)


def test_stop_reason_wins_over_exit_zero(h: Harness) -> None:
    h.ex.start(h.launch("j1", "trap 'exit 0' TERM; echo ready; sleep 30 & wait"))
    h.wait_log("j1", "ready")
    h.ex.stop("j1", StopReason.CANCEL)
    r = h.next_report()
    assert (r.outcome, r.exit_code) == (Outcome.CANCELLED, 0)


def test_first_cause_wins(h: Harness) -> None:
    h.ex.start(h.launch("j1", "trap '' TERM; echo ready; sleep 30"))
    h.wait_log("j1", "ready")
    h.ex.stop("j1", StopReason.PREEMPT, grace_s=30)
    h.ex.stop("j1", StopReason.CANCEL, grace_s=0)  # shortens the grace, keeps the cause
    r = h.next_report()
    assert (r.outcome, r.exit_code) == (Outcome.PREEMPTED, -9)


def test_stop_unknown_or_finished_is_noop(h: Harness) -> None:
    h.ex.stop("nope", StopReason.CANCEL)
    h.ex.start(h.launch("j1", "true"))
    assert h.next_report().outcome is Outcome.SUCCEEDED
    h.ex.stop("j1", StopReason.CANCEL)
    assert h.reports.empty()


def test_launch_error_missing_command(h: Harness) -> None:
    launch = dataclasses.replace(h.launch("j1", ""), command=("no-such-command-axc", "x"))
    with pytest.raises(LaunchError, match="command not found: no-such-command-axc"):
        h.ex.start(launch)
    assert h.ex.running() == set()


def test_launch_error_workdir_is_a_file(h: Harness) -> None:
    f = h.tmp / "a-file"
    f.write_text("x")
    with pytest.raises(LaunchError, match=r"working directory .* is not a directory"):
        h.ex.start(h.launch("j1", "true", workdir=str(f)))


def test_launch_error_unknown_node_and_device(h: Harness) -> None:
    with pytest.raises(LaunchError, match="unknown node 'nope'"):
        h.ex.start(h.launch("j1", "true", devices=(("nope", (0,)),)))
    with pytest.raises(LaunchError, match="has no device 4"):
        h.ex.start(h.launch("j1", "true", devices=(("local-0", (4,)),)))


def test_launch_error_duplicate_job_id(h: Harness) -> None:
    h.ex.start(h.launch("j1", "sleep 30"))
    with pytest.raises(LaunchError, match="already running"):
        h.ex.start(h.launch("j1", "true"))
    h.ex.stop("j1", StopReason.CANCEL)
    assert h.next_report().outcome is Outcome.CANCELLED
    assert h.reports.empty()


def test_running(h: Harness) -> None:
    h.ex.start(h.launch("a", "sleep 30"))
    h.ex.start(h.launch("b", "sleep 30"))
    assert h.ex.running() == {"a", "b"}
    h.ex.stop("a", StopReason.CANCEL)
    assert h.next_report().job_id == "a"
    assert h.ex.running() == {"b"}


def test_close_reports_lost_and_is_idempotent(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    h.ex.start(h.launch("a", "sleep 30"))
    h.ex.start(h.launch("b", "trap '' TERM; echo ready; sleep 30"))
    h.wait_log("b", "ready")
    h.ex.start(h.launch("c", "true", time_limit_s=0))
    t0 = time.monotonic()
    h.ex.close(grace_s=0.5)
    assert time.monotonic() - t0 < 5
    reports = {r.job_id: r for r in (h.reports.get_nowait() for _ in range(3))}
    assert reports["a"].outcome is Outcome.LOST
    assert (reports["b"].outcome, reports["b"].exit_code) == (Outcome.LOST, -9)
    assert reports["c"].outcome in (Outcome.SUCCEEDED, Outcome.LOST)
    assert h.reports.empty()
    assert h.ex.running() == set()
    h.ex.close()
    with pytest.raises(LaunchError, match="closed"):
        h.ex.start(h.launch("d", "true"))


def test_failing_callback_does_not_kill_the_watcher(tmp_path: Path) -> None:
    seen: queue.Queue[str] = queue.Queue()

    def on_exit(report: ExitReport) -> None:
        seen.put(report.job_id)
        if report.job_id == "bad":
            raise RuntimeError("callback bug")

    ex = LocalExecutor(NODES, on_exit)
    h = Harness(tmp_path)
    try:
        ex.start(h.launch("bad", "true"))
        assert seen.get(timeout=WAIT_S) == "bad"
        ex.start(h.launch("good", "true"))
        assert seen.get(timeout=WAIT_S) == "good"
    finally:
        ex.close()
        h.ex.close()


def test_callback_may_start_the_next_job(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    done = threading.Event()

    def on_exit(report: ExitReport) -> None:
        n = int(report.job_id)
        if n < 5:
            ex.start(h.launch(str(n + 1), "true"))
        else:
            done.set()

    ex = LocalExecutor(NODES, on_exit)
    try:
        ex.start(h.launch("1", "true"))
        assert done.wait(WAIT_S)
    finally:
        ex.close()
        h.ex.close()


def test_many_concurrent_short_jobs_reported_once(h: Harness) -> None:
    ids = [f"j{i}" for i in range(50)]
    t0 = time.monotonic()
    for job_id in ids:
        h.ex.start(h.launch(job_id, "true", devices=(("local-0", (int(job_id[1:]) % 4,)),)))
    per_start = (time.monotonic() - t0) / len(ids)
    reports = [h.next_report() for _ in ids]
    assert sorted(r.job_id for r in reports) == sorted(ids)
    assert all(r.outcome is Outcome.SUCCEEDED for r in reports)
    assert h.ex.running() == set()
    assert h.reports.empty()
    assert per_start < 0.05, f"start() took {per_start * 1000:.1f} ms on average"


def test_start_from_many_threads(h: Harness) -> None:
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(10):
                h.ex.start(h.launch(f"t{k}-{i}", "true"))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    reports = [h.next_report() for _ in range(40)]
    assert len({r.job_id for r in reports}) == 40


def _orphan(job_id: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    """A job's process as a killed service left it: its own session, named by its env
    (``Popen`` returns once the child has exec'd, so the environment is readable)."""
    return subprocess.Popen(
        ["sh", "-c", "sleep 60 & wait"],  # a group of two, as jobs with children are
        env={"PATH": os.environ["PATH"], "AXC_JOB_ID": job_id},
        start_new_session=True,
        cwd=tmp_path,
    )


def test_kill_orphans_finds_a_job_without_a_recorded_pid(h: Harness, tmp_path: Path) -> None:
    mine, other = _orphan("job_lost", tmp_path), _orphan("job_other", tmp_path)
    try:
        assert h.ex.kill_orphans({"job_lost": None, "job_never_started": None}) == {"job_lost"}
        assert mine.wait(timeout=WAIT_S) == -signal.SIGKILL
        assert other.poll() is None, "another job's process is left alone"
    finally:
        for p in (mine, other):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_kill_orphans_checks_a_recorded_pid_names_the_job(h: Harness, tmp_path: Path) -> None:
    proc = _orphan("job_a", tmp_path)
    try:
        assert h.ex.kill_orphans({"job_b": proc.pid}) == set(), "a reused pid is not killed"
        assert proc.poll() is None
        assert h.ex.kill_orphans({"job_a": proc.pid}) == {"job_a"}
        assert proc.wait(timeout=WAIT_S) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
