"""Reclaim by preemption: give a project its guaranteed quota back from borrowers.

A pending job whose project is within its nominal quota, but which cannot be placed,
may preempt jobs running on borrowed capacity (jobs of projects above their nominal
quota of that GPU type) and, only if configured, lower priority classes of its own
project. Candidates go cheapest first: lowest priority, then least progress lost
(GPU-seconds run so far); jobs younger than ``min_runtime_s`` are protected.

The search sweeps candidates cheapest first (``sweep``) until ``job.nodes`` nodes could
hold the job's share; the candidates released on those nodes are the victims. If the
quota still does not admit the job, more borrowers are taken wherever they run. Finally
each chosen victim is put back if the job still fits without it: never more than
needed. Everything is simulated on the free capacity and the quota tree and restored
before returning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from axcenter.model.index import RunningIndex
from axcenter.model.snapshot import PendingJob, RunningJob, SchedulerConfig
from axcenter.sched.free import Blocked, FreeCapacity
from axcenter.sched.placement import find
from axcenter.sched.quota import QuotaTree
from axcenter.sched.sweep import Release, sweep

__all__ = ["Preemptible", "find_victims", "preemptible"]


@dataclass(frozen=True, slots=True)
class Preemptible:
    """Running jobs of one GPU type that may be preempted at all, cheapest first."""

    jobs: list[RunningJob]
    rank: dict[str, int]  # job id -> position in ``jobs``


def preemptible(
    index: RunningIndex, gpu_type: str, now: float, config: SchedulerConfig
) -> Preemptible:
    """Jobs of ``gpu_type`` old enough to preempt and not already stopping, cheapest to
    lose first (lowest priority, then least GPU-seconds run so far)."""
    jobs = [
        r
        for r in index.jobs.values()
        if r.gpu_type == gpu_type
        and not r.preempting
        and now - r.started_at >= config.min_runtime_s
    ]
    jobs.sort(key=lambda r: (r.priority, (now - r.started_at) * r.gpus, r.id))
    return Preemptible(jobs, {r.id: i for i, r in enumerate(jobs)})


def _eligibility(
    job: PendingJob,
    gpu_type: str,
    quota: QuotaTree,
    config: SchedulerConfig,
    excluded: set[str],
) -> Callable[[RunningJob], bool]:
    """Whether a preemptible job may be stopped for ``job``: a borrower of another
    project, or (if configured) a lower priority class of its own project."""
    borrowing: dict[str, bool] = {}

    def eligible(r: RunningJob) -> bool:
        if r.id in excluded:
            return False
        if r.project_id == job.project_id:
            return config.intra_project_preemption and r.priority < job.priority
        is_borrowing = borrowing.get(r.project_id)
        if is_borrowing is None:
            is_borrowing = borrowing[r.project_id] = quota.borrowing(r.project_id, gpu_type)
        return is_borrowing

    return eligible


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
    candidates: Preemptible,
    excluded: set[str],
    free: FreeCapacity,
    quota: QuotaTree,
    config: SchedulerConfig,
    blocked: Blocked | None = None,
) -> list[RunningJob] | None:
    """The fewest borrowers to stop so that ``job`` fits on ``gpu_type``, or None.

    ``candidates``: from ``preemptible`` for this cycle (cheapest first).
    """
    eligible = _eligibility(job, gpu_type, quota, config, excluded)
    rank = candidates.rank
    releases = (
        Release(i, r.id, r.allocations) for i, r in enumerate(candidates.jobs) if eligible(r)
    )
    found = sweep(job, free, gpu_type, releases, blocked)
    if found is None:
        return None
    picked = {job_id for _, _, released in found.nodes for job_id in released}

    removed: list[RunningJob] = []

    def remove(victim: RunningJob) -> None:
        for a in victim.allocations:
            free.release(a)
        quota.remove(victim.project_id, gpu_type, victim.gpus)
        removed.append(victim)

    def restore(victim: RunningJob) -> None:
        for a in victim.allocations:
            free.take_exact(a)
        quota.add(victim.project_id, gpu_type, victim.gpus)
        removed.remove(victim)

    try:
        for job_id in sorted(picked, key=rank.__getitem__):
            remove(candidates.jobs[rank[job_id]])
        if quota.available(job.project_id, gpu_type) < job.total_gpus:
            # devices are there, the quota is not: stop more borrowers, wherever they run
            for victim in candidates.jobs:
                if victim.id in picked or not eligible(victim):
                    continue
                if victim.project_id != job.project_id and not quota.borrowing(
                    victim.project_id, gpu_type
                ):
                    continue  # its project stopped borrowing after earlier removals
                remove(victim)
                if quota.available(job.project_id, gpu_type) >= job.total_gpus:
                    break
        if not _fits(job, gpu_type, free, quota, blocked):
            return None
        for victim in sorted(removed, key=lambda r: -rank[r.id]):
            restore(victim)
            if not _fits(job, gpu_type, free, quota, blocked):
                remove(victim)
        return sorted(removed, key=lambda r: rank[r.id])
    finally:
        for victim in list(removed):
            restore(victim)
