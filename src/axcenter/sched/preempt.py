"""Reclaim by preemption: give a project its guaranteed quota back from borrowers.

A pending job whose project is within its nominal quota, but which cannot be placed,
may preempt jobs running on borrowed capacity (jobs of projects above their nominal
quota of that GPU type) and, only if configured, lower priority classes of its own
project. Candidates go cheapest first: lowest priority, then least work lost
(GPU-seconds since the job's last checkpoint, or since its start if it never reported
one: ``RunningJob.loss``); jobs younger than ``min_runtime_s`` are protected.

The search sweeps candidates cheapest first (``sweep``) until ``job.nodes`` nodes could
hold the job's share; the candidates released on those nodes are the victims. If the
quota still does not admit the job, more borrowers are taken wherever they run. Finally
each chosen victim is put back if the job still fits without it: never more than
needed. Everything is simulated on the free capacity and the quota tree and restored
before returning.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator, Mapping

from axcenter.model.cluster import Allocation
from axcenter.model.index import RunningIndex
from axcenter.model.snapshot import PendingJob, RunningJob, SchedulerConfig
from axcenter.sched.free import Blocked, FreeCapacity
from axcenter.sched.placement import find
from axcenter.sched.quota import QuotaTree
from axcenter.sched.sweep import sweep

__all__ = ["Preemptible", "find_victims", "preemptible"]


#: once this many candidates have been read in merge order, sort the rest at once
_MERGE_LIMIT = 512

#: a candidate in preemption order: (priority, GPU-seconds it would lose, job id, the job)
_Ranked = tuple[int, float, str, RunningJob]


class Preemptible:
    """Running jobs of one GPU type that may be preempted at all, cheapest first.

    Read lazily: a search usually stops after a few candidates, so the order is produced
    by merging the index's per-class lists (``RunningIndex.by_start``) only as far as
    the searches read it, instead of sorting every running job each cycle. ``jobs`` and
    ``rank`` hold what has been read so far; iterate to read on.
    """

    def __init__(
        self, index: RunningIndex, gpu_type: str, now: float, config: SchedulerConfig
    ) -> None:
        self.jobs: list[RunningJob] = []
        self.rank: dict[str, int] = {}  # job id -> position in ``jobs``
        self._index = index
        self._gpu_type = gpu_type
        self._now = now
        self._min_runtime_s = config.min_runtime_s
        # Priority comes first in the order: classes of different priorities never
        # interleave, so only those of one priority (and different GPUs) are merged.
        by_priority: dict[int, list[Iterator[_Ranked]]] = {}
        for (priority, _), started in sorted(index.by_start.get(gpu_type, {}).items()):
            by_priority.setdefault(priority, []).append(
                _in_order(started, index.jobs, now, config.min_runtime_s)
            )
        self._merged: Iterator[_Ranked] | None = itertools.chain.from_iterable(
            streams[0] if len(streams) == 1 else heapq.merge(*streams)
            for streams in by_priority.values()
        )

    def __iter__(self) -> Iterator[RunningJob]:
        jobs = self.jobs
        i = 0
        while i < len(jobs) or self.read():
            yield jobs[i]
            i += 1

    def _eligible(self, r: RunningJob) -> bool:
        return not r.preempting and self._now - r.started_at >= self._min_runtime_s

    def read(self) -> bool:
        """Read one more candidate (or, past ``_MERGE_LIMIT``, all the rest); False at the end."""
        if self._merged is None:
            return False
        if len(self.jobs) < _MERGE_LIMIT:
            item = next(self._merged, None)
            if item is None:
                self._merged = None
                return False
            self._append(item[3])
            return True
        self._merged = None
        now, rank = self._now, self.rank
        rest = [
            (r.priority, r.loss(now), r.id, r)
            for classes in self._index.by_start.get(self._gpu_type, {}).values()
            for _, job_id in classes
            if (r := self._index.jobs[job_id]).id not in rank and self._eligible(r)
        ]
        rest.sort()
        for item in rest:
            self._append(item[3])
        return bool(rest)

    def _append(self, r: RunningJob) -> None:
        self.rank[r.id] = len(self.jobs)
        self.jobs.append(r)


def _in_order(
    started: list[tuple[float, str]],
    jobs: Mapping[str, RunningJob],
    now: float,
    min_runtime_s: float,
) -> Iterator[_Ranked]:
    """One (priority, GPUs) class of candidates in preemption order. Latest ``saved_at``
    first is that order up to ties: jobs whose losses come out equal go by id, as a full
    sort does.
    (A function, not a method: the generator must not hold its ``Preemptible``, or the
    two would form a reference cycle that only the garbage collector frees.)"""
    run: list[_Ranked] = []
    for _, job_id in started:
        r = jobs[job_id]
        if r.preempting or now - r.started_at < min_runtime_s:
            continue
        item = (r.priority, r.loss(now), r.id, r)
        if run and run[0][1] != item[1]:
            yield from sorted(run) if len(run) > 1 else run
            run = []
        run.append(item)
    yield from sorted(run) if len(run) > 1 else run


def preemptible(
    index: RunningIndex, gpu_type: str, now: float, config: SchedulerConfig
) -> Preemptible:
    """Jobs of ``gpu_type`` old enough to preempt and not already stopping, cheapest to
    lose first (lowest priority, then least GPU-seconds lost, then id)."""
    return Preemptible(index, gpu_type, now, config)


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


def _releases(
    candidates: Preemptible, eligible: Callable[[RunningJob], bool]
) -> Iterator[tuple[int, str, tuple[Allocation, ...]]]:
    """The eligible candidates as the sweep reads them: (rank, job id, allocations)."""
    jobs = candidates.jobs
    i = 0
    while i < len(jobs) or candidates.read():
        r = jobs[i]
        if eligible(r):
            yield i, r.id, r.allocations
        i += 1


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
    found = sweep(job, free, gpu_type, _releases(candidates, eligible), blocked)
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
            for victim in candidates:
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
