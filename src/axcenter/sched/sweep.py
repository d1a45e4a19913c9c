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
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from axcenter.model.cluster import Allocation
from axcenter.model.snapshot import PendingJob
from axcenter.sched.free import Blocked, FreeCapacity

__all__ = ["Found", "Release", "sweep"]

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Release(Generic[K]):
    """A job giving its devices back, at ``key`` in the sweep's order."""

    key: K
    job_id: str
    allocations: tuple[Allocation, ...]


@dataclass(slots=True)
class _NodeState:
    devices: list[int]
    cpus: int
    memory_mb: int
    released: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Found(Generic[K]):
    key: K | None  # None: the job fits without releasing anything
    #: (node id, devices the job would get, job ids released on that node)
    nodes: tuple[tuple[str, tuple[int, ...], tuple[str, ...]], ...]


def sweep(
    job: PendingJob,
    free: FreeCapacity,
    gpu_type: str,
    releases: Iterable[Release[K]],
    blocked: Blocked | None = None,
) -> Found[K] | None:
    """The first point in ``releases`` after which ``job`` fits on ``gpu_type``."""
    need = job.gpus_per_node
    state: dict[str, _NodeState] = {}
    ready: dict[str, None] = {}  # node ids in the order they became ready

    def enough(s: _NodeState) -> bool:
        return (
            len(s.devices) >= need
            and s.cpus >= job.cpus_per_node
            and s.memory_mb >= job.memory_mb_per_node
        )

    for nf in free.candidates(gpu_type, need):
        now_free = _NodeState(list(nf.usable(blocked)), nf.cpus, nf.memory_mb)
        if enough(now_free):
            state[nf.node.id] = now_free
            ready[nf.node.id] = None
            if len(ready) >= job.nodes:
                return _found(None, ready, state, need, job.nodes)
    for release in releases:
        for a in release.allocations:
            home = free.by_id.get(a.node_id)
            if home is None or home.node.gpu_type != gpu_type or a.node_id in ready:
                continue
            s = state.get(a.node_id) or _NodeState(
                list(home.usable(blocked)), home.cpus, home.memory_mb
            )
            state[a.node_id] = s
            held = blocked.get(a.node_id, frozenset()) if blocked else frozenset()
            s.devices += [d for d in a.devices if d not in held]
            s.cpus += a.cpus
            s.memory_mb += a.memory_mb
            s.released.append(release.job_id)
            if a.node_id not in ready and enough(s):
                ready[a.node_id] = None
        if len(ready) >= job.nodes:
            return _found(release.key, ready, state, need, job.nodes)
    return None


def _found(
    key: K | None, ready: dict[str, None], state: dict[str, _NodeState], need: int, count: int
) -> Found[K]:
    chosen = list(ready)[:count]
    return Found(
        key,
        tuple(
            (node_id, tuple(sorted(state[node_id].devices)[:need]), tuple(state[node_id].released))
            for node_id in chosen
        ),
    )
