"""In-memory cluster state: the loop's cache of what the store says is active.

Kueue keeps pending workloads and admitted usage in memory and takes a snapshot of that
cache each cycle instead of reading the database; so does axcenter. The cache is owned by
the control loop thread; the store stays the source of truth, and ``reconcile`` rebuilds
the cache from it after a restart or any failed cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from axcenter.model.cluster import Node
from axcenter.model.plan import PendingReason
from axcenter.model.snapshot import PendingJob, RunningJob, Snapshot

__all__ = ["ClusterState"]


@dataclass
class ClusterState:
    nodes: dict[str, Node] = field(default_factory=dict)
    pending: dict[str, PendingJob] = field(default_factory=dict)
    running: dict[str, RunningJob] = field(default_factory=dict)
    #: the spec of every active job, kept so that a requeued job can wait again
    specs: dict[str, PendingJob] = field(default_factory=dict)
    #: why each pending job waits, from the latest plan (read by the API)
    reasons: dict[str, PendingReason] = field(default_factory=dict)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            nodes=tuple(self.nodes.values()),
            running=tuple(self.running.values()),
            pending=tuple(self.pending.values()),
        )

    def add_pending(self, job: PendingJob) -> None:
        self.specs[job.id] = job
        self.pending[job.id] = job

    def forget(self, job_id: str) -> None:
        self.pending.pop(job_id, None)
        self.running.pop(job_id, None)
        self.specs.pop(job_id, None)

    def requeue(self, job_id: str) -> None:
        self.running.pop(job_id, None)
        spec = self.specs.get(job_id)
        if spec is not None:
            self.pending[job_id] = spec
