"""The execution contract: what the control loop may ask of any engine, and what an engine
tells it back (docs/engines.md).

The control loop decides *what* runs *where* and *when*, and charges for it; an engine
(the local one, Slurm, later Ray or Kubernetes) makes a decision real and reports what
really happened. Shaped after slurmctld's view of its nodes, not after a local process:

- ``submit(run)`` hands one run to the engine and returns an engine reference (a string:
  a Slurm job id, a local run directory). ``run.run_id`` is the idempotency key: one
  run of one job (``JOB.ATTEMPT``). The engine may queue it; submit may block (it is
  called off the loop thread) but never waits for the job itself.
- The engine reports through the ``on_event`` callback given to its factory:
  ``RunStarted`` with the real start time and devices, ``RunEnded`` with the real end
  time, exit status and (again) the real start, or none if the run never started;
  ``NodesChanged`` whenever what it offers changes. Events may come late, twice, or an
  end before its start: the control loop records each run's end exactly once.
- ``stop(run_id, reason, grace_s)``: SIGTERM (or the engine's equivalent), SIGKILL after
  the grace period; the first reason wins.
- ``recover()`` after a restart of the control plane: what the engine still runs or
  queues (now watched again) and which runs ended while nobody listened, with their
  real times. A run the engine cannot account for is ended as ``LOST`` only once its
  processes are proven gone. ``acknowledge(run_ids)`` tells it the ends are recorded
  and may be forgotten.
- ``read_log(job_id, offset, limit)``: the job's output, through the engine.
- ``run_step(step, output, cancel)``: run one more command inside a live run's
  allocation (Slurm's ``srun`` in a batch job or under ``salloc``): as the run's own
  user, confined as the run is (its control group, its devices), with its environment
  and ``AXC_STEP_ID``. It blocks until the step ends, handing the step's output to
  ``output`` as it comes; setting ``cancel`` stops it (SIGTERM, SIGKILL after the grace
  period). A step ends when its run ends, and when the service that runs it dies (as a
  step ends with its ``srun``). Raises ``LaunchError`` when the run is not live here.
- ``close(stop_runs=False)``: the control plane goes away; runs keep running unless the
  operator asked to stop them.
- ``stages(node)``: whether the engine can be handed a run on ``node`` ahead of time, to
  start on its own once the runs in ``RunSpec.after`` have ended, however they end (Slurm's
  ``--dependency=afterany``). The control loop stages a waiting job onto the devices of
  a job about to end only where this holds, so that the engine starts it as soon as it
  would start a job of its own queue (docs/engines.md, "Staged runs"). An engine that
  cannot answers False and is never given ``after``.

Outcome rules shared by all engines:

========================================  =============
what happened                              outcome
========================================  =============
exit code 0                                SUCCEEDED
any other exit (code or signal)            FAILED
``stop(CANCEL)``                           CANCELLED
``stop(PREEMPT)``                          PREEMPTED
``stop(SHUTDOWN)``, lost by the engine     LOST (the control loop requeues it)
time limit exceeded                        TIMED_OUT
more memory used than asked (OOM killed)   FAILED ("out of memory: ...")
more output than the log may hold          FAILED ("log limit: ...")
========================================  =============

The first cause wins: once a run is being stopped or has hit its time limit, its outcome
is fixed, even if the process then exits 0 (it may trap SIGTERM, or finish just before
the signal lands). The user's or operator's intent is what the record must show.
"""

from __future__ import annotations

import os
import selectors
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from axcenter.executors.logs import LogChunk
from axcenter.model.jobs import JobOutput

__all__ = [
    "ENDED_WITH_JOB",
    "IDLE_UTIL_PCT",
    "Engine",
    "EngineEvent",
    "EngineFactory",
    "EventCallback",
    "GpuUsage",
    "LaunchError",
    "NodeInventory",
    "NodesChanged",
    "Outcome",
    "Recovery",
    "RunAs",
    "RunEnded",
    "RunSpec",
    "RunStarted",
    "StepEnded",
    "StepOutput",
    "StepSpec",
    "StopReason",
    "describe_status",
    "outcome_of",
    "pump_step_output",
    "run_id_of",
]


@dataclass(frozen=True, slots=True)
class NodeInventory:
    """One node an engine offers, with ``gpu_count`` devices numbered 0..gpu_count-1.

    ``device_ids`` maps those numbers to the real device indices when they differ
    (``device_ids[i]`` is the real index of device ``i``); empty means "the same
    numbers", which is the usual case and always the case for logical GPUs. ``up`` is
    False for a node the engine still knows but cannot run on (down, drained).
    """

    name: str
    gpu_type: str
    gpu_count: int
    cpus: int
    memory_mb: int
    logical: bool  # True = logical GPUs, no real device behind them
    device_ids: tuple[int, ...] = ()
    up: bool = True

    def real_device(self, device: int) -> int:
        """The device index to hand to CUDA for scheduler device ``device``."""
        return self.device_ids[device] if self.device_ids else device


def run_id_of(job_id: str, attempt: int) -> str:
    """The idempotency key of one run: ``JOB.ATTEMPT``."""
    return f"{job_id}.{attempt}"


@dataclass(frozen=True, slots=True)
class RunAs:
    """The unix identity a run executes as (docs/security.md): the job's user, with the
    group of the job's project as its primary group, so files it writes in the
    project's directory belong to the project. An engine never runs a job as root."""

    user: str  # the unix account's name
    uid: int
    gid: int  # primary group: the project's group
    groups: tuple[int, ...] = ()  # supplementary: the user's own group, other projects
    home: str = ""


@dataclass(frozen=True, slots=True)
class RunSpec:
    """Everything an engine needs to run one attempt of one job."""

    job_id: str
    attempt: int  # 1 for the first run; each requeue runs the next
    command: tuple[str, ...]
    workdir: str  # absolute; the engine creates it if missing
    env: Mapping[str, str]  # the user's environment
    # ((node_name, (dev, ...)), ...); the first entry is the batch host
    node_devices: tuple[tuple[str, tuple[int, ...]], ...]
    time_limit_s: int  # <= 0 means no limit
    output: JobOutput = JobOutput.LOG
    extra_env: Mapping[str, str] = field(default_factory=dict)  # e.g. AXC_ARRAY_INDEX
    #: who it runs as; None only in single-user mode: the service's own (non-root) account
    run_as: RunAs | None = None
    cpus: int = 1  # per node: the run's CPU share (cgroup)
    memory_mb: int = 0  # per node: the run's memory limit (cgroup); 0 = none
    user: str = ""  # axcenter's names of its owner and project (job names, comments)
    project: str = ""
    #: Slurm's --output/--error, expanded (``model.logpath``), relative to ``workdir``:
    #: opened by the job's user, so the job's output goes to its own files instead of
    #: the log; None: the log. An error file without an output file is not given.
    output_file: str | None = None
    error_file: str | None = None
    #: a batch script submitted with the job: the engine runs this text (written where
    #: only the job's user may read it) as ``command[0]``, with ``command[1:]``
    script: str | None = None
    #: runs of this engine (run ids) that must end, however they end, before this one
    #: starts: its devices are theirs until then (``Engine.stages``); a run the engine
    #: no longer knows has ended
    after: tuple[str, ...] = ()

    @property
    def run_id(self) -> str:
        return run_id_of(self.job_id, self.attempt)


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One step inside the allocation of a live run: ``command`` as the run's user, in
    its confinement, with its devices and environment, plus ``env`` (the caller's
    variables, which cannot override axcenter's)."""

    run: RunSpec
    step: int  # 0, 1, ... within the job: the step is ``JOB.STEP``, as Slurm names them
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def step_id(self) -> str:
        return f"{self.run.job_id}.{self.step}"


StepOutput = Callable[[bytes], None]
#: how a step's message begins when its run's end killed it
ENDED_WITH_JOB = "ended with its job"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    PREEMPTED = "preempted"
    LOST = "lost"  # the engine lost it or was shut down with it: the control loop requeues


class StopReason(StrEnum):
    CANCEL = "cancel"
    PREEMPT = "preempt"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    ref: str
    started_at: float  # epoch seconds, as the engine saw it
    devices: str = ""  # what the run was given, as the engine names it (CUDA ids)


@dataclass(frozen=True, slots=True)
class GpuUsage:
    """How busy a run kept its GPUs: a summary of samples (one per GPU per sampling),
    not the samples. Engines that can see real GPUs report it with the run's end (the
    local engine samples ``nvidia-smi``; the Slurm engine's hook is ``gpu_usage`` on its
    ``RunEnded``, e.g. from ``sacct``'s ``gres/gpuutil``); None where nothing was seen."""

    samples: int  # GPU-samples: GPUs x samplings
    util_mean_pct: int  # mean utilisation, rounded half up
    util_max_pct: int
    memory_max_mib: int
    #: GPU-samples at or below ``IDLE_UTIL_PCT``: GPUs held and doing nothing
    idle_samples: int
    sample_s: float  # seconds between samplings

    @property
    def idle_share(self) -> float:
        return self.idle_samples / self.samples if self.samples else 0.0


#: a GPU sampled at or below this utilisation (percent) is counted idle
IDLE_UTIL_PCT = 5


@dataclass(frozen=True, slots=True)
class RunEnded:
    run_id: str
    ref: str
    outcome: Outcome
    exit_code: int | None  # negative = killed by that signal (as subprocess does)
    started_at: float | None  # None: it never started (costs nothing)
    ended_at: float
    message: str  # human readable, e.g. "exit code 3", "killed after time limit 2s"
    gpu_usage: GpuUsage | None = None  # where the engine saw the run's GPUs


@dataclass(frozen=True, slots=True)
class NodesChanged:
    """The engine's whole current inventory, after a node came, went or changed."""

    nodes: tuple[NodeInventory, ...]


@dataclass(frozen=True, slots=True)
class StepEnded:
    """How a step ended: SUCCEEDED, FAILED or CANCELLED (its caller stopped it), or
    LOST (the service running it stopped), with the real times."""

    outcome: Outcome
    exit_code: int | None  # negative = killed by that signal
    started_at: float | None  # None: it never started
    ended_at: float
    message: str


EngineEvent = RunStarted | RunEnded | NodesChanged
EventCallback = Callable[[EngineEvent], None]


@dataclass(frozen=True, slots=True)
class Recovery:
    """What an engine found after a restart of the control plane."""

    running: Mapping[str, RunStarted]  # run id -> its start, watched again
    ended: Sequence[RunEnded]  # ended and not yet acknowledged
    queued: frozenset[str] = frozenset()  # accepted, not started yet (run ids)


class LaunchError(Exception):
    """``submit()`` could not start the run; the message names the cause in the user's terms."""


class Engine(Protocol):
    """What the control loop needs from an engine (see the module docstring)."""

    def inventory(self) -> list[NodeInventory]: ...

    def submit(self, run: RunSpec) -> str:
        """Hand the run to the engine; returns its reference. Raises ``LaunchError``."""
        ...

    def stop(self, run_id: str, reason: StopReason, grace_s: float) -> None:
        """Ask a run to end; no-op if unknown or ended."""
        ...

    def recover(self) -> Recovery: ...

    def acknowledge(self, run_ids: Sequence[str]) -> None: ...

    def read_log(self, job_id: str, offset: int, limit: int) -> LogChunk | None:
        """The job's output from ``offset`` (or from the oldest byte kept, if the log
        rotated those away: ``executors/logs.py``); None if this engine has none."""
        ...

    def run_step(self, step: StepSpec, output: StepOutput, cancel: threading.Event) -> StepEnded:
        """Run ``step`` to its end, its output to ``output``; ``cancel`` stops it. Raises
        ``LaunchError`` when it cannot start (the run is not live here)."""
        ...

    def close(self, *, stop_runs: bool = False, grace_s: float | None = None) -> None:
        """Detach (runs go on) or, with ``stop_runs``, stop them and report their ends."""
        ...

    def stages(self, node: str) -> bool:
        """Whether a run on ``node`` may be handed over with ``RunSpec.after``."""
        ...


EngineFactory = Callable[[EventCallback], Engine]

_STOP_OUTCOME = {
    "cancel": Outcome.CANCELLED,
    "preempt": Outcome.PREEMPTED,
    "shutdown": Outcome.LOST,
    "time_limit": Outcome.TIMED_OUT,
}


def describe_status(exit_code: int | None) -> str:
    if exit_code is None:
        return "exit status unknown"
    if exit_code >= 0:
        return f"exit code {exit_code}"
    try:
        name = signal.Signals(-exit_code).name
    except ValueError:
        name = str(-exit_code)
    return f"killed by signal {name}"


def outcome_of(
    cause: str | None,
    exit_code: int | None,
    time_limit_s: int,
    *,
    memory_mb: int = 0,
    log_max_bytes: int = 0,
) -> tuple[Outcome, str]:
    """The outcome and message of a run from why it was stopped (``None``: it was not)
    and how it exited: the table of the module docstring, for every engine.
    ``memory_mb`` and ``log_max_bytes`` are the limits the run had, for the message."""
    detail = describe_status(exit_code)
    if cause is None or cause == "none":
        return (Outcome.SUCCEEDED if exit_code == 0 else Outcome.FAILED), detail
    if cause == "oom":
        asked = f"the {memory_mb} MiB it asked for" if memory_mb else "its memory limit"
        return Outcome.FAILED, f"out of memory: it used more than {asked} ({detail})"
    if cause == "log_limit":
        size = (
            f"{log_max_bytes // (1 << 20)} MiB"
            if log_max_bytes >= 1 << 20
            else (f"{log_max_bytes} bytes")
        )
        return Outcome.FAILED, f"log limit: its output passed {size} and it was stopped ({detail})"
    outcome = _STOP_OUTCOME.get(cause, Outcome.LOST)
    if outcome is Outcome.TIMED_OUT:
        return outcome, f"killed after time limit {time_limit_s}s ({detail})"
    if outcome is Outcome.LOST:
        return outcome, f"lost: stopped at shutdown ({detail})"
    return outcome, f"{outcome.value} ({detail})"


#: how often a step's reader looks whether its caller cancelled it
_STEP_POLL_S = 0.2


def pump_step_output(
    fd: int, output: StepOutput, cancel: threading.Event, stop: Callable[[], None]
) -> None:
    """Hand what the pipe ``fd`` carries to ``output`` until every writer closed it;
    call ``stop`` once when ``cancel`` is set meanwhile. For engines' ``run_step``."""
    os.set_blocking(fd, False)
    stopped = False
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            if cancel.is_set() and not stopped:
                stopped = True
                stop()
            if not sel.select(timeout=_STEP_POLL_S):
                continue
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                return
            output(chunk)
