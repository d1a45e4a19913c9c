"""EASY backfill: reserve the top blocked job's earliest start, let others fill around it.

When the job at the head of the order cannot start, its earliest start (the *shadow
time*) is found by releasing running jobs in order of their time limits until it fits.
Its devices at that time are reserved: a later job may use them only if its time limit
ends before the shadow time, so backfilled jobs never delay the reservation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from axcenter.model.cluster import Allocation
from axcenter.model.plan import Estimate
from axcenter.model.snapshot import PendingJob
from axcenter.sched.free import Blocked, FreeCapacity
from axcenter.sched.placement import find

__all__ = ["Occupant", "Shadow", "earliest_start"]


@dataclass(frozen=True, slots=True)
class Occupant:
    """Something holding devices until ``ends_by``: a running or just-admitted job."""

    ends_by: float
    job_id: str
    allocations: tuple[Allocation, ...]


@dataclass(frozen=True, slots=True)
class Shadow:
    """The reservation backfill must respect."""

    estimate: Estimate
    devices: Blocked
    gang: bool

    def blocks(self, now: float, time_limit_s: int) -> bool:
        """A job running from ``now`` for ``time_limit_s`` would overlap the reservation."""
        return now + time_limit_s > self.estimate.at


def earliest_start(
    job: PendingJob,
    free: FreeCapacity,
    occupants: Sequence[Occupant],
    gpu_types: Sequence[str],
    now: float,
    blocked: Blocked | None,
) -> Estimate | None:
    """When and where ``job`` could start if occupants leave by their time limits.

    Releases occupants into ``free`` one by one and restores them before returning.
    """
    released: list[Occupant] = []
    try:
        for occupant in sorted(occupants, key=lambda o: (o.ends_by, o.job_id)):
            for a in occupant.allocations:
                free.release(a)
            released.append(occupant)
            placement = find(job, free, gpu_types, blocked)
            if placement is not None:
                _, choices = placement
                allocations = tuple(
                    Allocation(nf.node.id, devices, job.cpus_per_node, job.memory_mb_per_node)
                    for nf, devices in choices
                )
                return Estimate(job.id, max(now, occupant.ends_by), allocations)
        return None
    finally:
        for occupant in released:
            for a in occupant.allocations:
                free.take_exact(a)
