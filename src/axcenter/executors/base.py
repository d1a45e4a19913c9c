"""The executor interface: what the control loop may ask of any backend.

The control loop decides *what* runs *where*; an executor only makes it so and reports
what really happened. The contract is deliberately small so that local, Ray and Slurm
backends (and a fake for tests) can share it:

- ``inventory()`` says which nodes and devices the executor offers;
- ``start()`` launches one job and returns at once (it never waits for the job);
- ``stop()`` asks a job to end, for a reason that decides its reported outcome;
- ``on_exit`` (given to the constructor) is called exactly once per started job.

Outcome rules shared by all executors:

========================================  =============
what happened                              outcome
========================================  =============
exit code 0                                SUCCEEDED
any other exit (code or signal)            FAILED
``stop(CANCEL)``                           CANCELLED
``stop(PREEMPT)``                          PREEMPTED
``stop(SHUTDOWN)`` / ``close()``           LOST (the control loop requeues it)
time limit exceeded                        TIMED_OUT
========================================  =============

The first cause wins: once a job is being stopped or has hit its time limit, its outcome
is fixed, even if the process then exits 0 (it may trap SIGTERM, or finish just before
the signal lands). The user's or operator's intent is what the record must show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

__all__ = [
    "Executor",
    "ExitCallback",
    "ExitReport",
    "Launch",
    "LaunchError",
    "NodeInventory",
    "Outcome",
    "Started",
    "StopReason",
]


@dataclass(frozen=True, slots=True)
class NodeInventory:
    """One node an executor offers, with ``gpu_count`` devices numbered 0..gpu_count-1.

    ``device_ids`` maps those numbers to the real device indices when they differ
    (``device_ids[i]`` is the real index of device ``i``); empty means "the same
    numbers", which is the usual case and always the case for logical GPUs.
    """

    name: str
    gpu_type: str
    gpu_count: int
    cpus: int
    memory_mb: int
    logical: bool  # True = logical GPUs, no real device behind them
    device_ids: tuple[int, ...] = ()

    def real_device(self, device: int) -> int:
        """The device index to hand to CUDA for scheduler device ``device``."""
        return self.device_ids[device] if self.device_ids else device


@dataclass(frozen=True, slots=True)
class Launch:
    """Everything an executor needs to start one job."""

    job_id: str
    command: tuple[str, ...]
    workdir: str  # absolute; the executor creates it if missing
    env: Mapping[str, str]  # user-supplied extra environment
    # ((node_name, (dev, ...)), ...); the first entry is the batch host
    node_devices: tuple[tuple[str, tuple[int, ...]], ...]
    time_limit_s: int  # <= 0 means no limit
    #: stdout and stderr both go here (created/truncated; parent dir created); None:
    #: nowhere (``JobOutput.DISCARD``)
    log_path: str | None
    extra_env: Mapping[str, str] = field(default_factory=dict)  # e.g. AXC_ARRAY_INDEX


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    PREEMPTED = "preempted"
    LOST = "lost"  # the executor went away (shutdown); the control loop requeues the job


class StopReason(StrEnum):
    CANCEL = "cancel"
    PREEMPT = "preempt"
    SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class Started:
    job_id: str
    pid: int
    started_at: float  # time.time()


@dataclass(frozen=True, slots=True)
class ExitReport:
    job_id: str
    outcome: Outcome
    exit_code: int | None  # returncode; negative = killed by that signal (as subprocess does)
    ended_at: float  # time.time()
    message: str  # human readable, e.g. "exit code 3", "killed after time limit 2s"


ExitCallback = Callable[[ExitReport], None]


class LaunchError(Exception):
    """``start()`` could not start the process; the message names the cause."""


class Executor(Protocol):
    """What the control loop needs from a backend (see the module docstring)."""

    def inventory(self) -> list[NodeInventory]: ...

    def start(self, launch: Launch) -> Started:
        """Start the job and return at once; raises ``LaunchError``."""
        ...

    def stop(self, job_id: str, reason: StopReason, grace_s: float | None = None) -> None:
        """Ask a job to end (SIGTERM, then SIGKILL after grace); no-op if unknown/finished."""
        ...

    def running(self) -> set[str]:
        """Ids of the jobs still alive (started and not yet reported)."""
        ...

    def close(self, grace_s: float | None = None) -> None:
        """Stop everything with SHUTDOWN, wait for the exits, release threads. Idempotent."""
        ...

    def kill_orphans(self, jobs: Mapping[str, int | None]) -> set[str]:
        """Kill what an earlier incarnation of this executor left running for ``jobs``.

        Called by reconcile for the active jobs this executor does not run (the service
        was killed), each with the pid the store recorded, or None where the service
        died between starting the process and recording it. Returns the ids of the jobs
        whose processes were killed. Must never kill an unrelated process that happens
        to reuse a pid.
        """
        ...
