"""Backfill: reserve blocked jobs' earliest starts, let others fill around them.

EASY backfill reserves for the top blocked job only; ``sched.plan`` reserves for the
first ``SchedulerConfig.bf_reservations`` of them (Maui's RESERVATIONDEPTH), each later
one searched with the earlier ones' devices blocked.

When the job at the head of the order cannot start for lack of devices, its earliest
start (the *shadow time*) is found from the end of the running jobs' time limits, node
by node. Those devices are reserved: a later job may use
them only if its time limit ends before the shadow time, so backfilled jobs never delay
the reservation.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from axcenter.model.cluster import Allocation
from axcenter.model.plan import Estimate
from axcenter.model.snapshot import PendingJob
from axcenter.sched.free import Blocked, FreeCapacity, NodeFree
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
    releases: Callable[[str], Sequence[tuple[float, Allocation]]],
    first_release: Callable[[str, int], float],
    gpu_types: Sequence[str],
    now: float,
    blocked: Blocked | None,
) -> Estimate | None:
    """When and where ``job`` could start if running jobs end by their time limits.

    Node by node: a node is ready once the jobs on it that end first (``releases(node
    id)``: (end, allocation on that node) in order of end) have freed enough devices,
    CPUs and memory; the job starts when its ``nodes`` earliest nodes of one type are
    ready. Nodes are examined best first by ``first_release`` (a lower bound of their
    ready time, given how many more devices it needs), and the search stops once no
    unexamined node can beat those found.
    """
    best: Estimate | None = None
    for gpu_type in gpu_types:
        bounds: list[tuple[float, str, NodeFree]] = []
        for nf in free.candidates(gpu_type, 0):
            usable = nf.usable(blocked)
            if _enough(job, usable, nf.cpus, nf.memory_mb):
                bounds.append((now, nf.node.name, nf))
            else:
                missing = job.gpus_per_node - len(nf.devices)
                bound = first_release(nf.node.id, missing)
                bounds.append((now if bound < now else bound, nf.node.name, nf))
        heapq.heapify(bounds)
        #: the ``job.nodes`` earliest ready nodes found so far, ascending
        chosen: list[tuple[float, str, str, tuple[int, ...]]] = []
        while bounds:
            bound, name, nf = heapq.heappop(bounds)
            if len(chosen) == job.nodes and (bound, name) > chosen[-1][:2]:
                # no node left can come before the ones found: each is ready at or after
                # its bound, and ties go by name, as the heap pops them
                break
            found = _ready_at(job, nf, releases(nf.node.id), now, blocked)
            if found is not None:
                bisect.insort(chosen, (found[0], name, nf.node.id, found[1]))
                del chosen[job.nodes :]
        if len(chosen) < job.nodes:
            continue
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


def _ready_at(
    job: PendingJob,
    nf: NodeFree,
    releases: Sequence[tuple[float, Allocation]],
    now: float,
    blocked: Blocked | None,
) -> tuple[float, tuple[int, ...]] | None:
    held = blocked.get(nf.node.id, frozenset()) if blocked else frozenset()
    devices = list(nf.usable(blocked))
    cpus, memory, at = nf.cpus, nf.memory_mb, now
    if not _enough(job, devices, cpus, memory):
        for end, a in releases:
            devices += [d for d in a.devices if d not in held]
            cpus += a.cpus
            memory += a.memory_mb
            at = max(at, end)
            if _enough(job, devices, cpus, memory):
                break
        else:
            return None
    return at, tuple(sorted(devices)[: job.gpus_per_node])


def _enough(job: PendingJob, devices: Sequence[int], cpus: int, memory: int) -> bool:
    return (
        len(devices) >= job.gpus_per_node
        and cpus >= job.cpus_per_node
        and memory >= job.memory_mb_per_node
    )
