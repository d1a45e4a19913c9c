"""Snapshot: everything ``sched.plan`` may read, as plain immutable values.

Times are UTC seconds since the epoch (floats) so that the simulator's clock and the
live wall clock are interchangeable.
"""

from __future__ import annotations

from dataclasses import dataclass

from axcenter.model.cluster import Allocation, Node

__all__ = ["PendingJob", "RunningJob", "Snapshot"]


@dataclass(frozen=True, slots=True)
class PendingJob:
    id: str
    project_id: str
    user_id: str
    submitted_at: float
    gpus_per_node: int
    nodes: int
    cpus_per_node: int
    memory_mb_per_node: int
    time_limit_s: int
    priority: int = 0
    gpu_types: tuple[str, ...] = ()

    def accepts(self, gpu_type: str) -> bool:
        return not self.gpu_types or gpu_type in self.gpu_types


@dataclass(frozen=True, slots=True)
class RunningJob:
    id: str
    project_id: str
    user_id: str
    started_at: float
    time_limit_s: int
    allocations: tuple[Allocation, ...]
    priority: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    nodes: tuple[Node, ...]
    running: tuple[RunningJob, ...]
    pending: tuple[PendingJob, ...]
