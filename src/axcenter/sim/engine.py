"""The discrete-event engine: replay a workload through a policy on an event clock.

The engine plays the part of the live control loop (``control/loop.py``) and of the
executor, with simulated time: it keeps the same in-memory state the live cache keeps
(one ``SortedKeyList`` per queue, a ``RunningIndex`` updated as jobs start and end,
decayed usage), builds a ``Snapshot`` from it each cycle and applies the ``Plan`` the way
the live loop does. Admissions start at once; a preempted job gets SIGTERM, keeps its
devices for ``grace_s`` (marked ``preempting`` in the index), then exits and is requeued
with its original submit time; a requeued job restarts from scratch, as the local
executor's jobs do, unless it checkpoints (``checkpoint_every_s``, for a seeded share
``checkpoint_share`` of jobs): such a job reports a checkpoint every so many seconds of
run (the scheduler sees ``RunningJob.last_checkpoint_at``) and resumes from the last.
So ``policy="axcenter"`` replays the very decisions the live center would make
(``tests/sim/test_live_equivalence.py`` checks it).

Events: arrivals (read lazily from the time-sorted job list, never pushed up front),
completions, preemption exits, node failures and repairs, reservation boundaries,
policy wake-ups and checkpoints sit in one heap keyed by (time, sequence number), so
equal times resolve in insertion order and a run is deterministic. The moments queued
jobs become overdue for the quota-violation metric (one cycle after they were queued,
``metrics``) come in the order jobs were queued, so they wait in a FIFO, handled before
anything else at their time. The engine draws no random numbers: the seeded choices
(time limits asking the maximum, jobs that checkpoint) are hashes of job ids and
``seed`` (``sim.limits.draw``); ``seed`` is recorded with the result.

Cycles: after all events at time t, a cycle runs if something changed (an arrival, an
exit, a failure, a repair, a reservation boundary or a wake-up with work waiting) and at
least ``interval_s`` passed since the last cycle; otherwise one is scheduled at
last + ``interval_s``, coalescing what happens meanwhile, like the live loop's wake-ups.
A cycle is skipped when no job waits, or when nothing changed since the last one:
``plan`` is deterministic, so it would decide the same. That is
not quite exact: a waiting job's age lowers its project's fair-share key and running jobs
become preemptible with time, so a live timer cycle could decide differently; the
preemption case is covered by wake-ups (``Policy.wake_at``), the age effect is accepted.

A job no node could ever hold (too many GPUs per node, an absent GPU type) is rejected
at arrival, as the live submit refuses it; otherwise a strict FIFO would wait forever.

Cost per cycle: a snapshot references the live structures (no copy of the queues), plus
``tuple(running)``; ``plan`` reads queue heads and one pass over nodes. Nothing grows with
the length of the history: finished jobs leave every dict, and what is measured goes to
``metrics.Recorder`` (preallocated per-job lists, a timeline with one row per change).
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sortedcontainers import SortedKeyList

from axcenter.model.cluster import Node, NodeState
from axcenter.model.index import RunningIndex
from axcenter.model.plan import Admission, PendingReason
from axcenter.model.quota import Quota, QuotaNode
from axcenter.model.snapshot import PendingJob, Reservation, RunningJob, SchedulerConfig, Snapshot
from axcenter.sched.fairshare import accrue_usage, held_weighted, usage_weights
from axcenter.sched.history import RunHistory
from axcenter.sim.cluster import ClusterSpec
from axcenter.sim.limits import LimitRule, draw
from axcenter.sim.metrics import (
    REJECTED,
    SUCCEEDED,
    TIMED_OUT,
    Recorder,
    Shape,
    SimResult,
    Start,
)
from axcenter.sim.policies import POLICIES, PolicyFactory
from axcenter.sim.workload import TraceJob, Workload

__all__ = ["NodeFailure", "SimOptions", "simulate"]

_DONE, _STOPPED, _FAIL, _REPAIR, _WAKE, _CYCLE, _CHECKPOINT = range(7)


@dataclass(frozen=True, slots=True)
class NodeFailure:
    """Node ``node`` (a cluster node name) is down during ``[at, repair_at)``."""

    node: str
    at: float
    repair_at: float = math.inf


@dataclass(frozen=True, slots=True)
class SimOptions:
    #: minimum simulated seconds between cycles (0: a cycle at every distinct event time)
    interval_s: float = 30.0
    #: preemption grace: a victim keeps its devices this long after SIGTERM
    grace_s: float = 30.0
    seed: int = 0
    #: the time limits jobs ask for (``sim.limits``): as users give them, by default
    limits: LimitRule = field(default_factory=LimitRule)
    config: SchedulerConfig = field(default_factory=SchedulerConfig)
    failures: tuple[NodeFailure, ...] = ()
    #: node ids in reservations are cluster node names
    reservations: tuple[Reservation, ...] = ()
    #: fair-share usage half-life; None: ``config.fair_share_half_life_s``
    usage_half_life_s: float | None = None
    #: keep every admission (time, job, type, placement) in ``SimResult.starts``
    record_starts: bool = False
    #: jobs that checkpoint do so every this many seconds of run (0: none do)
    checkpoint_every_s: float = 0.0
    #: the share of jobs that checkpoint (a seeded draw per job id)
    checkpoint_share: float = 1.0


class _View:
    """The read-only ``JobView`` baselines get (see ``policies``)."""

    def __init__(self, engine: _Engine) -> None:
        self._e = engine

    def duration(self, job_id: str) -> float:
        return self._e.jobs[self._e.ids[job_id]].duration

    def service(self, job_id: str) -> float:
        return self._e.rec.gpu_s[self._e.ids[job_id]]

    def attained(self, job_id: str, now: float) -> float:
        r = self._e.index.jobs.get(job_id)
        running = (now - r.started_at) * r.gpus if r is not None else 0.0
        return self.service(job_id) + running


class _Engine:
    def __init__(
        self,
        workload: Workload,
        cluster: ClusterSpec,
        factory: PolicyFactory,
        policy_name: str,
        options: SimOptions,
        progress: Callable[[float], None] | None,
    ) -> None:
        jobs = list(workload.jobs)
        if any(a.submit > b.submit for a, b in itertools.pairwise(jobs)):
            jobs.sort(key=lambda j: j.submit)
        self.jobs, self.workload, self.policy_name = jobs, workload, policy_name
        self.opt, self.progress = options, progress
        self.nodes: dict[str, Node] = {node.id: node for node in cluster.nodes()}
        self.node_tuple = tuple(self.nodes.values())
        self.down: dict[str, int] = {}  # node -> overlapping failures
        self.types = tuple(sorted({node.gpu_type for node in self.node_tuple}))
        self.type_ix = {t: i for i, t in enumerate(self.types)}
        self.prices = cluster.prices
        self.tenants = tuple(sorted({j.tenant for j in jobs} | set(workload.quotas)))
        self.tenant_ix = {t: i for i, t in enumerate(self.tenants)}
        self.projects = {
            t: QuotaNode(t, quotas={g: Quota(nominal=q) for g, q in quotas.items() if q > 0})
            for t, quotas in workload.quotas.items()
        }
        self.policy = factory(_View(self), options.config)
        #: recent run times by user and kind of job, as the live cache keeps them
        self.history = RunHistory(options.config.history_min_runs)
        #: a GPU-second's weight by type in fair share: configured, else the prices
        self.weights = usage_weights(options.config, cluster.prices)
        self.half_life = options.usage_half_life_s or options.config.fair_share_half_life_s
        # what the live loop's cache holds
        self.queues: dict[str, SortedKeyList] = {}
        self.index = RunningIndex()
        self.usage: dict[str, float] = {}
        self.ids: dict[str, int] = {}  # active job id -> position in ``jobs``
        self.specs: dict[int, PendingJob] = {}
        self.attempt = [0] * len(jobs)  # bumped when a run ends: older events are stale
        #: seconds of its duration a job has saved by checkpoints (it resumes there)
        self.saved = [0.0] * len(jobs)
        every = options.checkpoint_every_s
        self.checkpointing = [
            every > 0 and draw(j.id, options.seed, "checkpoint") < options.checkpoint_share
            for j in jobs
        ]
        first = jobs[0].submit if jobs else 0.0
        quota = [sum(workload.quotas.get(t, {}).values()) for t in self.tenants]
        nominal = [[workload.quotas.get(t, {}).get(g, 0) for g in self.types] for t in self.tenants]
        capacity = sum(node.gpu_count for node in self.node_tuple)
        self.rec = Recorder(jobs, self.tenants, quota, self.types, capacity, first, nominal)
        #: a job's shape for the quota violation, by (accepted types, GPUs)
        self.shapes: dict[tuple[tuple[str, ...], int], Shape] = {}
        self.heap: list[tuple[float, int, int, int, int]] = []
        #: (when, job, attempt): queued jobs becoming overdue one cycle later (``late``),
        #: in time order, since every job waits the same cycle (a FIFO, not the heap)
        self.overdue: deque[tuple[float, int, int]] = deque()
        self.seq = self.events = self.cycles = self.done = 0
        self.failed_nodes: dict[int, str] = {}  # event sequence number -> node name
        self.starts: list[Start] = []
        self.dirty = False
        self.now = self.usage_at = first
        self.last_cycle = -math.inf
        self.cycle_at = math.inf  # when the coalescing cycle is scheduled
        self.fits: dict[tuple[object, ...], bool] = {}
        self.reclaiming: tuple[PendingJob, ...] = ()  # waiting on preemption after a cycle
        for f in options.failures:
            if f.node not in self.nodes:
                raise ValueError(f"failure of unknown node {f.node!r}")
            if f.repair_at <= f.at:
                raise ValueError(f"node {f.node}: repair_at must be after at")
            self.push(f.at, _FAIL, 0, 0, f.node)
            if f.repair_at < math.inf:
                self.push(f.repair_at, _REPAIR, 0, 0, f.node)
        for r in options.reservations:
            for node_id, _ in r.devices:
                if node_id not in self.nodes:
                    raise ValueError(f"reservation {r.id}: unknown node {node_id!r}")
            self.push(r.start, _WAKE, 0, 0)
            self.push(r.end, _WAKE, 0, 0)

    # -- the loop -------------------------------------------------------------------

    def push(self, at: float, kind: int, i: int, attempt: int, node: str = "") -> None:
        self.seq += 1
        if node:
            self.failed_nodes[self.seq] = node
        heapq.heappush(self.heap, (at, self.seq, kind, i, attempt))

    def run(self) -> SimResult:
        began = time.perf_counter()
        jobs, heap, n, rec = self.jobs, self.heap, len(self.jobs), self.rec
        interval = self.opt.interval_s
        nxt = 0
        step = max(1, n // 100)
        mark = step
        while True:
            t = jobs[nxt].submit if nxt < n else math.inf
            if heap and heap[0][0] < t:
                t = heap[0][0]
            if t == math.inf:
                break
            overdue = self.overdue
            while overdue and overdue[0][0] <= t:  # before anything else at t, as events
                due, i, attempt = overdue.popleft()
                self.late(i, attempt, due)
            self.now = t
            while nxt < n and jobs[nxt].submit <= t:
                self.arrive(nxt)
                nxt += 1
                self.events += 1
            while heap and heap[0][0] <= t:
                _, seq, kind, i, attempt = heapq.heappop(heap)
                self.events += 1
                if kind in (_DONE, _STOPPED):
                    if attempt == self.attempt[i]:
                        rec.preemptions[i] += kind == _STOPPED
                        self.stop(i, t, requeue=kind == _STOPPED)
                elif kind == _CYCLE:
                    self.cycle_at = math.inf
                elif kind == _CHECKPOINT:
                    self.checkpoint(i, attempt, t)
                elif kind == _WAKE:
                    self.dirty = self.dirty or bool(self.queues)
                else:
                    self.node_event(self.failed_nodes.pop(seq), t, kind == _FAIL)
            if self.dirty and not self.queues:
                self.dirty = False  # nothing waits: a plan would decide nothing
            if self.dirty:
                if t >= self.last_cycle + interval:
                    self.cycle(t)
                elif self.cycle_at == math.inf:
                    self.cycle_at = self.last_cycle + interval
                    self.push(self.cycle_at, _CYCLE, 0, 0)
            rec.record(t)
            if self.progress is not None and self.done >= mark:
                self.progress(self.done / n)
                mark = (self.done // step + 1) * step
        return rec.result(
            policy=self.policy_name,
            workload=self.workload.name,
            seed=self.opt.seed,
            tenants=self.tenants,
            gpu_types=self.types,
            tenant_ix=self.tenant_ix,
            events=self.events,
            cycles=self.cycles,
            wall_s=time.perf_counter() - began,
            starts=self.starts,
            notes=(*self.workload.notes, self.opt.limits.describe()),
        )

    def arrive(self, i: int) -> None:
        tj = self.jobs[i]
        if not self.feasible(tj):
            self.rec.state[i] = REJECTED
            self.done += 1
            return
        if tj.id in self.ids:
            raise ValueError(f"job id {tj.id!r} appears twice in the workload")
        spec = PendingJob(
            id=tj.id,
            project_id=tj.tenant,
            user_id=tj.user or tj.tenant,
            submitted_at=tj.submit,
            gpus_per_node=tj.gpus_per_node,
            nodes=tj.nodes,
            cpus_per_node=tj.cpus_per_node,
            memory_mb_per_node=tj.memory_mb_per_node,
            time_limit_s=self.policy.time_limit(
                self.opt.limits.limit(tj, self.opt.seed), tj.duration
            ),
            priority=tj.priority,
            gpu_types=tj.gpu_types,
        )
        if self.policy.plans_with_history:
            spec = self.history.with_estimate(spec)
        self.ids[tj.id] = i
        self.specs[i] = spec
        self.enqueue(spec)

    def feasible(self, tj: TraceJob) -> bool:
        """Whether the cluster (all nodes up) could ever run the job: what the live submit
        checks. Jobs that could not are rejected, or they would wait forever."""
        key = (tj.gpu_types, tj.gpus_per_node, tj.nodes, tj.cpus_per_node, tj.memory_mb_per_node)
        ok = self.fits.get(key)
        if ok is None:
            count: dict[str, int] = {}
            for node in self.node_tuple:
                if (
                    (not tj.gpu_types or node.gpu_type in tj.gpu_types)
                    and node.gpu_count >= tj.gpus_per_node
                    and node.cpus >= tj.cpus_per_node
                    and node.memory_mb >= tj.memory_mb_per_node
                ):
                    group = node.gpu_type if tj.gpus_per_node else ""
                    count[group] = count.get(group, 0) + 1
            ok = self.fits[key] = max(count.values(), default=0) >= tj.nodes
        return ok

    def enqueue(self, spec: PendingJob) -> None:
        name = self.policy.queue_of(spec)
        queue = self.queues.get(name)
        if queue is None:
            queue = self.queues[name] = SortedKeyList(key=self.policy.queue_key)
        queue.add(spec)
        i = self.ids[spec.id]
        if self.rec.may_owe(self.tenant_ix[spec.project_id], self.shape(spec)):
            # it counts towards its tenant's quota violation once it waited one cycle
            self.overdue.append((self.now + self.opt.interval_s, i, self.attempt[i]))
        self.dirty = True

    def shape(self, spec: PendingJob) -> Shape:
        """(indices of the GPU types it accepts that the cluster has, its GPUs)."""
        key = (spec.gpu_types, spec.total_gpus)
        found = self.shapes.get(key)
        if found is None:
            ix = self.type_ix
            if spec.gpu_types:
                types = tuple(ix[t] for t in spec.gpu_types if t in ix)
            else:
                types = tuple(range(len(self.types)))
            found = self.shapes[key] = (types, spec.total_gpus)
        return found

    def checkpoint(self, i: int, attempt: int, t: float) -> None:
        """Job ``i`` saves its progress and reports it (the next one is due later)."""
        spec = self.specs.get(i)
        r = None if spec is None else self.index.jobs.get(spec.id)
        if attempt != self.attempt[i] or r is None:
            return
        self.index.replace(replace(r, last_checkpoint_at=t))
        every = self.opt.checkpoint_every_s
        if t + every < r.started_at + self.jobs[i].duration - self.saved[i]:
            self.push(t + every, _CHECKPOINT, i, attempt)

    def late(self, i: int, attempt: int, t: float) -> None:
        """Job ``i`` has waited one cycle since it was queued: it is overdue."""
        spec = self.specs.get(i)
        if attempt != self.attempt[i] or spec is None or spec.id in self.index.jobs:
            return  # it started (or ended) meanwhile
        self.rec.overdue[i] = True
        self.rec.account(
            self.tenant_ix[spec.project_id], t, 0, spec.total_gpus, shape=self.shape(spec)
        )

    def cycle(self, t: float) -> None:
        self.dirty = False
        self.last_cycle = t
        self.cycles += 1
        self.decay_usage(t)
        snapshot = Snapshot(
            nodes=self.node_tuple,
            running=tuple(self.index.jobs.values()),
            queues=self.queues,
            projects=self.projects,
            usage=self.usage,
            usage_weights=self.weights,
            reservations=self.opt.reservations,
            config=self.policy.config,
            index=self.index,
            reclaiming=self.reclaiming,
        )
        plan = self.policy.plan(snapshot, t)
        # as the live cache: what waits on preemption goes first in the next cycle
        self.reclaiming = tuple(
            self.specs[self.ids[job_id]]
            for job_id, reason in plan.waiting.items()
            if reason is PendingReason.PREEMPTING
        )
        for p in plan.preemptions:  # before admissions, as the live loop
            self.preempt(p.job_id, t)
        for a in plan.admissions:
            self.start(a, t)

    def decay_usage(self, t: float) -> None:
        """As ``control.usage.UsageTracker.advance`` (sim may not import control)."""
        elapsed = t - self.usage_at
        if elapsed <= 0:
            return
        accrue_usage(
            self.usage, held_weighted(self.index.usage, self.weights), elapsed, self.half_life
        )
        self.usage_at = t

    # -- applying a plan ------------------------------------------------------------

    def start(self, a: Admission, t: float) -> None:
        i = self.ids[a.job_id]
        spec = self.specs[i]
        for alloc in a.placement:  # the invariant the live store enforces with leases
            held = self.index.nodes.get(alloc.node_id)
            busy = held is not None and not held.devices.isdisjoint(alloc.devices)
            if busy or alloc.node_id in self.down:
                raise RuntimeError(f"{self.policy_name}: {a.job_id} placed on busy or down devices")
        name = self.policy.queue_of(spec)
        queue = self.queues[name]
        queue.remove(spec)
        if not queue:
            del self.queues[name]
        r = RunningJob(
            id=spec.id,
            project_id=spec.project_id,
            user_id=spec.user_id,
            started_at=t,
            time_limit_s=spec.time_limit_s,
            allocations=a.placement,
            priority=spec.priority,
            gpu_type=a.gpu_type,
            borrowed=a.borrowed,
        )
        self.index.add(r)
        overdue = self.rec.overdue[i]
        self.rec.overdue[i] = False
        waited = spec.total_gpus if overdue else 0
        gpu_type = self.type_ix.get(a.gpu_type, -1)
        self.rec.account(
            self.tenant_ix[spec.project_id], t, r.gpus, -waited, gpu_type, self.shape(spec)
        )
        self.rec.started(i, t, r.gpus, gpu_type)
        remaining = self.jobs[i].duration - self.saved[i]
        self.push(t + min(remaining, spec.time_limit_s), _DONE, i, self.attempt[i])
        if self.checkpointing[i] and self.opt.checkpoint_every_s < remaining:
            self.push(t + self.opt.checkpoint_every_s, _CHECKPOINT, i, self.attempt[i])
        wake = self.policy.wake_at(r, t)
        if wake is not None and wake > t:
            self.push(wake, _WAKE, 0, 0)
        if self.opt.record_starts:
            where = tuple((x.node_id, x.devices) for x in a.placement)
            self.starts.append((float(t), spec.id, a.gpu_type, where))

    def preempt(self, job_id: str, t: float) -> None:
        """SIGTERM: the job keeps its devices for the grace period, then exits."""
        r = self.index.jobs.get(job_id)
        if r is None or r.preempting:
            return
        self.index.replace(replace(r, preempting=True))
        i = self.ids[job_id]
        natural = r.started_at + min(self.jobs[i].duration - self.saved[i], r.time_limit_s)
        if t + self.opt.grace_s < natural:  # else it finishes within its grace period
            self.push(t + self.opt.grace_s, _STOPPED, i, self.attempt[i])

    def stop(self, i: int, t: float, *, requeue: bool) -> None:
        """The job's current run ends at ``t``: done, or requeued (preempted, failed)."""
        spec = self.specs[i]
        r = self.index.remove(spec.id)
        assert r is not None
        ran = (t - r.started_at) * r.gpus
        rec = self.rec
        rec.stopped(
            i, ran, self.prices.get(r.gpu_type, 0), r.gpus, self.type_ix.get(r.gpu_type, -1)
        )
        rec.account(
            self.tenant_ix[spec.project_id], t, -r.gpus, 0, self.type_ix.get(r.gpu_type, -1)
        )
        self.attempt[i] += 1
        self.dirty = True
        if requeue:  # from its last checkpoint (or scratch), with its original submit time
            rec.lost += r.loss(t)
            self.saved[i] += r.saved_at - r.started_at
            self.enqueue(spec)
            return
        rec.end[i] = t
        remaining = self.jobs[i].duration - self.saved[i]
        rec.state[i] = TIMED_OUT if remaining > spec.time_limit_s else SUCCEEDED
        if rec.state[i] == SUCCEEDED:  # as the live cache: a success teaches the history
            self.history.record(
                spec.user_id, spec.project_id, spec.time_limit_s, r.gpus, t - r.started_at
            )
        del self.specs[i]
        del self.ids[spec.id]
        self.done += 1

    def node_event(self, name: str, t: float, failed: bool) -> None:
        """A failure takes the node down and requeues what ran on it; a repair brings it
        back once every overlapping failure is repaired."""
        depth = self.down.get(name, 0) + (1 if failed else -1)
        if depth > 0:
            self.down[name] = depth
        else:
            self.down.pop(name, None)
        node = self.nodes[name]
        if node.schedulable != (depth <= 0):
            up = depth <= 0
            self.nodes[name] = replace(node, state=NodeState.UP if up else NodeState.DOWN)
            self.node_tuple = tuple(self.nodes.values())
            self.rec.capacity += node.gpu_count if up else -node.gpu_count
        held = self.index.nodes.get(name)
        if failed and held is not None:
            for job_id in sorted(held.jobs):
                self.rec.failure_requeues += 1
                self.stop(self.ids[job_id], t, requeue=True)
        self.dirty = True


def simulate(
    workload: Workload,
    cluster: ClusterSpec,
    policy: str | PolicyFactory = "axcenter",
    options: SimOptions = SimOptions(),
    progress: Callable[[float], None] | None = None,
) -> SimResult:
    """Replay ``workload`` on ``cluster`` under ``policy`` (a ``POLICIES`` name or a
    factory). Tenants become projects (id = tenant name) under the root cohort, with
    ``workload.quotas`` as nominal quotas. ``progress(fraction)`` is called at most
    about 100 times, with the fraction of jobs done."""
    if isinstance(policy, str):
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r} (known: {', '.join(sorted(POLICIES))})")
        factory, name = POLICIES[policy], policy
    else:
        factory, name = policy, getattr(policy, "name", "custom")
    result = _Engine(workload, cluster, factory, name, options, progress).run()
    if progress is not None:
        progress(1.0)
    return result
