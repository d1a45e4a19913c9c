"""``plan(snapshot, now)``: the scheduling cycle as numbered phases.

1. **State**: free capacity per node (``free``), quota usage over the cohort tree
   (``quota``), running counts for limits (``limits``), fair-share keys (``fairshare``).
2. **Order**: one entry per project, its queue head, in a heap keyed by
   (tier, fair-share key, queue order). Tier 0 holds heads that fit within their
   project's nominal quota, so guaranteed work goes before borrowing work.
3. **Decide**, head by head: limits, then quota (``available``), then placement with the
   devices this job may not use blocked (reservations of other projects; the backfill
   reservations its expected run overlaps). A job that fits is admitted and its
   project's next job enters the heap.
4. **When a job cannot start**: within nominal quota, reclaim by preemption (``preempt``)
   if what the victims lose does not outweigh what it gains (``worth_it``); otherwise
   the first ``bf_reservations`` such jobs each get a reservation (``backfill``), on
   devices no earlier one holds: later jobs may start only if they delay none of them.
   Without backfill the cycle stops at the first.
5. **Bound**: after ``bf_max_job_test`` jobs that could not start, the cycle ends; jobs
   it did not examine wait with reason ``priority``. The budget is shared: a project
   whose jobs could not start stops at its share of it (the budget over the projects
   with pending work, as Slurm's ``bf_max_job_assoc``) and is set aside, so one
   project's blocked backlog cannot keep the others' heads from being examined. When
   every other project is done, those set aside share what is left (work-conserving).

A cycle touches the jobs it admits plus at most ``bf_max_job_test`` others; the rest of
the backlog is never read.
"""

from __future__ import annotations

import gc
import heapq
from collections.abc import Sequence
from dataclasses import replace

from axcenter.model.cluster import Allocation
from axcenter.model.plan import Admission, Estimate, PendingReason, Plan, Preemption
from axcenter.model.snapshot import PendingJob, RunningJob, Snapshot, queue_key
from axcenter.sched.backfill import Shadow, earliest_start
from axcenter.sched.fairshare import FairShare, held_weighted
from axcenter.sched.free import Blocked, FreeCapacity
from axcenter.sched.limits import LimitTracker
from axcenter.sched.placement import Keep, Placement, find, take
from axcenter.sched.preempt import Preemptible, find_victims, preemptible
from axcenter.sched.quota import QuotaTree

__all__ = ["plan"]


#: how far past a borrowing head the cycle looks for a job within guaranteed quota
LOOKAHEAD = 8

#: a heap entry: (tier, fair-share key, queue order, project id, index in its queue)
_Entry = tuple[int, float, tuple[int, float, float, str], str, int]


class _Cycle:
    """The mutable working state of one ``plan`` call; never escapes it."""

    def __init__(self, snapshot: Snapshot, now: float) -> None:
        self.snap = snapshot
        self.now = now
        self.config = snapshot.config
        index = snapshot.running_index()
        self.index = index
        self.free = FreeCapacity(snapshot.nodes, index)
        # the quota pool: devices of schedulable nodes, plus those held by jobs still
        # running on drained or down nodes (their usage counts, so must their devices)
        capacity = dict(self.free.base.up_capacity)
        for node in self.free.base.offline:
            held = index.nodes.get(node.id)
            if held is not None and held.devices:
                capacity[node.gpu_type] = capacity.get(node.gpu_type, 0) + len(held.devices)
        weights = snapshot.usage_weights
        #: weighted GPUs each project holds (fair share's "now"), as the cycle admits
        self.held = held_weighted(index.usage, weights)
        self.weights = weights
        self.preempting = list(index.preempting.values())
        #: per node, what jobs admitted this cycle hold and until when
        self.admitted_on: dict[str, list[tuple[float, Allocation]]] = {}
        #: stopping jobs whose devices a reclaiming job will take (not free for others)
        self.promised: set[str] = set()
        #: GPUs that jobs waiting on preemption will take, by (project, GPU type)
        self.reclaimed: dict[tuple[str, str], int] = {}
        self.quota = QuotaTree(snapshot.projects, snapshot.cohorts, capacity, index.usage)
        self.limits = LimitTracker(
            snapshot.user_limits, snapshot.project_limits, index.counts, index.gpus
        )
        competing = [p for p, q in snapshot.queues.items() if q]
        self.fairshare = FairShare(
            snapshot.usage,
            snapshot.projects,
            competing,
            sum(gpus * weights.get(t, 1.0) for t, gpus in capacity.items()),
            self.config,
        )
        #: what each budget can still pay, as this cycle admits jobs
        self.budgets = dict(snapshot.budgets)
        self.admissions: list[Admission] = []
        self.preemptions: list[Preemption] = []
        self.estimates: list[Estimate] = []
        self.waiting: dict[str, PendingReason] = {}
        #: the backfill reservations, in the order they were made (at most
        #: ``bf_reservations``)
        self.shadows: list[Shadow] = []
        #: what jobs overlapping a set of reservations may not use (``held_for``)
        self._held: dict[tuple[int, ...], tuple[Blocked, Keep]] = {}
        self.victims: set[str] = set()
        #: nodes where a job is being preempted (before or by this cycle): they free now
        self.going_on: set[str] = {a.node_id for r in self.preempting for a in r.allocations}
        self.preempt_attempts = 0
        self._preemptible: dict[str, Preemptible] = {}
        #: earliest starts without preemption by job shape, once a cycle (``worth_it``)
        self._starts: dict[tuple[object, ...], float | None] = {}
        #: per GPU type, the stopping jobs not promised to a job (until either changes)
        self._stopping: dict[str, list[RunningJob]] = {}
        self.misses = 0
        #: misses per project this round, and the most one project may have (its share)
        self.project_misses: dict[str, int] = {}
        self.share = self.config.bf_max_job_test
        self.stopped = False
        #: per project, the queue indices examined, and the first one that may not be
        self.examined: dict[str, set[int]] = {}
        self.cursor: dict[str, int] = {}

    # -- order ------------------------------------------------------------------------

    def entry(self, project_id: str, index: int, job: PendingJob, tier: int) -> _Entry:
        """The heap entry of ``job``, at ``index`` in its project's queue, of known tier."""
        share = self.fairshare.key(
            project_id, self.held.get(project_id, 0), self.now - job.submitted_at
        )
        return (tier, share, queue_key(job), project_id, index)

    def within_guarantee(self, job: PendingJob) -> bool:
        """It fits its project's nominal quota (and allocation) on some accepted type."""
        types = job.gpu_types or self.free.gpu_types
        if job.project_id not in self.budgets:
            return self.runs_unallocated(job) and self.quota.within_nominal_on_any(
                job.project_id, types, job.total_gpus
            )
        return any(
            self.quota.within_nominal(job.project_id, t, job.total_gpus) and self.fundable(job, t)
            for t in types
        )

    def wide_node(self, job: PendingJob) -> bool:
        """It needs a whole node (as many GPUs as the widest node of an accepted type
        has), its project's nominal quota of that type could hold it, and the project
        is not borrowing that type: only the project's own running jobs leave too
        little of the guarantee for it now. Such a single-node job is ordered with
        guaranteed work, neither passed by its project's narrower jobs nor put behind
        other projects' borrowing work (docs/scheduling.md, "Wide jobs within the
        guarantee"); gangs are not (holding several nodes idle for them cost more).
        Off with ``SchedulerConfig.wide_within_guarantee``."""
        if not self.config.wide_within_guarantee or job.nodes != 1:
            return False
        widest = self.free.base.buckets  # per type, one bucket per free-device count
        project_id = job.project_id
        for t in self.types(job):
            nominal = self.quota.nominal(project_id, t)
            if (
                job.total_gpus <= nominal
                and job.gpus_per_node >= len(widest.get(t, ())) - 1
                and self.quota.usage(project_id, t) <= nominal
                and self.fundable(job, t)
            ):
                return True
        return False

    def runs_unallocated(self, job: PendingJob) -> bool:
        """A job of a project without an allocation may run: it needs no GPU, or the
        center runs such jobs free of charge (``SchedulerConfig.run_unallocated``)."""
        return not job.gpus_per_node or self.config.run_unallocated

    def types(self, job: PendingJob) -> Sequence[str]:
        return job.gpu_types or self.free.gpu_types

    # -- decide -----------------------------------------------------------------------

    def next_entry(self, project_id: str) -> _Entry | None:
        """The project's next job to examine: its first unexamined job, unless that one
        would borrow and one of the next ``LOOKAHEAD`` fits its guaranteed quota. Work
        inside the guarantee goes first (tier 0), or a job that reclaimed devices by
        preemption would see them taken by others when the victims exit."""
        queue = self.snap.queues[project_id]
        done = self.examined.get(project_id)
        if done is None:
            done = self.examined[project_id] = set()
        first = self.cursor.get(project_id, 0)
        while first in done:
            first += 1
        self.cursor[project_id] = first
        if first >= len(queue):
            return None
        head = queue[first]
        if not head.gpus_per_node or self.within_guarantee(head):  # tier 0
            return self.entry(project_id, first, head, 0)
        if self.wide_node(head):
            return self.entry(project_id, first, head, 0)
        room = self.quota.room(project_id)  # the most GPUs of one type still guaranteed
        if room <= 0:
            return self.entry(project_id, first, head, 1)
        seen, index = 0, first + 1
        while index < len(queue) and seen < LOOKAHEAD:
            if index not in done:
                job = queue[index]
                if 0 < job.total_gpus <= room and self.within_guarantee(job):
                    return self.entry(project_id, index, job, 0)
                seen += 1
            index += 1
        return self.entry(project_id, first, head, 1)

    def reclaimers_first(self) -> None:
        """Jobs the previous cycle left waiting on ``preempting`` are decided before any
        other: the devices their victims free are theirs. Left to the heap, a job found
        behind borrowing work of its own project (``LOOKAHEAD``) or after another
        project's head would see those devices taken by others, and preempt again."""
        entries: list[_Entry] = []
        for job in self.snap.reclaiming:
            queue = self.snap.queues.get(job.project_id)
            if not queue or not job.gpus_per_node or not self.within_guarantee(job):
                continue  # (no longer) within its guarantee: it waits its turn
            try:
                index = queue.index(job)
            except ValueError:  # no longer pending
                continue
            entries.append(self.entry(job.project_id, index, job, 0))
        for _, _, _, project_id, index in sorted(entries):
            if self.misses >= self.config.bf_max_job_test:
                break
            self.examined.setdefault(project_id, set()).add(index)
            self.decide(self.snap.queues[project_id][index], guaranteed_only=True)

    def run(self) -> Plan:
        if self.snap.reclaiming:
            self.reclaimers_first()
        heap = [e for p in sorted(self.snap.queues) if (e := self.next_entry(p)) is not None]
        heapq.heapify(heap)
        #: projects that spent their share this round, with their next entries
        aside: list[_Entry] = []
        self.new_round(len(heap))
        while (heap or aside) and not self.stopped:
            if not heap:  # the others are done: those set aside share what is left
                heap, aside = aside, []
                heapq.heapify(heap)
                self.new_round(len(heap))
            _, _, _, project_id, index = heapq.heappop(heap)
            self.examined[project_id].add(index)
            ahead = index != self.cursor[project_id]  # passed borrowing work of its project
            self.decide(self.snap.queues[project_id][index], guaranteed_only=ahead)
            if self.misses >= self.config.bf_max_job_test:
                break
            following = self.next_entry(project_id)
            if following is None:
                continue
            if self.project_misses.get(project_id, 0) >= self.share:
                aside.append(following)
            else:
                heapq.heappush(heap, following)
        return Plan(
            admissions=tuple(self.admissions),
            preemptions=tuple(self.preemptions),
            estimates=tuple(self.estimates),
            waiting=self.waiting,
        )

    def new_round(self, projects: int) -> None:
        """Share the budget left among ``projects`` still to examine."""
        self.project_misses.clear()
        self.share = max(1, (self.config.bf_max_job_test - self.misses) // max(1, projects))

    def decide(self, job: PendingJob, *, guaranteed_only: bool = False) -> None:
        """Admit ``job`` or record why it waits. ``guaranteed_only``: it was taken ahead of
        its project's queue for fitting the guarantee, so it may not start borrowing."""
        if job.held or job.dependent:  # not a miss: nothing was searched
            self.waiting[job.id] = PendingReason.HELD if job.held else PendingReason.DEPENDENCY
            return None
        if not self.limits.allows(job):
            return self.wait(job, PendingReason.LIMIT)
        if job.project_id not in self.budgets and not self.runs_unallocated(job):
            return self.wait(job, PendingReason.BUDGET)
        types = job.gpu_types or self.free.gpu_types
        if not self.has_nodes(job):
            return self.wait(job, PendingReason.NODES)
        reserved = self.reservation_blocks(job) if self.snap.reservations else None
        if job.gpus_per_node and self.free.free_gpus < job.total_gpus:
            # not enough devices free anywhere: skip the placement search
            return self.cannot_fit(job, types, reserved)
        if job.gpus_per_node:
            allowed = [
                t for t in types if self.quota.available(job.project_id, t) >= job.total_gpus
            ]
            if not allowed:
                if find(job, self.free, types, reserved) is None:
                    return self.cannot_fit(job, types, reserved)
                if self.reclaim(job):
                    return None
                # devices are free, but not for this project: its quota is used up
                return self.wait(job, PendingReason.QUOTA)
            types = allowed
            if guaranteed_only:
                own = [
                    t
                    for t in self.types(job)
                    if self.quota.within_nominal(job.project_id, t, job.total_gpus)
                    and self.fundable(job, t)
                ]
                types = [t for t in types if t in own]
                if not types:
                    return self.cannot_fit(job, own, reserved)
        unfunded = False
        if job.gpus_per_node and job.project_id in self.budgets:
            fundable = [t for t in types if self.fundable(job, t)]
            if fundable:
                types = fundable
            elif self.budgets[job.project_id].unfunded_ok:
                unfunded = True  # runs unpaid, so only as a preemptible borrower
            else:
                return self.wait(job, PendingReason.BUDGET)
        # the reservations its expected run would overlap: it may not use their devices
        shadows = [s for s in self.shadows if s.blocks(self.now, job.expected_s)]
        if shadows:
            placement = find(job, self.free, types, *self.held_for(shadows, reserved))
        else:
            placement = find(job, self.free, types, reserved)
        if placement is not None:
            return self.admit(job, placement, unfunded=unfunded)
        if shadows and find(job, self.free, types, reserved) is not None:
            # it would fit, but on what is reserved for earlier jobs' starts
            gang = any(s.gang for s in shadows)
            return self.wait(job, PendingReason.GANG if gang else PendingReason.PRIORITY)
        if reserved and find(job, self.free, types, None) is not None:
            return self.wait(job, PendingReason.RESERVATION)
        return self.cannot_fit(job, types, reserved)

    def held_for(self, shadows: list[Shadow], reserved: Blocked | None) -> tuple[Blocked, Keep]:
        """``held_for(shadows, reserved)``, merged once per set of reservations in a cycle
        (reservations never change once made; many jobs overlap the same ones)."""
        if reserved is not None:
            return held_for(shadows, reserved)
        key = tuple(id(s) for s in shadows)  # self.shadows keeps them alive
        found = self._held.get(key)
        if found is None:
            found = self._held[key] = held_for(shadows, None)
        return found

    def has_nodes(self, job: PendingJob) -> bool:
        """Some node of a type the job accepts is up (else it waits on ``nodes``)."""
        if not job.gpus_per_node:
            return bool(self.free.by_id)
        up = self.free.gpu_types
        return any(t in up for t in job.gpu_types) if job.gpu_types else bool(up)

    def cannot_fit(self, job: PendingJob, types: Sequence[str], reserved: Blocked | None) -> None:
        """No room for it: reclaim its guaranteed quota, or wait (maybe with a reservation)."""
        if self.reclaim(job):
            return None
        return self.blocked(job, types, reserved)

    def blocked(self, job: PendingJob, types: Sequence[str], reserved: Blocked | None) -> None:
        """Not enough devices: the first ``bf_reservations`` such jobs get backfill
        reservations (without backfill, the first stops the cycle)."""
        if len(self.shadows) < self.config.bf_reservations:
            self.reserve(job, types, reserved)
        if not self.config.backfill:
            self.stopped = True
        return self.wait(job, PendingReason.RESOURCES)

    def fundable(self, job: PendingJob, gpu_type: str) -> bool:
        """Its project's allocation can hold its worst case on ``gpu_type`` (or the
        project is not under allocation control)."""
        budget = self.budgets.get(job.project_id)
        return budget is None or budget.hold(gpu_type, job.total_gpus, job.time_limit_s) is not None

    def admit(self, job: PendingJob, placement: Placement, *, unfunded: bool = False) -> None:
        gpu_type = placement[0]
        allocations = take(job, self.free, placement)
        borrowed = unfunded
        if job.gpus_per_node:
            borrowed = borrowed or not self.quota.within_nominal(
                job.project_id, gpu_type, job.total_gpus
            )
            self.quota.add(job.project_id, gpu_type, job.total_gpus)
            budget = self.budgets.get(job.project_id)
            held = (
                None
                if unfunded or budget is None
                else budget.hold(gpu_type, job.total_gpus, job.time_limit_s)
            )
            if budget is not None and held is not None:
                won, secs = held
                left = dict(budget.gpu_seconds_left)
                left[gpu_type] -= secs
                self.budgets[job.project_id] = replace(
                    budget, won_left=budget.won_left - won, gpu_seconds_left=left
                )
        self.limits.add(job)
        self.held[job.project_id] = self.held.get(
            job.project_id, 0.0
        ) + job.total_gpus * self.weights.get(gpu_type, 1.0)
        end = self.now + job.time_limit_s
        for a in allocations:
            on = self.admitted_on.get(a.node_id)
            if on is None:
                self.admitted_on[a.node_id] = [(end, a)]
            else:
                on.append((end, a))
        self.admissions.append(
            Admission(job.id, gpu_type, allocations, borrowed, funded=not unfunded)
        )

    def wait(self, job: PendingJob, reason: PendingReason) -> None:
        self.waiting[job.id] = reason
        self.misses += 1
        self.project_misses[job.project_id] = self.project_misses.get(job.project_id, 0) + 1

    # -- blocked devices ----------------------------------------------------------------

    def reservation_blocks(self, job: PendingJob) -> Blocked | None:
        if not self.snap.reservations:
            return None
        blocked: dict[str, set[int]] = {}
        for r in self.snap.reservations:
            if r.blocks(job.project_id, self.now, self.now + job.time_limit_s):
                for node_id, devices in r.devices:
                    blocked.setdefault(node_id, set()).update(devices)
        return {n: frozenset(d) for n, d in blocked.items()} or None

    def node_releases(self, node_id: str) -> list[tuple[float, Allocation]]:
        """What ``node_id`` gets back, in order of when: jobs being preempted now, then
        running jobs at the end of their time limits merged with this cycle's admissions
        (and the placements promised to reclaiming jobs)."""
        held = self.index.nodes.get(node_id)
        admitted = self.admitted_on.get(node_id)
        if held is None:
            return sorted(admitted, key=lambda r: r[0]) if admitted else []
        jobs = held.jobs
        changed = self.victims or self.index.preempting or self.promised
        if not changed and not admitted:  # the common case, kept cheap
            return [
                (end, a)
                for end, job_id in held.by_end
                for a in jobs[job_id].allocations
                if a.node_id == node_id
            ]
        stopping: list[tuple[float, Allocation]] = []
        later: list[tuple[float, Allocation]] = []
        for end, job_id in held.by_end:
            r = jobs[job_id]
            going = r.preempting or job_id in self.victims
            if going and job_id in self.promised:
                continue  # the reclaiming job holds these next (in admitted_on)
            target = stopping if going else later
            target += [
                (self.now if going else end, a) for a in r.allocations if a.node_id == node_id
            ]
        if admitted:
            later = sorted(later + admitted, key=lambda r: r[0])
        return stopping + later

    def first_release(self, node_id: str, missing: int = 0) -> float:
        """A lower bound of when ``node_id`` frees enough (for a best-first search):
        ``missing`` more devices, or (``missing`` <= 0) anything at all.

        Running jobs give back their ``missing``-th device at ``device_ends[missing - 1]``
        at the earliest; what this cycle admitted there may free sooner; what is being
        preempted frees now."""
        held = self.index.nodes.get(node_id)
        bound = float("inf")
        if held is not None and held.by_end:
            if missing <= 0:
                bound = held.by_end[0][0]
            elif missing <= len(held.device_ends):
                bound = held.device_ends[missing - 1]
            if node_id in self.going_on:
                bound = self.now
        admitted = self.admitted_on.get(node_id)
        if admitted:
            bound = min(bound, *(end for end, _ in admitted))
        return bound

    def reserve(self, job: PendingJob, types: Sequence[str], reserved: Blocked | None) -> None:
        """Reserve ``job``'s earliest start. Devices of earlier reservations are out of
        its reach for good (a pessimistic start: they are held from their own starts
        until their ends, which the search does not model), so the reservations never
        share a device and each later one only protects a start later than it could be."""
        if not job.gpus_per_node:
            return
        if self.shadows:
            reserved = held_for(self.shadows, reserved)[0]
        estimate = earliest_start(
            job, self.free, self.node_releases, self.first_release, types, self.now, reserved
        )
        if estimate is None:
            return
        self.estimates.append(estimate)
        self.shadows.append(
            Shadow(
                estimate,
                {a.node_id: frozenset(a.devices) for a in estimate.placement},
                {a.node_id: (a.cpus, a.memory_mb) for a in estimate.placement},
                gang=job.nodes > 1,
            )
        )

    # -- preemption -------------------------------------------------------------------

    def reclaim(self, job: PendingJob) -> bool:
        """Preempt borrowers for a job within its nominal quota; True if it now waits on them."""
        if not (self.config.preemption and job.gpus_per_node):
            return False
        for gpu_type in self.types(job):
            # what earlier jobs of its project reclaim this cycle counts against its
            # guarantee too: else each of them would preempt for the same free quota
            key = (job.project_id, gpu_type)
            claimed = self.reclaimed.get(key, 0) + job.total_gpus
            if not self.quota.within_nominal(job.project_id, gpu_type, claimed):
                continue
            if self.waits_on_preemption(job, gpu_type):
                self.reclaimed[key] = claimed
                self.wait(job, PendingReason.PREEMPTING)
                return True
            if self.preempt_attempts >= self.config.preempt_max_attempts:
                return False
            self.preempt_attempts += 1
            victims = find_victims(
                job,
                gpu_type,
                self.preemptible(gpu_type),
                self.victims,
                self.free,
                self.quota,
                self.config,
                self.reservation_blocks(job),
            )
            if victims and not self.worth_it(job, gpu_type, victims):
                continue
            if victims:
                self.reclaimed[key] = claimed
                for v in victims:
                    self.victims.add(v.id)
                    self.going_on.update(a.node_id for a in v.allocations)
                    self.preemptions.append(
                        Preemption(v.id, job.id, f"preempted to reclaim quota for {job.id}")
                    )
                self.promise(job, gpu_type, victims)
                self.preempting.extend(victims)
                self._stopping.clear()
                self.wait(job, PendingReason.PREEMPTING)
                return True
        return False

    def worth_it(self, job: PendingJob, gpu_type: str, victims: list[RunningJob]) -> bool:
        """Whether stopping ``victims`` loses at most ``reclaim_loss_ratio`` times what
        ``job`` gains: their GPU-seconds since their last checkpoints against its GPUs x
        the wait it would have without them (its earliest start if running jobs end by
        their time limits, the backfill estimate). A job that could never start without
        preemption gains without bound; so does one whose estimate is not in the future
        (it counts devices that are free now but not within the job's quota, or held by
        jobs overrunning their limits): the estimate knows nothing, the guarantee holds."""
        ratio = self.config.reclaim_loss_ratio
        if ratio == float("inf"):
            return True
        loss = sum(v.loss(self.now) for v in victims)
        if loss <= 0:
            return True
        blocked = self.reservation_blocks(job)
        # jobs of one shape wait alike: searched once per cycle (what the cycle admits
        # or preempts after that moves their start a little; it is an estimate)
        shape = (
            gpu_type,
            job.gpus_per_node,
            job.nodes,
            job.cpus_per_node,
            job.memory_mb_per_node,
            None if blocked is None else tuple(sorted(blocked.items())),
        )
        if shape in self._starts:
            at = self._starts[shape]
        else:
            estimate = earliest_start(
                job, self.free, self.node_releases, self.first_release, [gpu_type], self.now,
                blocked,
            )  # fmt: skip
            at = self._starts[shape] = None if estimate is None else estimate.at
        if at is None or at <= self.now:
            # it could never start, or the estimate knows nothing: devices free now but
            # not for its quota, or held by jobs past their time limits
            return True
        return loss <= ratio * job.total_gpus * (at - self.now)

    def promise(self, job: PendingJob, gpu_type: str, stopping: list[RunningJob]) -> bool:
        """Where ``job`` fits once ``stopping`` jobs are gone; if it does, those of them it
        needs are promised to it: the backfill reservation will not count their devices
        as free, and sees ``job`` holding its placement until its time limit."""
        for r in stopping:
            for a in r.allocations:
                self.free.release(a)
            self.quota.remove(r.project_id, gpu_type, r.gpus)
        try:
            fits = self.quota.available(job.project_id, gpu_type) >= job.total_gpus
            placement = (
                find(job, self.free, [gpu_type], self.reservation_blocks(job)) if fits else None
            )
        finally:
            for r in stopping:
                for a in r.allocations:
                    self.free.take_exact(a)
                self.quota.add(r.project_id, gpu_type, r.gpus)
        if placement is None:
            return False
        used = {(nf.node.id, d) for nf, devices in placement[1] for d in devices}
        for r in stopping:
            if any((a.node_id, d) in used for a in r.allocations for d in a.devices):
                self.promised.add(r.id)
                self._stopping.clear()
        end = self.now + job.time_limit_s
        for nf, devices in placement[1]:
            alloc = Allocation(nf.node.id, devices, job.cpus_per_node, job.memory_mb_per_node)
            self.admitted_on.setdefault(nf.node.id, []).append((end, alloc))
            # The devices of its placement that are free now are held for it: taken by a
            # later job of this cycle, they would leave it short when the victims exit,
            # and it would preempt again (and again) instead of starting.
            now_free = self.free.by_id.get(nf.node.id)
            if now_free is not None:
                held = tuple(d for d in devices if d in now_free.devices)
                if held:
                    self.free.take_exact(Allocation(nf.node.id, held, 0, 0))
        return True

    def waits_on_preemption(self, job: PendingJob, gpu_type: str) -> bool:
        """Borrowers already stopping would make room: wait for them, preempt no more."""
        stopping = self._stopping.get(gpu_type)
        if stopping is None:
            stopping = self._stopping[gpu_type] = [
                r for r in self.preempting if r.gpu_type == gpu_type and r.id not in self.promised
            ]
        return bool(stopping) and self.promise(job, gpu_type, stopping)

    def preemptible(self, gpu_type: str) -> Preemptible:
        """Running jobs of ``gpu_type`` preemption may consider at all, cheapest to lose
        first; computed once per cycle and type."""
        found = self._preemptible.get(gpu_type)
        if found is None:
            found = preemptible(self.index, gpu_type, self.now, self.config)
            self._preemptible[gpu_type] = found
        return found


def held_for(shadows: Sequence[Shadow], reserved: Blocked | None) -> tuple[Blocked, Keep]:
    """What a job overlapping ``shadows`` may not use: their devices besides ``reserved``,
    and the CPUs and memory they keep on each node."""
    blocked = reserved
    keep: dict[str, tuple[int, int]] = {}
    for shadow in shadows:
        blocked = shadow.merged(blocked)
        for node_id, (cpus, memory) in shadow.keep.items():
            had = keep.get(node_id, (0, 0))
            keep[node_id] = (had[0] + cpus, had[1] + memory)
    return blocked or {}, keep


def plan(snapshot: Snapshot, now: float) -> Plan:
    """Decide which pending jobs start now and where, and what to preempt. Pure."""
    if not gc.isenabled():
        return _Cycle(snapshot, now).run()
    # A collection during the cycle would traverse the caller's long-lived objects (a
    # backlog of 100,000 jobs) to find nothing: what the cycle allocates is freed by
    # reference counting or returned. The next allocation after it collects what is left.
    gc.disable()
    try:
        return _Cycle(snapshot, now).run()
    finally:
        gc.enable()
