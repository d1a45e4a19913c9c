"""Reclaim by preemption: give a project its guaranteed quota back from borrowers.

A pending job whose project is within its nominal quota, but which cannot be placed,
may preempt jobs running on borrowed capacity (jobs of projects above their nominal
quota of that GPU type) and, only if configured, lower priority classes of its own
project. Candidates are taken lowest priority first, then least progress lost (GPU-seconds
run so far); jobs younger than ``min_runtime_s`` are protected. Removals are simulated on
the free capacity and the quota tree until the job fits, then each chosen victim is put
back if the job still fits without it: never more than needed.
"""

from __future__ import annotations

from collections.abc import Iterable

from axcenter.model.snapshot import PendingJob, RunningJob, SchedulerConfig
from axcenter.sched.free import Blocked, FreeCapacity
from axcenter.sched.placement import find
from axcenter.sched.quota import QuotaTree

__all__ = ["find_victims"]


def _candidates(
    job: PendingJob,
    gpu_type: str,
    running: Iterable[RunningJob],
    quota: QuotaTree,
    now: float,
    config: SchedulerConfig,
) -> list[RunningJob]:
    chosen = []
    for r in running:
        if r.preempting or r.gpu_type != gpu_type or now - r.started_at < config.min_runtime_s:
            continue
        if r.project_id == job.project_id:
            if not (config.intra_project_preemption and r.priority < job.priority):
                continue
        elif not quota.borrowing(r.project_id, gpu_type):
            continue
        chosen.append(r)
    chosen.sort(key=lambda r: (r.priority, (now - r.started_at) * r.gpus, r.id))
    return chosen


def _fits(
    job: PendingJob, gpu_type: str, free: FreeCapacity, quota: QuotaTree, blocked: Blocked | None
) -> bool:
    return (
        quota.available(job.project_id, gpu_type) >= job.total_gpus
        and find(job, free, [gpu_type], blocked) is not None
    )


def find_victims(
    job: PendingJob,
    gpu_type: str,
    running: Iterable[RunningJob],
    free: FreeCapacity,
    quota: QuotaTree,
    now: float,
    config: SchedulerConfig,
    blocked: Blocked | None = None,
) -> list[RunningJob] | None:
    """The fewest borrowers to stop so that ``job`` fits on ``gpu_type``, or None.

    ``free`` and ``quota`` are restored before returning.
    """
    removed: list[RunningJob] = []

    def remove(victim: RunningJob) -> None:
        for a in victim.allocations:
            free.release(a)
        quota.remove(victim.project_id, gpu_type, victim.gpus)

    def restore(victim: RunningJob) -> None:
        for a in victim.allocations:
            free.take_exact(a)
        quota.add(victim.project_id, gpu_type, victim.gpus)

    try:
        fits = False
        for victim in _candidates(job, gpu_type, running, quota, now, config):
            # an earlier removal may have brought its project back within its quota
            if victim.project_id != job.project_id and not quota.borrowing(
                victim.project_id, gpu_type
            ):
                continue
            remove(victim)
            removed.append(victim)
            if _fits(job, gpu_type, free, quota, blocked):
                fits = True
                break
        if not fits:
            return None
        needed = list(removed)
        for victim in reversed(removed[:-1]):
            restore(victim)
            if _fits(job, gpu_type, free, quota, blocked):
                needed.remove(victim)
                removed.remove(victim)
            else:
                remove(victim)
        return needed
    finally:
        for victim in removed:
            restore(victim)
