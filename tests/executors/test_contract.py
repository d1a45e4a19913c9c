"""The execution contract (docs/engines.md): one suite every engine must pass.

Each engine comes with a driver that turns a behaviour ("exits with 3", "runs until
stopped", "cannot be launched") into a run it executes: a real command for the local
engine, the fake engine's controls for the fake one, real jobs on a real Slurm cluster
(``scripts/slurm``, started once per session) for the Slurm engine, as a real unix
account.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from axcenter.executors.base import (
    Engine,
    EngineEvent,
    LaunchError,
    NodeInventory,
    Outcome,
    RunAs,
    RunEnded,
    RunSpec,
    RunStarted,
    StopReason,
)
from axcenter.executors.fake import FakeEngine
from axcenter.executors.local import LocalEngine
from axcenter.executors.logs import LogChunk
from axcenter.executors.slurm import SlurmEngine, SlurmOptions
from tests.slurm.cluster import PARTITION, Cluster

NODES = [NodeInventory("n-0", "H100", 4, 8, 64_000, logical=True)]
GRACE_S = 0.5


@dataclass
class Driver:
    """An engine under test, its events, and how to make it run a behaviour."""

    make: Callable[[Callable[[EngineEvent], None]], Engine]
    workdir: Path
    events: queue.Queue[EngineEvent] = field(default_factory=queue.Queue)
    backlog: list[EngineEvent] = field(default_factory=list)
    engine: Engine | None = None
    #: after submit: make the run behave (the fake needs to be told; real runs just run)
    behave: Callable[[Engine, RunSpec, str], None] = lambda engine, run, how: None
    command_for: Callable[[str], tuple[str, ...]] = lambda how: ("true",)
    node: str = "n-0"
    run_as: RunAs | None = None

    def open(self) -> Engine:
        self.engine = self.make(self.events.put)
        return self.engine

    def run(self, job_id: str, how: str, *, limit_s: int = 60, attempt: int = 1) -> RunSpec:
        return RunSpec(
            job_id=job_id,
            attempt=attempt,
            command=self.command_for(how),
            workdir=str(self.workdir / job_id),
            env={"USER_VAR": "x"},
            node_devices=((self.node, (1,)),),
            time_limit_s=limit_s,
            run_as=self.run_as,
        )

    def submit(self, job_id: str, how: str, **kw: int) -> RunSpec:
        assert self.engine is not None
        run = self.run(job_id, how, **kw)
        self.engine.submit(run)
        self.behave(self.engine, run, how)
        return run

    def next(self, kind: type, run_id: str | None = None, timeout: float = 15) -> EngineEvent:
        """The next event of ``kind`` (for ``run_id``); others wait for their turn."""

        def wanted(event: EngineEvent) -> bool:
            return isinstance(event, kind) and run_id in (None, getattr(event, "run_id", None))

        for event in self.backlog:
            if wanted(event):
                self.backlog.remove(event)
                return event
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if wanted(event):
                return event
            self.backlog.append(event)
        raise AssertionError(f"no {kind.__name__} for {run_id} within {timeout} s")


COMMANDS = {
    "exit0": ("sh", "-c", "echo hello; exit 0"),
    "exit3": ("sh", "-c", "exit 3"),
    "runs": ("sleep", "60"),
    "traps": ("sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"),
    "unlaunchable": ("/nonexistent/program",),
}


def _local(tmp: Path, request: pytest.FixtureRequest) -> Driver:
    return Driver(
        make=lambda on_event: LocalEngine(
            NODES, on_event, state_dir=tmp / "engine", logs_dir=tmp / "logs", grace_s=GRACE_S
        ),
        workdir=tmp / "work",
        command_for=lambda how: COMMANDS[how],
    )


def _fake(tmp: Path, request: pytest.FixtureRequest) -> Driver:
    def behave(engine: Engine, run: RunSpec, how: str) -> None:
        assert isinstance(engine, FakeEngine)
        if how == "exit0":
            engine.logs[run.job_id] = b"hello\n"
            engine.end(run.run_id, 0)
        elif how == "exit3":
            engine.end(run.run_id, 3)

    def make(on_event: Callable[[EngineEvent], None]) -> Engine:
        engine = FakeEngine(NODES, on_event)
        original = engine.submit

        def submit(run: RunSpec) -> str:
            if run.command == ("/nonexistent/program",):
                engine.fail_next("command not found: /nonexistent/program")
            return original(run)

        engine.submit = submit  # type: ignore[method-assign]
        return engine

    return Driver(
        make=make,
        workdir=tmp / "work",
        behave=behave,
        command_for=lambda how: ("/nonexistent/program",) if how == "unlaunchable" else (how,),
    )


def _slurm(tmp: Path, request: pytest.FixtureRequest) -> Driver:
    cluster: Cluster = request.getfixturevalue("slurm_cluster")
    account: RunAs = request.getfixturevalue("slurm_account")
    shared: Path = request.getfixturevalue("slurm_shared")
    options = SlurmOptions(
        partition=PARTITION, slurm_conf=cluster.slurm_conf, poll_s=0.2, grace_s=GRACE_S
    )
    return Driver(
        make=lambda on_event: SlurmEngine(
            options, on_event, state_dir=tmp / "engine", logs_dir=shared / "logs"
        ),
        workdir=shared / "work",
        command_for=lambda how: COMMANDS[how],
        node="n2",
        run_as=account,
    )


ENGINES = {"local": _local, "fake": _fake, "slurm": _slurm}


@pytest.fixture(params=list(ENGINES))
def d(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Driver]:
    driver = ENGINES[request.param](tmp_path, request)
    driver.open()
    yield driver
    assert driver.engine is not None
    driver.engine.close(stop_runs=True, grace_s=GRACE_S)


def test_a_run_reports_its_real_start_and_its_end(d: Driver) -> None:
    before = time.time()
    run = d.submit("job_a", "exit3")
    started = d.next(RunStarted, run.run_id)
    ended = d.next(RunEnded, run.run_id)
    assert isinstance(started, RunStarted) and isinstance(ended, RunEnded)
    assert before <= started.started_at <= ended.ended_at <= time.time()
    assert (ended.outcome, ended.exit_code) == (Outcome.FAILED, 3)
    assert ended.started_at == started.started_at
    assert ended.message == "exit code 3"


def test_output_is_read_through_the_engine(d: Driver) -> None:
    run = d.submit("job_a", "exit0")
    assert isinstance(d.next(RunEnded, run.run_id), RunEnded)
    assert d.engine is not None
    assert d.engine.read_log("job_a", 0, 100) == LogChunk(0, b"hello\n")
    assert d.engine.read_log("job_a", 2, 2) == LogChunk(2, b"ll")
    assert d.engine.read_log("job_nobody", 0, 100) is None


def test_a_stop_ends_the_run_with_its_reason(d: Driver) -> None:
    assert d.engine is not None
    cancelled, preempted = d.submit("job_c", "runs"), d.submit("job_p", "runs")
    for run in (cancelled, preempted):
        d.next(RunStarted, run.run_id)
    d.engine.stop(cancelled.run_id, StopReason.CANCEL, GRACE_S)
    d.engine.stop(preempted.run_id, StopReason.PREEMPT, GRACE_S)
    ends = {r.run_id: d.next(RunEnded, r.run_id) for r in (cancelled, preempted)}
    assert ends[cancelled.run_id].outcome is Outcome.CANCELLED  # type: ignore[union-attr]
    assert ends[preempted.run_id].outcome is Outcome.PREEMPTED  # type: ignore[union-attr]


def test_the_first_stop_reason_wins_and_unknown_runs_are_ignored(d: Driver) -> None:
    assert d.engine is not None
    run = d.submit("job_a", "traps")
    d.next(RunStarted, run.run_id)
    d.engine.stop("job_nobody.1", StopReason.CANCEL, GRACE_S)  # no error
    d.engine.stop(run.run_id, StopReason.PREEMPT, GRACE_S)
    d.engine.stop(run.run_id, StopReason.CANCEL, GRACE_S)
    ended = d.next(RunEnded, run.run_id)
    assert ended.outcome is Outcome.PREEMPTED  # type: ignore[union-attr]
    d.engine.stop(run.run_id, StopReason.CANCEL, GRACE_S)  # ended: no error, no event
    assert not [e for e in _drain(d) if isinstance(e, RunEnded)]


def test_a_run_that_cannot_start_is_refused_with_the_cause(d: Driver) -> None:
    assert d.engine is not None
    with pytest.raises(LaunchError, match="command not found: /nonexistent/program"):
        d.engine.submit(d.run("job_a", "unlaunchable"))
    assert _drain(d) == [], "a refused run reports nothing"


def test_each_end_is_reported_once_among_many(d: Driver) -> None:
    runs = [d.submit(f"job_{i}", "exit0" if i % 2 else "exit3") for i in range(20)]
    ends = [d.next(RunEnded) for _ in runs]
    assert sorted(e.run_id for e in ends) == sorted(r.run_id for r in runs)
    time.sleep(0.2)  # a duplicate would arrive now; none may
    assert not [e for e in _drain(d) if isinstance(e, RunEnded)]


def test_submissions_from_many_threads(d: Driver) -> None:
    assert d.engine is not None
    errors: list[BaseException] = []

    def submit(i: int) -> None:
        try:
            d.submit(f"job_{i}", "exit0")
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({d.next(RunEnded).run_id for _ in range(16)}) == 16


def test_runs_outlive_a_detached_engine_and_are_recovered(d: Driver) -> None:
    assert d.engine is not None
    running, ending = d.submit("job_r", "runs"), d.submit("job_e", "exit3")
    first = d.next(RunStarted, running.run_id)
    d.next(RunEnded, ending.run_id)
    d.engine.close()  # the control plane goes away; the run does not
    again = d.engine if isinstance(d.engine, FakeEngine) else d.open()
    found = again.recover()
    assert list(found.running) == [running.run_id]
    assert found.running[running.run_id].started_at == pytest.approx(
        first.started_at  # type: ignore[union-attr]
    )
    [ended] = found.ended  # not acknowledged yet: reported again, with its real times
    assert (ended.run_id, ended.exit_code) == (ending.run_id, 3)
    again.acknowledge([ending.run_id])
    assert again.recover().ended == []
    again.stop(running.run_id, StopReason.CANCEL, GRACE_S)
    assert d.next(RunEnded, running.run_id).outcome is Outcome.CANCELLED  # type: ignore[union-attr]


def test_close_with_stop_runs_ends_them_as_lost(d: Driver) -> None:
    assert d.engine is not None
    run = d.submit("job_a", "runs")
    d.next(RunStarted, run.run_id)
    d.engine.close(stop_runs=True, grace_s=GRACE_S)
    ended = d.next(RunEnded, run.run_id)
    assert ended.outcome is Outcome.LOST  # type: ignore[union-attr]


def test_a_time_limit_ends_the_run_as_timed_out(d: Driver) -> None:
    assert d.engine is not None
    run = d.submit("job_a", "runs", limit_s=1)
    if isinstance(d.engine, FakeEngine):
        d.engine.end(run.run_id, -15, cause="time_limit")
    ended = d.next(RunEnded, run.run_id)
    assert ended.outcome is Outcome.TIMED_OUT  # type: ignore[union-attr]
    assert ended.message.startswith("killed after time limit 1s")  # type: ignore[union-attr]


def _drain(d: Driver) -> list[EngineEvent]:
    out = list(d.backlog)
    while not d.events.empty():
        out.append(d.events.get_nowait())
    return out
