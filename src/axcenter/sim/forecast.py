"""Forward simulation of the live queue: when each pending job would start.

``forecast(snapshot, now)`` runs the scheduler's own ``plan`` forward from a snapshot of
the live cache, as the simulator's engine replays a trace, with the one thing the live
center cannot know replaced by what it does know: running jobs run until their limits
(``ends_by``), and each job the forecast admits runs as long as its user's own recent
runs of the kind say (``PendingJob.expected_s``: the p90 of them, ``sched/history.py``),
else until its limit. So, with no history, a job's forecast start is the latest it would
start if nothing new arrived and no job of another company jumped ahead (a higher
priority class, a project with less fair-share usage); jobs that end early make it
sooner. Slurm's ``squeue --start`` answers the same question the same way (its backfill
plan, with time limits).

What the forecast keeps of the live center: the queues in their order, the running jobs
on their devices, quotas and cohorts, reservations, per-user and per-project limits,
fair-share usage (decayed as the loop decays it), budgets (each admission's hold taken
from its project's allowance, as the ledger would), preemption (a victim keeps its
devices for ``grace_s``; it is not requeued: a running job's start is not asked). Held
and dependent jobs are passed over by ``plan`` itself: they get no forecast.

Cost: cycles run at the distinct ends of time limits, coalesced within a step that grows
with the distance from ``now`` (``RESOLUTION`` of it, at least ``MIN_STEP_S``): a start
forecast a day out is not worse for being placed within half an hour. The forecast stops
at ``horizon_s`` or ``max_cycles``; a job still waiting then has none (it starts later
than the horizon). The caller's snapshot is not changed: queues are copied, the running
index is rebuilt from ``snapshot.running``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from sortedcontainers import SortedKeyList

from axcenter.model.index import RunningIndex
from axcenter.model.plan import PendingReason, Plan
from axcenter.model.snapshot import Budget, PendingJob, RunningJob, Snapshot, queue_key
from axcenter.sched.fairshare import accrue_usage, held_weighted

__all__ = ["Forecast", "forecast"]

Policy = Callable[[Snapshot, float], Plan]

#: a cycle at time ``t`` coalesces the ends within this share of ``t - now``...
RESOLUTION = 0.02
#: ...and at least within this many seconds
MIN_STEP_S = 30.0
#: how far ahead the forecast looks (a job that would start later has no forecast)
HORIZON_S = 14 * 86400.0
#: at most this many cycles per forecast (a bound on its cost whatever the queue)
MAX_CYCLES = 2000
#: a running job already past its time limit (its end not yet recorded) ends this soon
OVERDUE_END_S = 1.0


@dataclass(frozen=True, slots=True)
class Forecast:
    """Forecast starts (epoch seconds) by job id, and what it cost."""

    starts: Mapping[str, float]
    cycles: int
    #: simulated time reached (the horizon if the queue did not drain before it)
    until: float


def forecast(
    snapshot: Snapshot,
    now: float,
    policy: Policy,
    *,
    grace_s: float = 30.0,
    horizon_s: float = HORIZON_S,
    max_cycles: int = MAX_CYCLES,
    should_stop: Callable[[], bool] = lambda: False,
) -> Forecast:
    """When each pending job of ``snapshot`` would start under ``policy`` (``sched.plan``)
    if every job ran its whole time limit and nothing else arrived. ``should_stop`` is
    asked between cycles: a newer snapshot makes this one's answer moot."""
    queues: dict[str, SortedKeyList] = {}
    pending: dict[str, PendingJob] = {}
    for project_id, queue in snapshot.queues.items():
        if queue:
            queues[project_id] = SortedKeyList(queue, key=queue_key)
            pending.update((job.id, job) for job in queue)
    index = RunningIndex()
    ends: list[tuple[float, str]] = []
    for run in snapshot.running:
        index.add(run)
        end = max(run.ends_by, now + OVERDUE_END_S)
        if run.preempting:
            end = min(end, now + grace_s)
        ends.append((end, run.id))
    heapq.heapify(ends)
    wakes = sorted(
        t for r in snapshot.reservations for t in (r.start, r.end) if now < t < now + horizon_s
    )
    budgets = dict(snapshot.budgets)
    usage = dict(snapshot.usage)
    half_life = snapshot.config.fair_share_half_life_s
    weights = snapshot.usage_weights
    reclaiming = snapshot.reclaiming
    starts: dict[str, float] = {}
    t, cycles, horizon = now, 0, now + horizon_s
    while queues and cycles < max_cycles and not should_stop():
        cycles += 1
        view = replace(
            snapshot,
            running=tuple(index.jobs.values()),
            queues=queues,
            usage=usage,
            budgets=budgets,
            index=index,
            reclaiming=reclaiming,
        )
        decided = policy(view, t)
        waiting = decided.waiting
        reclaiming = tuple(
            waits
            for job_id, reason in waiting.items()
            if reason is PendingReason.PREEMPTING and (waits := pending.get(job_id)) is not None
        )
        for p in decided.preemptions:
            victim = index.jobs.get(p.job_id)
            if victim is not None and not victim.preempting:
                index.replace(replace(victim, preempting=True))
                heapq.heappush(ends, (min(victim.ends_by, t + grace_s), victim.id))
        for adm in decided.admissions:
            job = pending.pop(adm.job_id, None)
            if job is None:
                continue
            _unqueue(queues, job)
            starts[job.id] = t
            running = RunningJob(
                id=job.id,
                project_id=job.project_id,
                user_id=job.user_id,
                started_at=t,
                time_limit_s=job.time_limit_s,
                allocations=adm.placement,
                priority=job.priority,
                gpu_type=adm.gpu_type,
                borrowed=adm.borrowed,
            )
            index.add(running)
            # it ends when its user's history expects (``sched/history.py``), at the latest
            # at its limit: the scheduler sees the limit, as it will live
            heapq.heappush(ends, (t + job.expected_s, job.id))
            if adm.funded and job.project_id in budgets:
                budgets[job.project_id] = _spend(budgets[job.project_id], adm.gpu_type, job)
        # the next moment something could change: an end (with the ends just after it)
        while wakes and wakes[0] <= t:
            wakes.pop(0)
        nxt = min(ends[0][0] if ends else math.inf, wakes[0] if wakes else math.inf)
        if nxt >= horizon:
            t = horizon
            break
        until = nxt + max(MIN_STEP_S, RESOLUTION * (nxt - now))
        while ends and ends[0][0] <= until:
            _, job_id = heapq.heappop(ends)
            index.remove(job_id)
        accrue_usage(usage, held_weighted(index.usage, weights), until - t, half_life)
        t = until
    return Forecast(starts=starts, cycles=cycles, until=t)


def _unqueue(queues: dict[str, SortedKeyList], job: PendingJob) -> None:
    queue = queues[job.project_id]
    queue.remove(job)
    if not queue:
        del queues[job.project_id]


def _spend(budget: Budget, gpu_type: str, job: PendingJob) -> Budget:
    """``budget`` less the hold of ``job`` (what the ledger takes at admission)."""
    hold = budget.hold(gpu_type, job.total_gpus, job.time_limit_s)
    if hold is None:
        return budget
    won, secs = hold
    left = dict(budget.gpu_seconds_left)
    left[gpu_type] -= secs
    return replace(budget, won_left=budget.won_left - won, gpu_seconds_left=left)
