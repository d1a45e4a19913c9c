"""Small builders for scheduler inputs and readers for its outputs.

Defaults are generous (a node has plenty of CPUs and memory, a job asks for little) so a
test only spells out what it is about::

    snap = snapshot(
        nodes=[node("n1", "H100", gpus=8)],
        running=[running("r1", on=[("n1", (0, 1))])],
        pending=[pending("j1", gpus=2)],
    )
    assert placements(plan(snap, 0.0)) == {"j1": ("H100", (("n1", (2, 3)),))}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from axcenter.model.cluster import Allocation, Node, NodeState
from axcenter.model.plan import Plan
from axcenter.model.quota import QuotaNode
from axcenter.model.snapshot import (
    Limits,
    PendingJob,
    Reservation,
    RunningJob,
    SchedulerConfig,
    Snapshot,
    queues_from,
)

__all__ = [
    "Placed",
    "admitted_ids",
    "node",
    "pending",
    "pending_jobs",
    "placements",
    "running",
    "snapshot",
]

#: What a plan gave one job: its GPU type and ((node id, devices), ...) in placement order.
Placed = tuple[str, tuple[tuple[str, tuple[int, ...]], ...]]


def node(
    name: str,
    gpu_type: str = "H100",
    gpus: int = 8,
    *,
    cpus: int = 128,
    memory_mb: int = 1_048_576,
    state: NodeState = NodeState.UP,
    node_id: str | None = None,
    rack: str = "",
) -> Node:
    """A node whose id is its name unless ``node_id`` is given."""
    return Node(
        id=node_id or name,
        name=name,
        gpu_type=gpu_type,
        gpu_count=gpus,
        cpus=cpus,
        memory_mb=memory_mb,
        state=state,
        rack=rack,
    )


def pending(
    job_id: str,
    *,
    gpus: int = 1,
    nodes: int = 1,
    cpus: int = 1,
    memory_mb: int = 1024,
    priority: int = 0,
    submitted: float = 0.0,
    types: Sequence[str] = (),
    project: str = "prj_a",
    user: str = "usr_a",
    time_limit_s: int = 3600,
) -> PendingJob:
    """A pending job; ``gpus``, ``cpus`` and ``memory_mb`` are per node."""
    return PendingJob(
        id=job_id,
        project_id=project,
        user_id=user,
        submitted_at=submitted,
        gpus_per_node=gpus,
        nodes=nodes,
        cpus_per_node=cpus,
        memory_mb_per_node=memory_mb,
        time_limit_s=time_limit_s,
        priority=priority,
        gpu_types=tuple(types),
    )


def running(
    job_id: str,
    *,
    on: Iterable[tuple[str, Sequence[int]]],
    cpus: int = 1,
    memory_mb: int = 1024,
    priority: int = 0,
    started: float = 0.0,
    project: str = "prj_a",
    user: str = "usr_a",
    time_limit_s: int = 3600,
    gpu_type: str = "",
    borrowed: bool = False,
    preempting: bool = False,
) -> RunningJob:
    """A running job holding ``devices`` on each ``(node id, devices)`` of ``on``;
    ``cpus`` and ``memory_mb`` are per allocation. Without ``gpu_type``, ``snapshot``
    fills in the type of the node it runs on."""
    return RunningJob(
        id=job_id,
        project_id=project,
        user_id=user,
        started_at=started,
        time_limit_s=time_limit_s,
        allocations=tuple(
            Allocation(node_id, tuple(devices), cpus, memory_mb) for node_id, devices in on
        ),
        priority=priority,
        gpu_type=gpu_type,
        borrowed=borrowed,
        preempting=preempting,
    )


def snapshot(
    *,
    nodes: Iterable[Node] = (),
    running: Iterable[RunningJob] = (),
    pending: Iterable[PendingJob] = (),
    projects: Iterable[QuotaNode] = (),
    cohorts: Iterable[QuotaNode] = (),
    usage: Mapping[str, float] | None = None,
    reservations: Iterable[Reservation] = (),
    user_limits: Limits | None = None,
    project_limits: Mapping[str, Limits] | None = None,
    config: SchedulerConfig | None = None,
) -> Snapshot:
    """A snapshot; ``pending`` is a flat list, split into sorted per-project queues."""
    nodes = tuple(nodes)
    types = {n.id: n.gpu_type for n in nodes}

    def typed(job: RunningJob) -> RunningJob:
        if job.gpu_type or not job.allocations:
            return job
        return replace(job, gpu_type=types.get(job.allocations[0].node_id, ""))

    return Snapshot(
        nodes=nodes,
        running=tuple(typed(r) for r in running),
        queues=queues_from(pending),
        projects={p.id: p for p in projects},
        cohorts={c.id: c for c in cohorts},
        usage=dict(usage or {}),
        reservations=tuple(reservations),
        user_limits=user_limits or Limits(),
        project_limits=dict(project_limits or {}),
        config=config or SchedulerConfig(),
    )


def pending_jobs(snap: Snapshot) -> list[PendingJob]:
    """Every pending job of ``snap``, queue by queue."""
    return [job for queue in snap.queues.values() for job in queue]


def placements(plan: Plan) -> dict[str, Placed]:
    """``{job id: (gpu type, ((node id, devices), ...))}`` for every admission of ``plan``."""
    return {
        a.job_id: (a.gpu_type, tuple((p.node_id, p.devices) for p in a.placement))
        for a in plan.admissions
    }


def admitted_ids(plan: Plan) -> list[str]:
    """Admitted job ids in the order the plan lists them."""
    return [a.job_id for a in plan.admissions]
