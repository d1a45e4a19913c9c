"""Jobs: their spec, their states and the transitions allowed between states.

The lifecycle (ARCHITECTURE.md)::

    pending -> admitted -> running -> succeeded | failed | cancelled | timed_out
                                  \\-> preempted -> pending   (requeued, history kept)
    succeeded | failed | cancelled | timed_out -> pending   (``axc requeue``, same id)

Every transition is recorded as an event; ``check_transition`` is the one gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "ACTIVE",
    "TERMINAL",
    "InvalidTransition",
    "JobOutput",
    "JobSpec",
    "JobState",
    "check_transition",
]


class JobState(StrEnum):
    PENDING = "pending"
    ADMITTED = "admitted"
    RUNNING = "running"
    PREEMPTED = "preempted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


class JobOutput(StrEnum):
    """Where a job's stdout and stderr go."""

    LOG = "log"  # the center's log of the job (``axc logs``)
    DISCARD = "discard"  # nowhere, as Slurm's ``--output=/dev/null``: no file per job


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT})
#: States in which a job holds devices.
ACTIVE = frozenset({JobState.ADMITTED, JobState.RUNNING, JobState.PREEMPTED})

_ALLOWED: Mapping[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.ADMITTED, JobState.CANCELLED, JobState.FAILED}),
    # admitted -> pending: the executor refused the launch for a transient reason.
    JobState.ADMITTED: frozenset(
        {JobState.RUNNING, JobState.PENDING, JobState.CANCELLED, JobState.FAILED}
    ),
    JobState.RUNNING: frozenset(
        {
            JobState.SUCCEEDED,
            JobState.FAILED,
            JobState.CANCELLED,
            JobState.TIMED_OUT,
            JobState.PREEMPTED,
        }
    ),
    JobState.PREEMPTED: frozenset({JobState.PENDING, JobState.CANCELLED}),
    # an ended job requeued by its owner or an operator (Slurm's ``scontrol requeue``)
    **{state: frozenset({JobState.PENDING}) for state in TERMINAL},
}


class InvalidTransition(ValueError):
    """A state change the lifecycle does not allow (e.g. cancelling a finished job)."""

    def __init__(self, current: JobState, target: JobState) -> None:
        super().__init__(f"a {current.value} job cannot become {target.value}")
        self.current = current
        self.target = target


def check_transition(current: JobState, target: JobState) -> None:
    """Raise ``InvalidTransition`` unless ``current -> target`` is in the lifecycle."""
    if target not in _ALLOWED.get(current, frozenset()):
        raise InvalidTransition(current, target)


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a user asked for. Per-node quantities: a gang job gets the same on each node."""

    command: tuple[str, ...]
    gpus_per_node: int = 1
    nodes: int = 1
    cpus_per_node: int = 1
    memory_mb_per_node: int = 1024
    time_limit_s: int = 3600
    priority: int = 0
    gpu_types: tuple[str, ...] = ()  # accepted GPU types; empty accepts any
    workdir: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    name: str = ""

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_node * self.nodes

    def accepts(self, gpu_type: str) -> bool:
        return not self.gpu_types or gpu_type in self.gpu_types
