"""RunningIndex: aggregates of the running jobs, kept up to date by whoever owns them.

A cycle needs, for every node, what is held; for every project and GPU type, the GPUs in
use; per user and project, running jobs and GPUs; and the running jobs in order of their
time limits. Recomputing these from 10,000 running jobs would cost more than the whole
rest of a cycle, so the live cache and the simulator keep one index and update it as jobs
start and end (``add``/``remove``). ``plan`` only reads it: what it changes while planning
it copies first (per node, per project), which costs O(nodes + projects), not O(jobs).

Two orders serve the searches of a cycle without sorting running jobs each time:

- per node, ``device_ends``: the end of the time limit of the job holding each held
  device, ascending. Its ``k``-th entry is the earliest moment ``k`` devices come back,
  a lower bound the backfill search ranks nodes by.
- per GPU type and (priority, GPUs), ``by_start``: the jobs newest first. Within one such
  class, newer means less progress lost, so the preemption search merges these few
  lists (cheapest first) and reads only as far as it needs.

A snapshot without an index gets one built from its running jobs (tests, small cases).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from axcenter.model.snapshot import RunningJob

__all__ = ["NodeHeld", "RunningIndex"]


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


class RunningIndex:
    def __init__(self, running: Iterable[RunningJob] = ()) -> None:
        self.jobs: dict[str, RunningJob] = {}
        self.nodes: dict[str, NodeHeld] = {}
        self.usage: dict[tuple[str, str], int] = {}  # (project, gpu type) -> GPUs
        self.counts: dict[tuple[str, str], int] = {}  # ("user"|"project", id) -> jobs
        self.gpus: dict[tuple[str, str], int] = {}  # ("user"|"project", id) -> GPUs
        self.held: dict[str, int] = {}  # project -> GPUs (all types)
        self.by_end: list[tuple[float, str]] = []  # (ends_by, job id), ascending
        self.preempting: dict[str, RunningJob] = {}
        #: gpu type -> (priority, GPUs) -> (-started_at, job id) ascending: newest first
        self.by_start: dict[str, dict[tuple[int, int], list[tuple[float, str]]]] = {}
        for job in running:
            self.add(job)

    def add(self, job: RunningJob) -> None:
        if job.id in self.jobs:
            self.remove(job.id)
        self.jobs[job.id] = job
        for a in job.allocations:
            held = self.nodes.get(a.node_id)
            if held is None:
                held = self.nodes[a.node_id] = NodeHeld()
            held.devices.update(a.devices)
            for _ in a.devices:
                bisect.insort(held.device_ends, job.ends_by)
            held.cpus += a.cpus
            held.memory_mb += a.memory_mb
            if job.id not in held.jobs:
                bisect.insort(held.by_end, (job.ends_by, job.id))
            held.jobs[job.id] = job
        self._count(job, 1)
        bisect.insort(self.by_end, (job.ends_by, job.id))
        classes = self.by_start.setdefault(job.gpu_type, {})
        bisect.insort(classes.setdefault((job.priority, job.gpus), []), (-job.started_at, job.id))
        if job.preempting:
            self.preempting[job.id] = job

    def remove(self, job_id: str) -> RunningJob | None:
        job = self.jobs.pop(job_id, None)
        if job is None:
            return None
        for a in job.allocations:
            held = self.nodes[a.node_id]
            held.devices.difference_update(a.devices)
            for _ in a.devices:
                _discard(held.device_ends, job.ends_by)
            held.cpus -= a.cpus
            held.memory_mb -= a.memory_mb
            if held.jobs.pop(job_id, None) is not None:
                _discard(held.by_end, (job.ends_by, job.id))
        self._count(job, -1)
        self.preempting.pop(job_id, None)
        _discard(self.by_end, (job.ends_by, job.id))
        classes = self.by_start[job.gpu_type]
        started = classes[job.priority, job.gpus]
        _discard(started, (-job.started_at, job.id))
        if not started:
            del classes[job.priority, job.gpus]
            if not classes:
                del self.by_start[job.gpu_type]
        return job

    def replace(self, job: RunningJob) -> None:
        """Swap a job for an updated value of itself (e.g. now preempting)."""
        self.remove(job.id)
        self.add(job)

    def _count(self, job: RunningJob, sign: int) -> None:
        for key, table, amount in (
            ((job.project_id, job.gpu_type), self.usage, job.gpus),
            (("user", job.user_id), self.counts, 1),
            (("project", job.project_id), self.counts, 1),
            (("user", job.user_id), self.gpus, job.gpus),
            (("project", job.project_id), self.gpus, job.gpus),
        ):
            value = table.get(key, 0) + sign * amount
            if value:
                table[key] = value
            else:
                table.pop(key, None)
        held = self.held.get(job.project_id, 0) + sign * job.gpus
        if held:
            self.held[job.project_id] = held
        else:
            self.held.pop(job.project_id, None)


def _discard(ordered: list[Any], item: Any) -> None:
    i = bisect.bisect_left(ordered, item)
    if i < len(ordered) and ordered[i] == item:
        del ordered[i]
