"""An engine that runs nothing and does what its test tells it, as httpx ships a mock
transport: for testing the control loop against every ordering of events an engine may
produce (late, duplicated, lost, an end before its start), and for trying a center's
configuration without running jobs (``engine: fake`` in a pool).

By default a submitted run starts at once and runs until the test ends it, and a stop
ends it with the stop's outcome. With ``staging`` set it takes staged runs
(``RunSpec.after``) as Slurm does: such a run starts once the runs it follows have
ended. Each of those can be turned off, and the test then
drives the run: ``start``, ``end``, ``lose``, ``duplicate_last``, ``set_nodes``. With
``hold_events`` set, events are kept until ``release()``, in order or shuffled by the
test. ``fail_next(message)`` makes the next submissions fail. ``gpu_usage[job_id]``:
the GPU utilisation its runs report at their end, as an engine with real GPUs would.

A step (``run_step``) of a live run is recorded in ``steps`` and "runs" at once: it
prints one line naming itself and exits with ``step_exit_code``; with ``hold_steps``
set it runs until it is cancelled or its run ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from axcenter.executors.base import (
    ENDED_WITH_JOB,
    EngineEvent,
    EventCallback,
    GpuUsage,
    LaunchError,
    NodeInventory,
    NodesChanged,
    Outcome,
    Recovery,
    RunEnded,
    RunSpec,
    RunStarted,
    StepEnded,
    StepOutput,
    StepSpec,
    StopReason,
    outcome_of,
)
from axcenter.executors.logs import LogChunk

__all__ = ["FakeEngine", "FakeRun"]


@dataclass(slots=True)
class FakeRun:
    spec: RunSpec
    ref: str
    started_at: float | None = None
    ended: RunEnded | None = None
    stops: list[tuple[StopReason, float]] = field(default_factory=list)
    acknowledged: bool = False


class FakeEngine:
    def __init__(
        self,
        nodes: Sequence[NodeInventory],
        on_event: EventCallback,
        *,
        name: str = "fake",
        auto_start: bool = True,
        auto_stop: bool = True,
        staging: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.nodes = list(nodes)
        self.on_event = on_event
        self.auto_start = auto_start
        self.auto_stop = auto_stop
        self.staging = staging
        self.clock = clock
        self.hold_events = False
        self.held: list[EngineEvent] = []
        self.runs: dict[str, FakeRun] = {}
        self.logs: dict[str, bytes] = {}
        #: job id -> what its runs' ends report of their GPUs' use (tests)
        self.gpu_usage: dict[str, GpuUsage] = {}
        self.closed_with: bool | None = None  # stop_runs of close(), once closed
        self._failures: list[str] = []
        self._lock = threading.Lock()
        self._last: EngineEvent | None = None
        self.steps: list[StepSpec] = []
        self.step_exit_code = 0
        self.hold_steps = False
        self._run_ended = threading.Condition()

    # -- the contract ----------------------------------------------------------------

    def inventory(self) -> list[NodeInventory]:
        return list(self.nodes)

    def submit(self, run: RunSpec) -> str:
        with self._lock:
            if self.closed_with is not None:
                raise LaunchError("the fake engine is closed")
            if self._failures:
                raise LaunchError(self._failures.pop(0))
            known = self.runs.get(run.run_id)
            if known is not None:
                return known.ref  # idempotent
            if run.after and not self.staging:
                raise LaunchError("the fake engine takes no staged runs")
            fake = FakeRun(run, f"{self.name}-{len(self.runs) + 1}")
            self.runs[run.run_id] = fake
        if self.auto_start and not self._follows(fake):
            self.start(run.run_id)
        return fake.ref

    def stop(self, run_id: str, reason: StopReason, grace_s: float) -> None:
        run = self.runs.get(run_id)
        if run is None or run.ended is not None:
            return
        run.stops.append((reason, grace_s))
        if self.auto_stop and len(run.stops) == 1:
            self.end(run_id, cause=reason.value, exit_code=-15)

    def recover(self) -> Recovery:
        running = {
            r.spec.run_id: RunStarted(r.spec.run_id, r.ref, r.started_at)
            for r in self.runs.values()
            if r.ended is None and r.started_at is not None
        }
        ended = [r.ended for r in self.runs.values() if r.ended and not r.acknowledged]
        queued = frozenset(
            r.spec.run_id for r in self.runs.values() if r.ended is None and r.started_at is None
        )
        return Recovery(running=running, ended=ended, queued=queued)

    def acknowledge(self, run_ids: Sequence[str]) -> None:
        for run_id in run_ids:
            run = self.runs.get(run_id)
            if run is not None and run.ended is not None:
                run.acknowledged = True

    def read_log(self, job_id: str, offset: int, limit: int) -> LogChunk | None:
        data = self.logs.get(job_id)
        return None if data is None else LogChunk(offset, data[offset : offset + limit])

    def run_step(self, step: StepSpec, output: StepOutput, cancel: threading.Event) -> StepEnded:
        run = self.runs.get(step.run.run_id)
        if run is None or run.started_at is None or run.ended is not None:
            raise LaunchError(f"job {step.run.job_id} is not running (its allocation has ended)")
        self.steps.append(step)
        started = self.clock()
        output(f"fake step {step.step_id}: {' '.join(step.command)}\n".encode())
        if not self.hold_steps:
            code = self.step_exit_code
            outcome, message = outcome_of(None, code, 0)
            return StepEnded(outcome, code, started, self.clock(), message)
        with self._run_ended:
            while not cancel.is_set() and run.ended is None:
                self._run_ended.wait(0.05)
        outcome, message = outcome_of("cancel" if cancel.is_set() else None, -9, 0)
        if not cancel.is_set():
            message = f"{ENDED_WITH_JOB} ({message})"
        return StepEnded(outcome, -9, started, self.clock(), message)

    def stages(self, node: str) -> bool:
        return self.staging

    def close(self, *, stop_runs: bool = False, grace_s: float | None = None) -> None:
        self.closed_with = stop_runs
        if stop_runs:
            for run_id, run in list(self.runs.items()):
                if run.ended is None:
                    self.end(run_id, cause="shutdown", exit_code=-15)

    # -- what a test drives ------------------------------------------------------------

    def fail_next(self, message: str, count: int = 1) -> None:
        """The next ``count`` submissions raise ``LaunchError(message)``."""
        self._failures += [message] * count

    def start(self, run_id: str, at: float | None = None) -> None:
        run = self.runs[run_id]
        run.started_at = self.clock() if at is None else at
        self._emit(RunStarted(run_id, run.ref, run.started_at, "fake"))

    def end(
        self,
        run_id: str,
        exit_code: int | None = 0,
        *,
        cause: str | None = None,
        at: float | None = None,
    ) -> RunEnded:
        """End the run as it would end with ``exit_code`` after ``cause`` (a stop
        reason's value, ``time_limit``, or None)."""
        run = self.runs[run_id]
        outcome, message = outcome_of(cause, exit_code, run.spec.time_limit_s)
        ended = RunEnded(
            run_id,
            run.ref,
            outcome,
            exit_code,
            run.started_at,
            self.clock() if at is None else at,
            message,
            self.gpu_usage.get(run.spec.job_id),
        )
        run.ended = ended
        with self._run_ended:
            self._run_ended.notify_all()
        self._emit(ended)
        self._start_followers(run_id)
        return ended

    def lose(self, run_id: str, message: str = "lost: the node went away") -> RunEnded:
        run = self.runs[run_id]
        ended = RunEnded(run_id, run.ref, Outcome.LOST, None, run.started_at, self.clock(), message)
        run.ended = ended
        self._emit(ended)
        self._start_followers(run_id)
        return ended

    def duplicate_last(self) -> None:
        """Deliver the last event once more, as engines that retry do."""
        assert self._last is not None, "no event yet"
        self._emit(self._last)

    def set_nodes(self, nodes: Sequence[NodeInventory]) -> None:
        self.nodes = list(nodes)
        self._emit(NodesChanged(tuple(nodes)))

    def release(self, order: Sequence[int] | None = None) -> None:
        """Deliver the held events, in the order given (indices into ``held``)."""
        held, self.held = self.held, []
        for i in order if order is not None else range(len(held)):
            self.on_event(held[i])

    def _follows(self, run: FakeRun) -> bool:
        """Whether a run it was staged behind has not ended yet."""
        return any(
            (before := self.runs.get(r)) is not None and before.ended is None
            for r in run.spec.after
        )

    def _start_followers(self, run_id: str) -> None:
        """Start the staged runs waiting for ``run_id`` and nothing else (``auto_start``)."""
        if not self.auto_start:
            return
        for other in list(self.runs.values()):
            waiting = other.started_at is None and other.ended is None
            if waiting and run_id in other.spec.after and not self._follows(other):
                self.start(other.spec.run_id)

    def _emit(self, event: EngineEvent) -> None:
        self._last = event
        if self.hold_events:
            self.held.append(event)
        else:
            self.on_event(event)
