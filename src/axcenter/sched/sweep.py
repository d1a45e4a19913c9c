"""Sweep: free devices in some order until a job could be placed.

Backfill and preemption ask the same question with different orders: "if these jobs
gave their devices back one after another, when would ``job`` fit, and where?" Backfill
orders running jobs by the end of their time limits (the answer is the shadow time);
preemption orders preemptible jobs cheapest first (the answer is who to stop). The sweep
touches only the nodes of the released jobs and stops as soon as ``job.nodes`` nodes
could hold the job's share, so it costs what it releases, not the size of the cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from axcenter.model.cluster import Allocation
from axcenter.model.snapshot import PendingJob
from axcenter.sched.free import Blocked, FreeCapacity

__all__ = ["Found", "Release", "sweep"]

K = TypeVar("K")


class Release(NamedTuple, Generic[K]):
    """A job giving its devices back, at ``key`` in the sweep's order."""

    key: K
    job_id: str
    allocations: tuple[Allocation, ...]


@dataclass(frozen=True, slots=True)
class Found(Generic[K]):
    key: K | None  # None: the job fits without releasing anything
    #: (node id, devices the job would get, job ids released on that node)
    nodes: tuple[tuple[str, tuple[int, ...], tuple[str, ...]], ...]


#: per node touched: [devices that would be free, CPUs, memory, job ids released there]
_State = list[Any]


def sweep(
    job: PendingJob,
    free: FreeCapacity,
    gpu_type: str,
    releases: Iterable[tuple[K, str, tuple[Allocation, ...]]],
    blocked: Blocked | None = None,
) -> Found[K] | None:
    """The first point in ``releases`` after which ``job`` fits on ``gpu_type``.

    ``releases``: ``Release`` values, or plain (key, job id, allocations) tuples."""
    need, cpus, memory = job.gpus_per_node, job.cpus_per_node, job.memory_mb_per_node
    count = job.nodes
    state: dict[str, _State] = {}
    ready: dict[str, None] = {}  # node ids in the order they became ready

    for nf in free.candidates(gpu_type, need):
        devices = nf.usable(blocked)
        if len(devices) >= need and nf.cpus >= cpus and nf.memory_mb >= memory:
            state[nf.node.id] = [list(devices), nf.cpus, nf.memory_mb, []]
            ready[nf.node.id] = None
            if len(ready) >= count:
                return _found(None, ready, state, need, count)
    by_id = free.by_id
    for key, job_id, allocations in releases:
        for a in allocations:
            node_id = a.node_id
            if node_id in ready:
                continue
            s = state.get(node_id)
            if s is None:
                home = by_id.get(node_id)
                if home is None or home.node.gpu_type != gpu_type:
                    continue
                s = state[node_id] = [list(home.usable(blocked)), home.cpus, home.memory_mb, []]
            held = blocked.get(node_id) if blocked else None
            s[0] += [d for d in a.devices if d not in held] if held else a.devices
            s[1] += a.cpus
            s[2] += a.memory_mb
            s[3].append(job_id)
            if len(s[0]) >= need and s[1] >= cpus and s[2] >= memory:
                ready[node_id] = None
        if len(ready) >= count:
            return _found(key, ready, state, need, count)
    return None


def _found(
    key: K | None, ready: dict[str, None], state: dict[str, _State], need: int, count: int
) -> Found[K]:
    chosen = list(ready)[:count]
    return Found(
        key,
        tuple(
            (node_id, tuple(sorted(state[node_id][0])[:need]), tuple(state[node_id][3]))
            for node_id in chosen
        ),
    )
