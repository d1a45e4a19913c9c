"""The local engine beyond the contract (tests/executors/test_contract.py): real processes,
their environment and devices, their process trees, and a supervisor that dies."""

from __future__ import annotations

import itertools
import os
import queue
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from axcenter.executors.base import (
    EngineEvent,
    LaunchError,
    NodeInventory,
    Outcome,
    RunEnded,
    RunSpec,
    RunStarted,
    StopReason,
)
from axcenter.executors.local import LocalEngine
from axcenter.executors.logs import LogChunk, LogPolicy
from axcenter.model.jobs import JobOutput

NODES = [
    NodeInventory("local-0", "H100", 4, 8, 64_000, logical=True),
    NodeInventory("local-1", "H100", 4, 8, 64_000, logical=True),
]
WAIT_S = 10.0


class Harness:
    def __init__(
        self,
        tmp: Path,
        nodes: list[NodeInventory] = NODES,
        grace_s: float = 1.0,
        log: LogPolicy = LogPolicy(),
    ) -> None:
        self.tmp = tmp
        self.events: queue.Queue[EngineEvent] = queue.Queue()
        self.engine = LocalEngine(
            nodes,
            self.events.put,
            state_dir=tmp / "engine",
            logs_dir=tmp / "logs",
            grace_s=grace_s,
            log=log,
        )

    def run(
        self,
        job_id: str,
        script: str,
        *,
        limit_s: int = 60,
        devices: tuple[tuple[str, tuple[int, ...]], ...] = (("local-0", (0,)),),
        attempt: int = 1,
        **kw: object,
    ) -> RunSpec:
        spec = RunSpec(
            job_id=job_id,
            attempt=attempt,
            command=("sh", "-c", script),
            workdir=str(kw.pop("workdir", self.tmp / "work" / job_id)),
            env=kw.pop("env", {}),  # type: ignore[arg-type]
            node_devices=devices,
            time_limit_s=limit_s,
            **kw,  # type: ignore[arg-type]
        )
        self.engine.submit(spec)
        return spec

    def end(self, run_id: str | None = None) -> RunEnded:
        deadline = time.monotonic() + WAIT_S
        while True:
            event = self.events.get(timeout=max(deadline - time.monotonic(), 0.01))
            if isinstance(event, RunEnded) and run_id in (None, event.run_id):
                return event

    def log(self, job_id: str) -> str:
        path = self.tmp / "logs" / f"{job_id}.log"
        return path.read_text() if path.exists() else ""

    def wait_log(self, job_id: str, text: str) -> str:
        wait_for(lambda: text in self.log(job_id), f"{text!r} in the log of {job_id}")
        return self.log(job_id)


def wait_for(check: Callable[[], object], what: str, timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def gone(pid: int) -> bool:
    """Dead, or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.engine.close(stop_runs=True, grace_s=0.5)


def test_the_job_sees_its_devices_and_only_its_own_environment(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AXC_TOKEN", "service-secret")  # read when the engine is made
    monkeypatch.setenv("DATABASE_PASSWORD", "service-secret")
    engine = LocalEngine(
        NODES, h.events.put, state_dir=h.tmp / "e2", logs_dir=h.tmp / "logs", grace_s=1
    )
    try:
        engine.submit(
            RunSpec(
                "j1",
                1,
                ("env",),
                str(h.tmp / "w"),
                {"FOO": "bar", "CUDA_VISIBLE_DEVICES": "7", "AXC_JOB_ID": "someone-else"},
                (("local-1", (2, 3)), ("local-0", (0,))),
                60,
                extra_env={"AXC_ARRAY_INDEX": "5"},
            )
        )
        assert h.end().outcome is Outcome.SUCCEEDED
    finally:
        engine.close()
    env = dict(line.split("=", 1) for line in h.log("j1").splitlines() if "=" in line)
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3"  # the batch host's devices, not the user's
    assert (env["AXC_JOB_ID"], env["AXC_RUN_ID"]) == ("j1", "j1.1")  # not the user's
    assert env["AXC_GPUS"] == "local-1:2,local-1:3,local-0:0"
    assert (env["AXC_NODELIST"], env["AXC_NUM_NODES"]) == ("local-1,local-0", "2")
    assert (env["AXC_ARRAY_INDEX"], env["FOO"]) == ("5", "bar")
    assert (env["NVIDIA_VISIBLE_DEVICES"], env["CUDA_DEVICE_ORDER"]) == ("2,3", "PCI_BUS_ID")
    assert "AXC_TOKEN" not in env and "DATABASE_PASSWORD" not in env
    assert env["PATH"] == os.environ["PATH"]


def test_device_ids_translate_cuda_visible_devices(tmp_path: Path) -> None:
    node = NodeInventory("gpu-host", "H100", 2, 8, 1000, logical=False, device_ids=(5, 7))
    h = Harness(tmp_path, [node])
    try:
        h.run("j1", "echo $CUDA_VISIBLE_DEVICES $AXC_GPUS", devices=(("gpu-host", (1,)),))
        started = h.events.get(timeout=WAIT_S)
        assert isinstance(started, RunStarted) and started.devices == "7"
        assert h.end().outcome is Outcome.SUCCEEDED
        assert h.log("j1") == "7 gpu-host:1\n"
    finally:
        h.engine.close()


def test_the_workdir_is_made_and_a_requeued_job_keeps_its_earlier_output(h: Harness) -> None:
    workdir = h.tmp / "deep" / "er" / "wd"
    h.run("j1", "pwd; echo first", workdir=workdir)
    h.end()
    h.run("j1", "echo second", attempt=2, workdir=workdir)
    h.end()
    assert h.log("j1") == f"{workdir}\nfirst\n\n[axcenter] run 2 of job j1\nsecond\n"


def test_a_long_log_rotates_keeping_the_newest_files_and_the_job_goes_on(tmp_path: Path) -> None:
    """A job writing 1 MiB to a log that rotates at 64 KiB keeping 3 files: it succeeds,
    the disk holds at most 4 files of about 64 KiB, and every byte still kept is read at
    its offset in the job's whole output, across the files and over a second run."""
    h = Harness(tmp_path, log=LogPolicy(max_bytes=0, rotate_bytes=64 << 10, keep=3))
    # 16384 numbered lines of 64 bytes: every offset holds a byte we can predict
    script = "seq -f '%063g' 1 16384"
    h.run("j1", script)
    assert h.end().outcome is Outcome.SUCCEEDED
    whole = b"".join(b"%063d\n" % i for i in range(1, 16385))
    files = sorted((h.tmp / "logs").glob("j1.log*"))
    rotated = sorted(int(p.suffix[1:]) for p in files if p.suffix[1:].isdigit())
    assert len(files) == 4 and len(rotated) == 3, files
    sizes = {s: (h.tmp / "logs" / f"j1.log.{s}").stat().st_size for s in rotated}
    for a, b in itertools.pairwise(rotated):
        assert a + sizes[a] == b  # the files follow each other without a gap
    assert all(size == 64 << 10 for size in sizes.values()), sizes
    live = (h.tmp / "logs" / "j1.log").read_bytes()
    assert rotated[-1] + sizes[rotated[-1]] + len(live) == len(whole)
    oldest = rotated[0]
    chunk = h.engine.read_log("j1", 0, 1 << 20)
    assert chunk == LogChunk(oldest, whole[oldest:])
    assert h.engine.read_log("j1", len(whole) - 100, 50) == LogChunk(
        len(whole) - 100, whole[-100:-50]
    )
    # a second run of the job goes on in the same stream, after its header
    h.run("j1", "echo second", attempt=2)
    assert h.end().outcome is Outcome.SUCCEEDED
    tail = h.engine.read_log("j1", len(whole), 1000)
    assert tail == LogChunk(len(whole), b"\n[axcenter] run 2 of job j1\nsecond\n")


def test_discarded_output_makes_no_file(h: Harness) -> None:
    h.run("j1", "echo lost", output=JobOutput.DISCARD)
    assert h.end().outcome is Outcome.SUCCEEDED
    assert not (h.tmp / "logs" / "j1.log").exists()
    assert h.engine.read_log("j1", 0, 10) is None


def test_sigterm_ignored_gets_sigkill_after_the_grace(h: Harness) -> None:
    h.run("j1", "trap '' TERM; echo ready; sleep 30")
    h.wait_log("j1", "ready")
    t0 = time.monotonic()
    h.engine.stop("j1.1", StopReason.CANCEL, 0.5)
    ended = h.end()
    assert (ended.outcome, ended.exit_code) == (Outcome.CANCELLED, -9)
    assert 0.4 < time.monotonic() - t0 < 5


def test_a_time_limit_wins_over_a_clean_exit_on_sigterm(h: Harness) -> None:
    h.run("j1", "trap 'exit 0' TERM; echo ready; sleep 30 & wait", limit_s=1)
    ended = h.end()
    assert (ended.outcome, ended.exit_code) == (Outcome.TIMED_OUT, 0)


def test_nothing_the_job_started_outlives_it_not_even_what_left_its_group(h: Harness) -> None:
    """Background children, and a grandchild that left the job's session (setsid): the
    supervisor is their subreaper and kills them when the job ends."""
    h.run("j1", "sleep 100 & echo child=$!; setsid sleep 100 & echo escaped=$!; sleep 0.2")
    assert h.end().outcome is Outcome.SUCCEEDED
    pids = dict(line.split("=") for line in h.log("j1").split())
    for pid in pids.values():
        wait_for(lambda pid=pid: gone(int(pid)), f"{pid} to be killed", timeout=5)


def test_launch_errors_name_the_cause(h: Harness) -> None:
    (h.tmp / "file").write_text("")
    with pytest.raises(LaunchError, match="is not a directory"):
        h.run("j1", "true", workdir=h.tmp / "file")
    with pytest.raises(LaunchError, match="unknown node 'nope'"):
        h.run("j2", "true", devices=(("nope", (0,)),))
    with pytest.raises(LaunchError, match="node local-0 has no device 9"):
        h.run("j3", "true", devices=(("local-0", (9,)),))


def test_a_run_is_started_once_for_its_run_id(h: Harness) -> None:
    spec = h.run("j1", "echo once >> ../count; sleep 30")
    count = h.tmp / "work" / "count"
    wait_for(count.exists, "the job to start")
    assert h.engine.submit(spec) == spec.run_id  # still running: the same run, not a new one
    h.engine.stop(spec.run_id, StopReason.CANCEL, 0.1)
    h.end()
    with pytest.raises(LaunchError, match="submitted before"):
        h.engine.submit(spec)
    assert count.read_text() == "once\n"


def test_a_supervisor_killed_without_a_record_ends_its_run_as_lost_after_killing_it(
    h: Harness,
) -> None:
    spec = h.run("j1", "sleep 100 & echo child=$!; exec sleep 100")
    started = h.events.get(timeout=WAIT_S)
    assert isinstance(started, RunStarted)
    child = int(h.wait_log("j1", "child=").split("=")[1])
    supervisor, job_pid, _ = (
        (h.tmp / "engine" / "runs" / spec.run_id / "started").read_text().split()
    )
    os.kill(int(supervisor), signal.SIGKILL)
    ended = h.end()
    assert ended.outcome is Outcome.LOST and "without a record" in ended.message
    assert ended.started_at == started.started_at
    assert gone(int(job_pid)) and gone(child), "proven dead before it is reported"


def test_recover_adopts_a_live_supervisor_and_ends_a_dead_one(tmp_path: Path) -> None:
    first = Harness(tmp_path)
    alive = first.run("alive", "sleep 100")
    dead = first.run("dead", "sleep 100")
    first.engine.close()  # the service goes away; both runs go on
    dead_dir = tmp_path / "engine" / "runs" / dead.run_id
    supervisor, job_pid, _ = (dead_dir / "started").read_text().split()
    os.kill(int(supervisor), signal.SIGKILL)  # and one supervisor dies with it
    wait_for(lambda: gone(int(supervisor)), "the supervisor to die")

    again = Harness(tmp_path)
    try:
        found = again.engine.recover()
        assert list(found.running) == [alive.run_id]
        [lost] = found.ended
        assert (lost.run_id, lost.outcome) == (dead.run_id, Outcome.LOST)
        assert gone(int(job_pid))
        again.engine.acknowledge([lost.run_id])
        assert not dead_dir.exists()
        again.engine.stop(alive.run_id, StopReason.CANCEL, 0.5)
        assert again.end(alive.run_id).outcome is Outcome.CANCELLED
    finally:
        again.engine.close(stop_runs=True, grace_s=0.5)
