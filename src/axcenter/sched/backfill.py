"""EASY backfill: reserve the top blocked job's earliest start, let others fill around it.

When the job at the head of the order cannot start for lack of devices, its earliest
start (the *shadow time*) is found from the end of the running jobs' time limits, node
by node. Those devices are reserved: a later job may use
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
from axcenter.sched.placement import Keep

__all__ = ["Shadow", "earliest_start"]


@dataclass(frozen=True, slots=True)
class Shadow:
    """The reservation backfill must respect."""

    estimate: Estimate
    devices: Blocked  # the devices the top job starts on
    keep: Keep  # the CPUs and memory it needs on each of its nodes
    gang: bool

    def blocks(self, now: float, time_limit_s: int) -> bool:
        """A job running from ``now`` for ``time_limit_s`` would overlap the reservation."""
        return now + time_limit_s > self.estimate.at

    def merged(self, blocked: Blocked | None) -> Blocked:
        """``blocked`` plus the reserved devices."""
        merged = dict(blocked or {})
        for node_id, devices in self.devices.items():
            merged[node_id] = merged.get(node_id, frozenset()) | devices
        return merged


def earliest_start(
    job: PendingJob,
    free: FreeCapacity,
    releases: Callable[[str], Iterable[tuple[float, Allocation]]],
    gpu_types: Sequence[str],
    now: float,
    blocked: Blocked | None,
) -> Estimate | None:
    """When and where ``job`` could start if running jobs end by their time limits.

    Node by node: a node is ready once the jobs on it that end first (``releases(node
    id)`` gives (end, allocation on that node) pairs) have freed enough devices, CPUs
    and memory; the job starts when its ``nodes`` earliest nodes of one type are ready.
    """
    best: Estimate | None = None
    for gpu_type in gpu_types:
        ready: list[tuple[float, str, str, tuple[int, ...]]] = []
        for nf in free.candidates(gpu_type, 0):
            held = blocked.get(nf.node.id, frozenset()) if blocked else frozenset()
            devices = list(nf.usable(blocked))
            cpus, memory, at = nf.cpus, nf.memory_mb, now
            if not _enough(job, devices, cpus, memory):
                for end, a in sorted(releases(nf.node.id), key=lambda r: r[0]):
                    devices += [d for d in a.devices if d not in held]
                    cpus += a.cpus
                    memory += a.memory_mb
                    at = max(at, end)
                    if _enough(job, devices, cpus, memory):
                        break
                else:
                    continue
            devices.sort()
            ready.append((at, nf.node.name, nf.node.id, tuple(devices[: job.gpus_per_node])))
        if len(ready) < job.nodes:
            continue
        ready.sort()
        chosen = ready[: job.nodes]
        at = chosen[-1][0]
        if best is None or at < best.at:
            best = Estimate(
                job.id,
                at,
                tuple(
                    Allocation(node_id, devices, job.cpus_per_node, job.memory_mb_per_node)
                    for _, _, node_id, devices in chosen
                ),
            )
    return best


def _enough(job: PendingJob, devices: list[int], cpus: int, memory: int) -> bool:
    return (
        len(devices) >= job.gpus_per_node
        and cpus >= job.cpus_per_node
        and memory >= job.memory_mb_per_node
    )
