"""RunningIndex: aggregates of the running jobs, kept up to date by whoever owns them.

A cycle needs, for every node, what is held and what is free; for every project and GPU
type, the GPUs in use; per user and project, running jobs and GPUs; and per node the
running jobs in order of the end of their time limits. Recomputing these from 10,000
running jobs would cost more than the whole rest of a cycle, so the live cache and the
simulator keep one index and update it as jobs start and end (``add``/``remove``).
``plan`` only reads it: what it changes while planning it copies first (a node, a bucket
of nodes, a project's counts), which costs what the cycle changes, not O(jobs).

Two orders serve the searches of a cycle without sorting running jobs each time:

- per node, ``device_ends``: the end of the time limit of the job holding each held
  device, ascending. Its ``k``-th entry is the earliest moment ``k`` devices come back,
  a lower bound the backfill search ranks nodes by.
- per GPU type and (priority, GPUs), ``by_start``: the jobs by ``saved_at`` (their last
  checkpoint, else their start), latest first. Within one such class, a later mark
  means less work lost if stopped, so the preemption search merges these few lists
  (cheapest first) and reads only as far as it needs.

And the free capacity of the schedulable nodes (``free_nodes``): per node what is free,
per GPU type the nodes bucketed by free devices, each bucket in name order. It is built
once for a node list and then kept up to date as jobs start and end, so a cycle starts
from it without a pass over the nodes; the cycle's own changes go to an overlay
(``sched.free.FreeCapacity``), never to it.

A snapshot without an index gets one built from its running jobs (tests, small cases).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from axcenter.model.cluster import Allocation, Node, NodeState
from axcenter.model.snapshot import RunningJob

__all__ = ["FreeNodes", "NodeFree", "NodeHeld", "RunningIndex"]


@dataclass(slots=True)
class NodeHeld:
    devices: set[int] = field(default_factory=set)
    cpus: int = 0
    memory_mb: int = 0
    jobs: dict[str, RunningJob] = field(default_factory=dict)
    #: (ends_by, job id) of the jobs here, ascending: what frees first
    by_end: list[tuple[float, str]] = field(default_factory=list)
    #: one entry per held device: the end of its job's time limit, ascending
    device_ends: list[float] = field(default_factory=list)


@dataclass(slots=True)
class NodeFree:
    """What one schedulable node has free."""

    node: Node
    devices: list[int]  # free device indices, ascending
    cpus: int
    memory_mb: int

    def usable(self, blocked: Mapping[str, frozenset[int]] | None) -> list[int]:
        """The free devices not in ``blocked`` (devices a job must not use, by node id)."""
        if not blocked:
            return self.devices
        held = blocked.get(self.node.id)
        return [d for d in self.devices if d not in held] if held else self.devices


def _name(node: Node) -> str:
    return node.name


class FreeNodes:
    """Free capacity of the schedulable (up) nodes of one node list, given what runs.

    ``by_id`` and ``by_rank`` hold one ``NodeFree`` per up node, in name order (``rank``:
    the position in it). ``buckets[gpu type][k]``: the ranks of the nodes of that type
    with ``k`` free devices, ascending. Kept up to date by ``RunningIndex``; readers must
    not change it.
    """

    def __init__(self, nodes: tuple[Node, ...], held: Mapping[str, NodeHeld]) -> None:
        self.nodes = nodes
        self.by_id: dict[str, NodeFree] = {}
        self.by_rank: list[NodeFree] = []
        self.rank: dict[str, int] = {}
        self.buckets: dict[str, list[list[int]]] = {}
        self.free_gpus = 0
        #: devices of the up nodes, by GPU type (types with some)
        self.up_capacity: dict[str, int] = {}
        #: drained and down nodes, in list order: they take nothing new
        self.offline = [n for n in nodes if n.state is not NodeState.UP]
        up = NodeState.UP
        for node in sorted(nodes, key=_name):
            if node.state is not up:
                continue
            if node.gpu_count:
                self.up_capacity[node.gpu_type] = (
                    self.up_capacity.get(node.gpu_type, 0) + node.gpu_count
                )
            h = held.get(node.id)
            if h is None:
                nf = NodeFree(node, list(range(node.gpu_count)), node.cpus, node.memory_mb)
            else:
                nf = NodeFree(
                    node=node,
                    devices=[d for d in range(node.gpu_count) if d not in h.devices],
                    cpus=node.cpus - h.cpus,
                    memory_mb=node.memory_mb - h.memory_mb,
                )
            rank = len(self.by_rank)
            self.by_rank.append(nf)
            self.rank[node.id] = rank
            self.by_id[node.id] = nf
            buckets = self.buckets.setdefault(node.gpu_type, [])
            while len(buckets) <= node.gpu_count:
                buckets.append([])
            buckets[len(nf.devices)].append(rank)
            self.free_gpus += len(nf.devices)
        self.gpu_types = sorted(self.buckets)  # types with a schedulable node

    def take(self, alloc: Allocation) -> None:
        """A job started with ``alloc`` (as ``NodeHeld`` counts it: devices as a set)."""
        nf = self.by_id.get(alloc.node_id)
        if nf is not None:
            if alloc.devices:
                gone = alloc.devices  # a few device indices: a tuple is searched fast
                self._set(nf, [d for d in nf.devices if d not in gone])
            nf.cpus -= alloc.cpus
            nf.memory_mb -= alloc.memory_mb

    def give(self, alloc: Allocation) -> None:
        """A job holding ``alloc`` ended."""
        nf = self.by_id.get(alloc.node_id)
        if nf is not None:
            if alloc.devices:
                count = nf.node.gpu_count
                back = [d for d in alloc.devices if 0 <= d < count]
                self._set(nf, sorted({*nf.devices, *back}))
            nf.cpus += alloc.cpus
            nf.memory_mb += alloc.memory_mb

    def _set(self, nf: NodeFree, devices: list[int]) -> None:
        old, new = len(nf.devices), len(devices)
        nf.devices = devices
        if old != new:
            buckets = self.buckets[nf.node.gpu_type]
            rank = self.rank[nf.node.id]
            _discard(buckets[old], rank)
            bisect.insort(buckets[new], rank)
            self.free_gpus += new - old


class RunningIndex:
    def __init__(self, running: Iterable[RunningJob] = ()) -> None:
        self.jobs: dict[str, RunningJob] = {}
        self.nodes: dict[str, NodeHeld] = {}
        self.usage: dict[tuple[str, str], int] = {}  # (project, gpu type) -> GPUs
        self.counts: dict[tuple[str, str], int] = {}  # ("user"|"project", id) -> jobs
        self.gpus: dict[tuple[str, str], int] = {}  # ("user"|"project", id) -> GPUs
        self.preempting: dict[str, RunningJob] = {}
        #: gpu type -> (priority, GPUs) -> (-saved_at, job id) ascending: least to lose first
        self.by_start: dict[str, dict[tuple[int, int], list[tuple[float, str]]]] = {}
        self._free: FreeNodes | None = None
        for job in running:
            self.add(job)

    def free_nodes(self, nodes: tuple[Node, ...]) -> FreeNodes:
        """The free capacity of ``nodes``: built on first use and whenever the node list
        differs from the last one asked for (a node changed), kept up to date by ``add``
        and ``remove`` in between."""
        free = self._free
        if free is None or not (free.nodes is nodes or free.nodes == nodes):
            free = self._free = FreeNodes(nodes, self.nodes)
        return free

    def add(self, job: RunningJob) -> None:
        job_id = job.id
        if job_id in self.jobs:
            self.remove(job_id)
        self.jobs[job_id] = job
        ends_by = job.ends_by
        nodes = self.nodes
        for a in job.allocations:
            held = nodes.get(a.node_id)
            if held is None:
                held = nodes[a.node_id] = NodeHeld()
            if a.devices:
                held.devices.update(a.devices)
                held.device_ends += [ends_by] * len(a.devices)
                held.device_ends.sort()
            held.cpus += a.cpus
            held.memory_mb += a.memory_mb
            if job_id not in held.jobs:
                bisect.insort(held.by_end, (ends_by, job_id))
            held.jobs[job_id] = job
        if self._free is not None:
            for a in job.allocations:
                self._free.take(a)
        self._count(job, 1)
        classes = self.by_start.get(job.gpu_type)
        if classes is None:
            classes = self.by_start[job.gpu_type] = {}
        started = classes.get((job.priority, job.gpus))
        if started is None:
            classes[job.priority, job.gpus] = [(-job.saved_at, job_id)]
        else:
            bisect.insort(started, (-job.saved_at, job_id))
        if job.preempting:
            self.preempting[job_id] = job

    def remove(self, job_id: str) -> RunningJob | None:
        job = self.jobs.pop(job_id, None)
        if job is None:
            return None
        ends_by = job.ends_by
        for a in job.allocations:
            held = self.nodes[a.node_id]
            if a.devices:
                held.devices.difference_update(a.devices)
                for _ in a.devices:
                    _discard(held.device_ends, ends_by)
            held.cpus -= a.cpus
            held.memory_mb -= a.memory_mb
            if held.jobs.pop(job_id, None) is not None:
                _discard(held.by_end, (ends_by, job_id))
        if self._free is not None:
            for a in job.allocations:
                self._free.give(a)
        self._count(job, -1)
        if job.preempting:
            self.preempting.pop(job_id, None)
        classes = self.by_start[job.gpu_type]
        started = classes[job.priority, job.gpus]
        _discard(started, (-job.saved_at, job_id))
        if not started:
            del classes[job.priority, job.gpus]
            if not classes:
                del self.by_start[job.gpu_type]
        return job

    def replace(self, job: RunningJob) -> None:
        """Swap a job for an updated value of itself (e.g. now preempting, or a new
        checkpoint)."""
        self.remove(job.id)
        self.add(job)

    def _count(self, job: RunningJob, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) the job's counts; zeros are not kept."""
        user, project = ("user", job.user_id), ("project", job.project_id)
        counts = self.counts
        for key in (user, project):
            value = counts.get(key, 0) + sign
            if value:
                counts[key] = value
            else:
                counts.pop(key, None)
        gpus = sign * job.gpus
        if not gpus:
            return
        tables: tuple[tuple[dict[Any, int], Any], ...] = (
            (self.gpus, user),
            (self.gpus, project),
            (self.usage, (job.project_id, job.gpu_type)),
        )
        for table, key in tables:
            value = table.get(key, 0) + gpus
            if value:
                table[key] = value
            else:
                table.pop(key, None)


def _discard(ordered: list[Any], item: Any) -> None:
    i = bisect.bisect_left(ordered, item)
    if i < len(ordered) and ordered[i] == item:
        del ordered[i]
