"""EASY backfill: reserve the top blocked job's earliest start, let others fill around it.

When the job at the head of the order cannot start for lack of devices, its earliest
start (the *shadow time*) is found by sweeping running jobs in order of the end of their
time limits until it fits (``sweep``). Those devices are reserved: a later job may use
them only if its time limit ends before the shadow time, so backfilled jobs never delay
the reservation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from axcenter.model.cluster import Allocation
from axcenter.model.plan import Estimate
from axcenter.model.snapshot import PendingJob
from axcenter.sched.free import Blocked, FreeCapacity
from axcenter.sched.sweep import Release, sweep

__all__ = ["Shadow", "earliest_start"]


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
    by_end: Callable[[], Iterable[Release[float]]],
    gpu_types: Sequence[str],
    now: float,
    blocked: Blocked | None,
) -> Estimate | None:
    """When and where ``job`` could start if running jobs end by their time limits.

    ``by_end()`` yields what runs in order of when it ends (a fresh iterator per call).
    """
    best: Estimate | None = None
    for gpu_type in gpu_types:
        found = sweep(job, free, gpu_type, by_end(), blocked)
        if found is None:
            continue
        at = max(now, found.key) if found.key is not None else now
        if best is None or at < best.at:
            best = Estimate(
                job.id,
                at,
                tuple(
                    Allocation(node_id, devices, job.cpus_per_node, job.memory_mb_per_node)
                    for node_id, devices, _ in found.nodes
                ),
            )
    return best
