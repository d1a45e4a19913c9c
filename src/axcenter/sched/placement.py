"""Placement: feasibility filters, then ranking, then taking the devices.

Filters (Nomad's feasibility checkers): the node is up (``FreeCapacity`` holds only
schedulable nodes), its GPU type is accepted, enough devices are free and not blocked
(reservations, the backfill shadow), enough CPUs and memory are free.

Ranking: best fit, the node left with the fewest free devices, so that whole nodes stay
free for large jobs. A gang (``nodes > 1``) takes ``nodes`` nodes of one GPU type, within
one rack when one rack can hold it, else on as few racks as possible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from axcenter.model.cluster import Allocation
from axcenter.model.snapshot import PendingJob
from axcenter.sched.free import Blocked, FreeCapacity, NodeFree

__all__ = ["Keep", "Placement", "find", "take"]

#: (gpu type, per-node choices): what ``find`` proposes and ``take`` commits
Placement = tuple[str, tuple[tuple[NodeFree, tuple[int, ...]], ...]]


#: CPUs and memory a job must leave free on a node (for the backfill reservation)
Keep = Mapping[str, tuple[int, int]]


def _fits_host(nf: NodeFree, job: PendingJob, keep: Keep | None = None) -> bool:
    kept_cpus, kept_memory = keep.get(nf.node.id, (0, 0)) if keep else (0, 0)
    return (
        nf.cpus - kept_cpus >= job.cpus_per_node
        and nf.memory_mb - kept_memory >= job.memory_mb_per_node
    )


def find(
    job: PendingJob,
    free: FreeCapacity,
    gpu_types: Sequence[str],
    blocked: Blocked | None = None,
    keep: Keep | None = None,
) -> Placement | None:
    """A placement for ``job`` on one of ``gpu_types`` (tried in order), or None.

    ``blocked`` devices are not used; ``keep`` CPUs and memory are left free.
    """
    if job.gpus_per_node == 0:
        return _find_cpu_only(job, free, keep)
    for gpu_type in gpu_types:
        if job.nodes > 1 and free.count_at_least(gpu_type, job.gpus_per_node) < job.nodes:
            continue
        found = (
            _find_single(job, free, gpu_type, blocked, keep)
            if job.nodes == 1
            else _find_gang(job, free, gpu_type, blocked, keep)
        )
        if found is not None:
            return gpu_type, found
    return None


def take(job: PendingJob, free: FreeCapacity, placement: Placement) -> tuple[Allocation, ...]:
    _, choices = placement
    cpus, memory_mb = job.cpus_per_node, job.memory_mb_per_node
    if len(choices) == 1:
        nf, devices = choices[0]
        return (free.take(nf, list(devices), cpus, memory_mb),)
    return tuple(free.take(nf, list(devices), cpus, memory_mb) for nf, devices in choices)


def _find_single(
    job: PendingJob, free: FreeCapacity, gpu_type: str, blocked: Blocked | None, keep: Keep | None
) -> tuple[tuple[NodeFree, tuple[int, ...]], ...] | None:
    for nf in free.candidates(gpu_type, job.gpus_per_node):
        if not _fits_host(nf, job, keep):
            continue
        usable = nf.usable(blocked)
        if len(usable) >= job.gpus_per_node:
            return ((nf, tuple(usable[: job.gpus_per_node])),)
    return None


def _find_gang(
    job: PendingJob, free: FreeCapacity, gpu_type: str, blocked: Blocked | None, keep: Keep | None
) -> tuple[tuple[NodeFree, tuple[int, ...]], ...] | None:
    by_rack: dict[str, list[tuple[NodeFree, list[int]]]] = {}
    for nf in free.candidates(gpu_type, job.gpus_per_node):
        if not _fits_host(nf, job, keep):
            continue
        usable = nf.usable(blocked)
        if len(usable) >= job.gpus_per_node:
            by_rack.setdefault(nf.node.rack, []).append((nf, usable))
    if sum(len(nodes) for nodes in by_rack.values()) < job.nodes:
        return None
    # one rack if any can hold the gang: the tightest such rack; else fewest racks
    holding = [r for r, nodes in by_rack.items() if len(nodes) >= job.nodes]
    if holding:
        rack = min(holding, key=lambda r: (len(by_rack[r]), r))
        chosen = by_rack[rack][: job.nodes]
    else:
        chosen = []
        for rack in sorted(by_rack, key=lambda r: (-len(by_rack[r]), r)):
            chosen += by_rack[rack][: job.nodes - len(chosen)]
            if len(chosen) == job.nodes:
                break
    return tuple((nf, tuple(usable[: job.gpus_per_node])) for nf, usable in chosen)


def _find_cpu_only(job: PendingJob, free: FreeCapacity, keep: Keep | None) -> Placement | None:
    fitting = [nf for nf in free.all_nodes() if _fits_host(nf, job, keep)]
    if len(fitting) < job.nodes:
        return None
    fitting.sort(key=lambda nf: (nf.cpus, nf.node.name))  # best fit on CPUs
    return "", tuple((nf, ()) for nf in fitting[: job.nodes])
