"""Policies the simulator can replay: axcenter's own scheduler and reference baselines.

A policy is an object made per run by a ``PolicyFactory(view, config)``. It says how
pending jobs are queued (``queue_of``/``queue_key``: the engine keeps one
``SortedKeyList`` per queue, so a cycle never sorts the backlog), decides each cycle
(``plan(snapshot, now) -> Plan``, the same contract as ``sched.plan``) and may ask for an
extra cycle at a future time (``wake_at``), e.g. when a running job's priority changes.

Baselines need facts a ``Snapshot`` does not carry (true durations, attained service).
They read them from ``JobView``, a read-only window on the engine's per-job bookkeeping:
that is the one hook, so the live scheduler stays blind to them, as it must.

Policies
--------
``axcenter``
    ``sched.plan`` with the run's ``SchedulerConfig``, exactly as the live loop calls it.
    It asks for a cycle when a borrowed job reaches ``min_runtime_s`` (it becomes
    preemptible then; the live loop's safety timer would notice it).
``axcenter-nopreempt``
    The same with ``preemption=False``.
``fifo``
    One global queue by submit time, strict: the cycle stops at the first job that does
    not fit (no backfill), no quotas, fair share or limits. Placement is axcenter's
    (``sched.placement``: best fit, gang on one rack if possible); reservations are
    honoured. The classic baseline of every scheduling paper.
``sjf``
    Shortest job first with oracle durations (the trace's), otherwise as ``fifo``:
    strict, non-preemptive, no backfill. A lower bound on mean JCT for non-preemptive
    order-based schedulers, unreachable in practice (durations are unknown).
``sjf-easy``
    The oracle baseline the default policy is measured against (issue 23): one global
    queue by true duration (then submit time), EASY backfill (one reservation, whatever
    ``bf_reservations`` the default policy uses) with every job's time limit
    set to its true duration (rounded up to the second), so reservations and backfill
    know exactly when each job ends. It runs ``sched.plan`` on one queue without quotas,
    fair share, limits or preemption. Unreachable in practice: it knows every duration.
``tiresias``
    Discretized two-dimensional least-attained-service (2D-LAS) from Gu et al.,
    "Tiresias: A GPU Cluster Manager for Distributed Deep Learning", NSDI 2019. A job's
    attained service is GPUs x executed time (summed over its runs); it falls into one of
    K queues by thresholds (default K=2, threshold 3,200 GPU-seconds); queues are served
    in order and FIFO by arrival within a queue. The allocation is work-conserving (a job
    that does not fit is skipped). A waiting job preempts running jobs of lower queues
    (lowest priority first: highest queue, latest arrival), which get the grace period
    and are requeued. Simplifications: no starvation promotion (the paper's
    STARVELIMIT/PROMOTEKNOB), no Gittins-index variant, no consolidation profiling
    (placement is axcenter's), a job restarts from scratch after preemption (as the live
    local executor does) while keeping its attained service, and jobs younger than
    ``min_runtime_s`` are not preempted (a stand-in for the paper's lease).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Protocol

from axcenter.model.plan import Admission, PendingReason, Plan, Preemption
from axcenter.model.snapshot import (
    Limits,
    PendingJob,
    RunningJob,
    SchedulerConfig,
    Snapshot,
    queue_key,
)
from axcenter.sched import plan as sched_plan
from axcenter.sched.free import Blocked, FreeCapacity
from axcenter.sched.placement import find, take
from axcenter.sched.sweep import Release, sweep

__all__ = [
    "POLICIES",
    "AxcenterPolicy",
    "FifoPolicy",
    "JobView",
    "NoPreemptPolicy",
    "Policy",
    "PolicyFactory",
    "SjfEasyPolicy",
    "SjfPolicy",
    "TiresiasPolicy",
]


class JobView(Protocol):
    """Read-only facts about active jobs, from the engine (for baselines only)."""

    def duration(self, job_id: str) -> float:
        """The job's run time in the trace (an oracle's knowledge)."""
        ...

    def service(self, job_id: str) -> float:
        """GPU-seconds the job ran in its finished runs (not the current one)."""
        ...

    def attained(self, job_id: str, now: float) -> float:
        """GPU-seconds the job has run so far, its current run included."""
        ...


class Policy:
    """Base: per-project queues in ``queue_key`` order, no wake-ups."""

    name = "policy"
    #: one global queue (named "") instead of one queue per project
    single_queue = False
    #: pending jobs carry estimates from their users' history (``sched.history``), as
    #: the live cache gives them; baselines plan with what they plan with
    plans_with_history = False

    def __init__(self, view: JobView, config: SchedulerConfig) -> None:
        self.view = view
        self.config = config

    def queue_of(self, job: PendingJob) -> str:
        return "" if self.single_queue else job.project_id

    def queue_key(self, job: PendingJob) -> tuple[Any, ...]:
        """Order within a queue; must not change while the job waits."""
        return queue_key(job)

    def plan(self, snapshot: Snapshot, now: float) -> Plan:
        raise NotImplementedError

    def wake_at(self, job: RunningJob, now: float) -> float | None:
        """A time at which a cycle should run because of ``job``, just started."""
        return None

    def time_limit(self, asked: int, duration: float) -> int:
        """The time limit a job runs with, given what it asked (``sim.limits``) and its
        true duration: what it asked, except for oracles."""
        return asked


PolicyFactory = Callable[[JobView, SchedulerConfig], Policy]


class AxcenterPolicy(Policy):
    name = "axcenter"
    plans_with_history = True

    def plan(self, snapshot: Snapshot, now: float) -> Plan:
        return sched_plan(snapshot, now)

    def wake_at(self, job: RunningJob, now: float) -> float | None:
        if job.borrowed and self.config.preemption and self.config.min_runtime_s > 0:
            return job.started_at + self.config.min_runtime_s
        return None


class NoPreemptPolicy(AxcenterPolicy):
    name = "axcenter-nopreempt"

    def __init__(self, view: JobView, config: SchedulerConfig) -> None:
        super().__init__(view, replace(config, preemption=False))


def reserved_for_others(snapshot: Snapshot, job: PendingJob, now: float) -> Blocked | None:
    """Devices of reservations that ``job`` (running from now to its limit) must avoid."""
    blocked: dict[str, set[int]] = {}
    for r in snapshot.reservations:
        if r.blocks(job.project_id, now, now + job.time_limit_s):
            for node_id, devices in r.devices:
                blocked.setdefault(node_id, set()).update(devices)
    return {n: frozenset(d) for n, d in blocked.items()} or None


class FifoPolicy(Policy):
    name = "fifo"
    single_queue = True

    def queue_key(self, job: PendingJob) -> tuple[Any, ...]:
        return (job.submitted_at, job.id)

    def plan(self, snapshot: Snapshot, now: float) -> Plan:
        free = FreeCapacity(snapshot.nodes, snapshot.running_index())
        admissions: list[Admission] = []
        waiting: dict[str, PendingReason] = {}
        for job in snapshot.queues.get("", ()):
            blocked = reserved_for_others(snapshot, job, now)
            placement = find(job, free, job.gpu_types or free.gpu_types, blocked)
            if placement is None:
                waiting[job.id] = PendingReason.RESOURCES
                break  # strict: nothing passes the head
            admissions.append(Admission(job.id, placement[0], take(job, free, placement)))
        return Plan(admissions=tuple(admissions), waiting=waiting)


class SjfPolicy(FifoPolicy):
    name = "sjf"

    def queue_key(self, job: PendingJob) -> tuple[Any, ...]:
        return (self.view.duration(job.id), job.submitted_at, job.id)


class SjfEasyPolicy(Policy):
    name = "sjf-easy"
    single_queue = True

    def __init__(self, view: JobView, config: SchedulerConfig) -> None:
        # EASY: one reservation, whatever depth the default policy uses
        super().__init__(view, replace(config, preemption=False, backfill=True, bf_reservations=1))

    def queue_key(self, job: PendingJob) -> tuple[Any, ...]:
        return (self.view.duration(job.id), job.submitted_at, job.id)

    def time_limit(self, asked: int, duration: float) -> int:
        return max(1, math.ceil(duration))

    def plan(self, snapshot: Snapshot, now: float) -> Plan:
        bare = replace(
            snapshot,
            projects={},
            cohorts={},
            usage={},
            user_limits=Limits(),
            project_limits={},
            budgets={},
            reclaiming=(),
            config=self.config,
        )
        return sched_plan(bare, now)


class TiresiasPolicy(Policy):
    name = "tiresias"
    single_queue = True
    #: attained-service thresholds (GPU-seconds) between queues: K = len + 1 queues
    thresholds: tuple[float, ...] = (3200.0,)

    def level(self, service: float) -> int:
        return bisect.bisect_right(self.thresholds, service)

    def queue_key(self, job: PendingJob) -> tuple[Any, ...]:
        # a waiting job's service does not change, so neither does its key
        return (self.level(self.view.service(job.id)), job.submitted_at, job.id)

    def wake_at(self, job: RunningJob, now: float) -> float | None:
        """When the job's attained service crosses the next threshold (it is demoted)."""
        service = self.view.service(job.id)
        level = self.level(service)
        if level >= len(self.thresholds) or job.gpus == 0:
            return None
        return now + (self.thresholds[level] - service) / job.gpus

    def plan(self, snapshot: Snapshot, now: float) -> Plan:
        index = snapshot.running_index()
        free = FreeCapacity(snapshot.nodes, index)
        cfg = self.config
        admissions: list[Admission] = []
        preemptions: list[Preemption] = []
        waiting: dict[str, PendingReason] = {}
        ranked: list[tuple[int, RunningJob]] | None = None  # built on first need
        stopping = list(index.preempting.values())
        promised: set[str] = set()
        attempts = misses = 0
        for job in snapshot.queues.get("", ()):
            if misses >= cfg.bf_max_job_test:
                break
            blocked = reserved_for_others(snapshot, job, now)
            types = job.gpu_types or free.gpu_types
            placement = find(job, free, types, blocked)
            if placement is not None:
                admissions.append(Admission(job.id, placement[0], take(job, free, placement)))
                continue
            misses += 1
            waiting[job.id] = PendingReason.RESOURCES
            if not (cfg.preemption and job.gpus_per_node) or attempts >= cfg.preempt_max_attempts:
                continue
            level = self.level(self.view.service(job.id))
            if level >= len(self.thresholds) and not stopping:
                continue  # nothing runs below the last queue
            if ranked is None:
                ranked = self._ranked(index.jobs.values(), now)
            candidates = [r for r in stopping if r.id not in promised]
            for lv, r in ranked:  # lowest priority first: stop at the job's own queue
                if lv <= level:
                    break
                if r.id not in promised:
                    candidates.append(r)
            if not candidates:
                continue
            attempts += 1
            chosen = self._victims(job, free, types, candidates, blocked)
            if chosen is None:
                continue
            waiting[job.id] = PendingReason.PREEMPTING
            for victim_id in chosen:
                promised.add(victim_id)
                if victim_id not in index.preempting:
                    preemptions.append(
                        Preemption(victim_id, job.id, f"tiresias: {job.id} is in a higher queue")
                    )
        return Plan(admissions=tuple(admissions), preemptions=tuple(preemptions), waiting=waiting)

    def _ranked(self, running: Iterable[RunningJob], now: float) -> list[tuple[int, RunningJob]]:
        """Running jobs that may be stopped, with their queue, lowest priority first
        (highest queue, latest start); jobs already stopping are handled apart."""
        ranked = [
            (self.level(self.view.attained(r.id, now)), r)
            for r in running
            if not r.preempting and now - r.started_at >= self.config.min_runtime_s
        ]
        ranked.sort(key=lambda x: (-x[0], -x[1].started_at, x[1].id))
        return ranked

    @staticmethod
    def _victims(
        job: PendingJob,
        free: FreeCapacity,
        types: Iterable[str],
        candidates: list[RunningJob],
        blocked: Blocked | None,
    ) -> list[str] | None:
        """Jobs to stop (cheapest first) so ``job`` fits; holds the free devices it will
        use so that lower-priority jobs of this cycle do not take them."""
        for gpu_type in types:
            releases = (
                Release(i, r.id, r.allocations)
                for i, r in enumerate(candidates)
                if r.gpu_type == gpu_type
            )
            found = sweep(job, free, gpu_type, releases, blocked)
            if found is None:
                continue
            chosen = list(dict.fromkeys(j for _, _, released in found.nodes for j in released))
            if not chosen:
                return None  # it fits as it is: placement said otherwise, so wait
            for node_id, devices, _ in found.nodes:
                nf = free.by_id[node_id]
                now_free = [d for d in devices if d in nf.devices]
                if now_free:
                    free.take(nf, now_free, 0, 0)
            return chosen
        return None


POLICIES: dict[str, PolicyFactory] = {
    "axcenter": AxcenterPolicy,
    "axcenter-nopreempt": NoPreemptPolicy,
    "fifo": FifoPolicy,
    "sjf": SjfPolicy,
    "sjf-easy": SjfEasyPolicy,
    "tiresias": TiresiasPolicy,
}
