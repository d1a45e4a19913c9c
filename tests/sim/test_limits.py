"""Replayed time limits as users give them, and the quota-violation metric's one-cycle
discount (issue 23)."""

from __future__ import annotations

import pytest

from axcenter.model.snapshot import SchedulerConfig
from axcenter.sim.cluster import ClusterSpec, NodeGroup
from axcenter.sim.engine import SimOptions, simulate
from axcenter.sim.limits import BUCKETS_S, MAX_LIMIT_S, LimitRule, bucket_limit
from axcenter.sim.workload import TraceJob, Workload

H = 3600


def job(job_id: str, duration: float, *, limit: float | None = None) -> TraceJob:
    return TraceJob(id=job_id, submit=0.0, duration=duration, gpus_per_node=1, time_limit=limit)


def test_buckets_round_up_to_what_users_ask() -> None:
    assert bucket_limit(1) == H
    assert bucket_limit(H) == H
    assert bucket_limit(H + 1) == 4 * H
    assert bucket_limit(13 * H) == 24 * H
    assert bucket_limit(7 * 24 * H) == MAX_LIMIT_S
    assert bucket_limit(8 * 24 * H) == 2 * MAX_LIMIT_S  # beyond the maximum: multiples of it


def test_default_rule_never_uses_the_true_duration_beyond_its_bucket() -> None:
    rule = LimitRule()
    jobs = [job(f"j{i}", 100.0 + 7 * i) for i in range(2000)]
    limits = [rule.limit(j, seed=0) for j in jobs]
    assert set(limits) <= set(BUCKETS_S)
    # about 30% ask the maximum, the others the 1-hour bucket their run fits in
    share = limits.count(MAX_LIMIT_S) / len(limits)
    assert 0.27 < share < 0.33
    assert set(limits) == {H, 4 * H, MAX_LIMIT_S}
    # the draw is fixed by job id and seed: the same limits again, others with a new seed
    assert [rule.limit(j, seed=0) for j in jobs] == limits
    assert [rule.limit(j, seed=1) for j in jobs] != limits


def test_shares_trace_and_oracle_rules() -> None:
    j = job("a", 1000.0, limit=5000.0)
    assert LimitRule(max_share=0.0).limit(j, 0) == H
    assert LimitRule(max_share=1.0).limit(j, 0) == MAX_LIMIT_S
    assert LimitRule("trace").limit(j, 0) == 5000
    assert LimitRule("trace", max_share=0.0).limit(job("b", 1000.0), 0) == H
    assert LimitRule("oracle", factor=2.0).limit(j, 0) == 2000
    with pytest.raises(ValueError, match="unknown limit rule"):
        LimitRule("guess")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_share"):
        LimitRule(max_share=1.5)


def test_a_replay_states_its_limit_rule() -> None:
    spec = ClusterSpec(node_groups=[NodeGroup(name="n", gpu_type="H100", gpus_per_node=1, count=1)])
    result = simulate(Workload("w", [job("a", 10.0)]), spec)
    assert "time limits as users give them" in result.notes[-1]
    assert "30% of jobs" in result.notes[-1]
    oracle = simulate(
        Workload("w", [job("a", 10.0)]), spec, options=SimOptions(limits=LimitRule("oracle"))
    )
    assert "oracle" in oracle.notes[-1]


def _violation(jobs: list[TraceJob], quotas: dict[str, dict[str, int]]) -> dict[str, float]:
    spec = ClusterSpec(node_groups=[NodeGroup(name="n", gpu_type="H100", gpus_per_node=2, count=1)])
    options = SimOptions(interval_s=30.0, config=SchedulerConfig(preemption=False))
    result = simulate(Workload("w", jobs, quotas=quotas), spec, "axcenter", options)
    summary: dict[str, float] = result.summary()["quota_violation_by_tenant"]
    return summary


def test_quota_violation_discounts_one_cycle() -> None:
    def tj(job_id: str, submit: float, duration: float, gpus: int, tenant: str) -> TraceJob:
        return TraceJob(
            id=job_id, submit=submit, duration=duration, gpus_per_node=gpus, tenant=tenant
        )

    # "b" (no quota) borrows both GPUs from 0 to 100 (no preemption). "a" (quota 1)
    # submits a 1-GPU job at 10: it is overdue from 40 (one 30 s cycle later) and starts
    # at 100, when "b" ends: 60 GPU-seconds, not the 90 it waited in all.
    borrowed = [tj("b1", 0.0, 100.0, 2, "b"), tj("a1", 10.0, 50.0, 1, "a")]
    assert _violation(borrowed, {"a": {"H100": 1}}) == {"a": pytest.approx(60.0)}
    # a job that starts at the next cycle (here 30, 20 s after it came) is not charged
    idle = [tj("x", 0.0, 100.0, 1, "b"), tj("a1", 10.0, 50.0, 1, "a")]
    assert _violation(idle, {"a": {"H100": 1}}) == {"a": 0.0}
    # a job wider than its tenant's whole quota was never promised a start
    wide = [tj("b1", 0.0, 100.0, 2, "b"), tj("a1", 10.0, 50.0, 2, "a")]
    assert _violation(wide, {"a": {"H100": 1}}) == {"a": 0.0}


def test_quota_violation_owes_only_what_the_guarantee_left_can_hold() -> None:
    # One node of 4 GPUs, no preemption. "a" (quota 2) runs a 1-GPU job from 0 to 200;
    # "b" (no quota) borrows the other 3 GPUs from 0 to 100. "a" submits a 2-GPU job at
    # 10: 1 + 2 > 2, so it could start only beyond the guarantee (the scheduler may not
    # reclaim for it). It is not owed while "a1" runs; the old metric charged the one
    # GPU of room left, 1 x (100 - 40) = 60 GPU-seconds.
    spec = ClusterSpec(node_groups=[NodeGroup(name="n", gpu_type="H100", gpus_per_node=4, count=1)])
    options = SimOptions(interval_s=30.0, config=SchedulerConfig(preemption=False))

    def tj(job_id: str, submit: float, duration: float, gpus: int, tenant: str) -> TraceJob:
        return TraceJob(
            id=job_id, submit=submit, duration=duration, gpus_per_node=gpus, tenant=tenant
        )

    jobs = [tj("a1", 0, 200, 1, "a"), tj("b1", 0, 100, 3, "b"), tj("a2", 10, 50, 2, "a")]
    result = simulate(Workload("w", jobs, quotas={"a": {"H100": 2}}), spec, "axcenter", options)
    assert result.summary()["quota_violation_by_tenant"] == {"a": 0.0}
    # a 1-GPU job in its place fits the room left: owed from 40 until "b1" ends at 100
    jobs[2] = tj("a2", 10, 50, 1, "a")
    result = simulate(Workload("w", jobs, quotas={"a": {"H100": 2}}), spec, "axcenter", options)
    assert result.summary()["quota_violation_by_tenant"] == {"a": pytest.approx(60.0)}


def test_quota_violation_is_owed_on_the_types_a_job_accepts() -> None:
    # Nodes of 2 H100s and 2 A100s, no preemption. "a" (quota H100=2, A100=2) runs 2
    # H100s from 0 to 200; "b" (no quota) borrows both A100s from 0 to 100. "a"'s
    # H100-only job (2 GPUs, at 10) has no H100 guarantee left: not owed, though "a"
    # holds 2 of its 4 GPUs (the old metric charged 2 x (200 - 40) = 320 GPU-seconds:
    # it starts when "a1" ends). Accepting A100 too, it is owed from 40 until "b1" ends
    # at 100, and starts there.
    spec = ClusterSpec(
        node_groups=[
            NodeGroup(name="h", gpu_type="H100", gpus_per_node=2, count=1),
            NodeGroup(name="a", gpu_type="A100", gpus_per_node=2, count=1),
        ]
    )
    options = SimOptions(interval_s=30.0, config=SchedulerConfig(preemption=False))
    quotas = {"a": {"H100": 2, "A100": 2}}

    def tj(job_id: str, submit: float, duration: float, tenant: str, *types: str) -> TraceJob:
        return TraceJob(
            id=job_id,
            submit=submit,
            duration=duration,
            gpus_per_node=2,
            tenant=tenant,
            gpu_types=types,
        )

    base = [tj("a1", 0, 200, "a", "H100"), tj("b1", 0, 100, "b", "A100")]
    only_h100 = simulate(
        Workload("w", [*base, tj("a2", 10, 50, "a", "H100")], quotas=quotas),
        spec,
        "axcenter",
        options,
    )
    assert only_h100.summary()["quota_violation_by_tenant"] == {"a": 0.0}
    either = simulate(
        Workload("w", [*base, tj("a2", 10, 50, "a", "H100", "A100")], quotas=quotas),
        spec,
        "axcenter",
        options,
    )
    assert either.summary()["quota_violation_by_tenant"] == {"a": pytest.approx(2 * 60.0)}


def test_sjf_easy_oracle_orders_and_backfills_by_true_durations() -> None:
    # One node of 2 GPUs; every job asks the maximum, 7 days. "a" (1 GPU, 100 s) starts at
    # 0; "b" (2 GPUs) waits for it: the oracle knows "a" ends at 100, so "c" (30 s) is
    # backfilled at 2 and "d" (200 s, shorter ones first, but it would delay "b") waits.
    def tj(job_id: str, submit: float, duration: float, gpus: int) -> TraceJob:
        return TraceJob(id=job_id, submit=submit, duration=duration, gpus_per_node=gpus)

    jobs = [tj("a", 0, 100, 1), tj("b", 1, 50, 2), tj("d", 2, 200, 1), tj("c", 2, 30, 1)]
    spec = ClusterSpec(node_groups=[NodeGroup(name="n", gpu_type="H100", gpus_per_node=2, count=1)])
    options = SimOptions(interval_s=0.0, record_starts=True, limits=LimitRule(max_share=1.0))
    oracle = simulate(Workload("w", jobs), spec, "sjf-easy", options)
    assert {job_id: t for t, job_id, _, _ in oracle.starts} == {
        "a": 0.0,
        "c": 2.0,
        "b": 100.0,
        "d": 150.0,
    }
    # the default policy sees 7-day limits: "c" cannot be backfilled before "b"'s shadow
    honest = simulate(Workload("w", jobs), spec, "axcenter", options)
    assert {job_id: t for t, job_id, _, _ in honest.starts}["c"] >= 100.0


def test_a_checkpointing_victim_resumes_from_its_last_checkpoint() -> None:
    # "b" (no quota) runs 2 GPUs for 1,000 s from 0; "a" (quota 2) submits 1 GPU at 350
    # and preempts it; "b" stops at 380 (30 s grace). Checkpointing every 100 s, it lost
    # 2 x 80 GPU-seconds and resumes at 430, when "a" ends, with 700 s left.
    def tj(job_id: str, submit: float, duration: float, gpus: int) -> TraceJob:
        return TraceJob(
            id=job_id, submit=submit, duration=duration, gpus_per_node=gpus, tenant=job_id
        )

    jobs = [tj("b", 0, 1000, 2), tj("a", 350, 50, 1)]
    spec = ClusterSpec(node_groups=[NodeGroup(name="n", gpu_type="H100", gpus_per_node=2, count=1)])
    workload = Workload("w", jobs, quotas={"a": {"H100": 2}})

    def replay(every: float) -> tuple[float, dict[str, float]]:
        options = SimOptions(interval_s=0.0, checkpoint_every_s=every)
        result = simulate(workload, spec, "axcenter", options)
        return result.lost_gpu_s, dict(zip(result.ids, result.end.tolist(), strict=True))

    assert replay(100.0) == (160.0, {"b": 1130.0, "a": 430.0})
    assert replay(0.0) == (760.0, {"b": 1430.0, "a": 430.0})  # from scratch
