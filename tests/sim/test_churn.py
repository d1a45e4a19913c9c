"""A tiny trace that used to churn: reclaim preemption that frees devices the reclaiming
job never gets (docs/scheduling.md, "Reclaim by preemption").

One node of 8 GPUs. B (no quota) borrows 7 of them with long jobs from 0; a short job of
B frees the 8th at 200. At 300 A (nominal quota 8) submits a 2-GPU job and B a 1-GPU
job. A's job is within its guarantee but finds one free device: it preempts one of B's
borrowers and counts on the free device. Before, B's new job took that free device in
the same cycle; when the victim exited, A's job was one device short again, preempted
the next borrower, and the requeued victim took the freed device back: one preemption
every cycle for as long as B had borrowers old enough to preempt (commit 83c70a8: 1,190
preemptions, and A's job started only at 10 h, when B's jobs ended). Now the free device is
held for A's job during the cycle, and A's job is decided first in the next one: one
preemption, and A's job starts when its victim exits.
"""

from __future__ import annotations

from axcenter.model.snapshot import SchedulerConfig
from axcenter.sim.cluster import ClusterSpec, NodeGroup
from axcenter.sim.engine import SimOptions, simulate
from axcenter.sim.workload import TraceJob, Workload

CLUSTER = ClusterSpec(node_groups=[NodeGroup(name="n", gpu_type="H100", gpus_per_node=8, count=1)])
HOURS = 3600.0

JOBS = [
    *(TraceJob(f"b{i}", 0.0, 10 * HOURS, 1, tenant="B") for i in range(7)),
    TraceJob("b-short", 0.0, 200.0, 1, tenant="B"),
    TraceJob("a1", 300.0, HOURS, 2, tenant="A"),
    TraceJob("b-late", 300.0, 10 * HOURS, 1, tenant="B"),
]


def replay(policy: str = "axcenter") -> tuple[int, float]:
    """(preemptions, when a1 first started)."""
    workload = Workload("churn", JOBS, quotas={"A": {"H100": 8}})
    options = SimOptions(
        interval_s=30.0, grace_s=30.0, record_starts=True, config=SchedulerConfig()
    )
    result = simulate(workload, CLUSTER, policy, options)
    first = min(t for t, job_id, _, _ in result.starts if job_id == "a1")
    return int(result.summary()["preemptions"]), first


def test_one_preemption_and_the_reclaiming_job_starts_when_its_victim_exits() -> None:
    preemptions, a1_starts = replay()
    assert preemptions == 1
    assert a1_starts == 330.0  # its victim preempted at 300 exits after the 30 s grace


def test_without_preemption_a_waits_for_a_borrower_to_end() -> None:
    preemptions, a1_starts = replay("axcenter-nopreempt")
    assert preemptions == 0
    assert a1_starts >= 10 * HOURS
