"""The first policy: priority, then submit order (FIFO), first-fit placement.

Phases, each a small step so that later policies can replace one at a time:

1. ``FreeCapacity``: what each schedulable node still has free.
2. queue order: higher ``priority`` first, then earlier ``submitted_at``, then id.
3. for each job in order, ``first_fit`` finds nodes of one accepted GPU type with
   enough free devices, CPUs and memory on each of ``nodes`` nodes (a gang starts on
   all of its nodes or none). A fitting job is admitted and its devices are taken
   from the free capacity; a job that does not fit waits with reason ``resources``
   and later jobs may still start (no reservation yet: backfill comes with the
   scheduling-core policy).
"""

from __future__ import annotations

from axcenter.model.plan import Admission, PendingReason, Plan
from axcenter.model.snapshot import PendingJob, Snapshot
from axcenter.sched.free import FreeCapacity, NodeFree

__all__ = ["first_fit", "plan", "queue_order"]


def queue_order(job: PendingJob) -> tuple[int, float, str]:
    return (-job.priority, job.submitted_at, job.id)


def first_fit(job: PendingJob, free: FreeCapacity) -> Admission | None:
    """Take devices for ``job`` from ``free`` on the first nodes that fit, or None.

    All nodes of one job share one GPU type, the type it is charged by. Types are
    tried in the job's order of preference, else in node order.
    """
    candidates: dict[str, list[NodeFree]] = {}
    for node_free in free.nodes:
        gpu_type = node_free.node.gpu_type
        if job.gpus_per_node and not job.accepts(gpu_type):
            continue
        if node_free.fits(job.gpus_per_node, job.cpus_per_node, job.memory_mb_per_node):
            candidates.setdefault(gpu_type, []).append(node_free)
    preference = list(job.gpu_types) or list(candidates)
    for gpu_type in preference:
        nodes = candidates.get(gpu_type, [])
        if len(nodes) >= job.nodes:
            placement = tuple(
                n.take(job.gpus_per_node, job.cpus_per_node, job.memory_mb_per_node)
                for n in nodes[: job.nodes]
            )
            return Admission(job_id=job.id, gpu_type=gpu_type, placement=placement)
    return None


def plan(snapshot: Snapshot, now: float) -> Plan:
    """Decide which pending jobs start now and where. Pure: reads only its arguments."""
    del now  # the first policy has no time-dependent rule
    free = FreeCapacity(snapshot)
    admissions: list[Admission] = []
    waiting: dict[str, PendingReason] = {}
    free_gpus = free.free_gpus
    blocked = False
    for job in sorted(snapshot.pending, key=queue_order):
        admission = None
        if free.nodes and free_gpus >= job.gpus_per_node * job.nodes:
            admission = first_fit(job, free)
        if admission is not None:
            admissions.append(admission)
            free_gpus -= job.gpus_per_node * job.nodes
        elif not free.nodes:
            waiting[job.id] = PendingReason.NODES
        else:
            waiting[job.id] = PendingReason.PRIORITY if blocked else PendingReason.RESOURCES
            blocked = blocked or job.gpus_per_node > 0
    return Plan(admissions=tuple(admissions), waiting=waiting)
