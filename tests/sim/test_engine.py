"""The event engine on tiny traces whose outcome is worked out by hand.

Every expected number below follows from the trace in a line or two; the comments say
how. Times are simulated seconds from the trace start.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from axcenter.model.snapshot import Reservation, SchedulerConfig
from axcenter.sim.cluster import ClusterSpec, NodeGroup
from axcenter.sim.engine import NodeFailure, SimOptions, simulate
from axcenter.sim.limits import LimitRule
from axcenter.sim.metrics import STATES, SimResult
from axcenter.sim.policies import POLICIES
from axcenter.sim.workload import TraceJob, Workload


def cluster(
    nodes: int = 1, gpus: int = 2, *, price: int = 0, gpu_type: str = "H100"
) -> ClusterSpec:
    return ClusterSpec(
        node_groups=[NodeGroup(name="n", gpu_type=gpu_type, gpus_per_node=gpus, count=nodes)],
        prices={gpu_type: price} if price else {},
    )


def job(
    job_id: str,
    submit: float,
    duration: float,
    gpus: int = 1,
    *,
    nodes: int = 1,
    tenant: str = "default",
    limit: float | None = None,
) -> TraceJob:
    return TraceJob(
        id=job_id,
        submit=submit,
        duration=duration,
        gpus_per_node=gpus,
        nodes=nodes,
        tenant=tenant,
        time_limit=limit,
    )


def run(
    jobs: list[TraceJob],
    spec: ClusterSpec | None = None,
    policy: str = "axcenter",
    *,
    quotas: dict[str, dict[str, int]] | None = None,
    **options: object,
) -> SimResult:
    # the limits these traces record (hand-worked below), the usual buckets otherwise
    opts: dict[str, object] = {
        "interval_s": 0.0,
        "record_starts": True,
        "limits": LimitRule("trace", max_share=0.0),
    }
    opts.update(options)
    workload = Workload("test", jobs, quotas=quotas or {})
    return simulate(workload, spec or cluster(), policy, SimOptions(**opts))  # type: ignore[arg-type]


def by_id(result: SimResult, values: np.ndarray) -> dict[str, float]:
    return {job_id: float(v) for job_id, v in zip(result.ids, values, strict=True)}


def starts(
    result: SimResult,
) -> dict[str, list[tuple[float, tuple[tuple[str, tuple[int, ...]], ...]]]]:
    out: dict[str, list[tuple[float, tuple[tuple[str, tuple[int, ...]], ...]]]] = {}
    for t, job_id, _, where in result.starts:
        out.setdefault(job_id, []).append((t, where))
    return out


def test_fifo_hand_checked_jcts() -> None:
    # two 1-GPU jobs fill both GPUs for 10 s; the 2-GPU job runs from 10 to 15
    result = run([job("a", 0, 10), job("b", 0, 10), job("c", 0, 5, gpus=2)], policy="fifo")
    assert by_id(result, result.end - result.submit) == {"a": 10.0, "b": 10.0, "c": 15.0}
    assert result.summary()["makespan_s"] == 15.0
    assert result.summary()["utilization"] == 1.0


def test_sjf_runs_the_shortest_first() -> None:
    result = run([job("a", 0, 10), job("b", 0, 10), job("c", 0, 5, gpus=2)], policy="sjf")
    assert by_id(result, result.end - result.submit) == {"a": 15.0, "b": 15.0, "c": 5.0}


def test_gang_starts_on_all_its_nodes_or_none() -> None:
    # "a" holds one GPU of n-00000 until 10: the 2x2 gang cannot take n-00001 alone
    spec = cluster(nodes=2, gpus=2)
    for policy in POLICIES:
        result = run([job("a", 0, 10), job("g", 0, 20, gpus=2, nodes=2)], spec, policy)
        ((at, where),) = starts(result)["g"]
        assert at == 10.0, policy
        assert where == (("n-00000", (0, 1)), ("n-00001", (0, 1))), policy


def test_backfill_lets_a_short_job_pass_under_axcenter_but_not_fifo() -> None:
    # "b" (2 GPUs) waits for "a" (limit ends at 10): its shadow time is 10. "c" (limit 5)
    # arriving at 2 ends by 7 <= 10, so EASY backfill starts it on the idle GPU at once.
    jobs = [job("a", 0, 10, limit=10), job("b", 1, 10, gpus=2, limit=10), job("c", 2, 5, limit=5)]
    easy = starts(run(jobs, policy="axcenter"))
    assert [easy[j][0][0] for j in "abc"] == [0.0, 10.0, 2.0]
    strict = starts(run(jobs, policy="fifo"))
    assert [strict[j][0][0] for j in "abc"] == [0.0, 10.0, 20.0]


def test_reclaim_by_preemption_with_grace() -> None:
    # B (no quota) borrows both GPUs from 0. A (quota 2) submits at 10: "b1" gets SIGTERM
    # at 10, exits at 13 (grace 3) and is requeued: lost 2 GPUs x 13 s = 26 GPU-s.
    # "a1" runs 13..18; "b1" restarts from scratch at 18 and ends at 118.
    result = run(
        [job("b1", 0, 100, gpus=2, tenant="B"), job("a1", 10, 5, gpus=2, tenant="A")],
        quotas={"A": {"H100": 2}},
        grace_s=3.0,
        config=SchedulerConfig(min_runtime_s=0.0),
    )
    s = starts(result)
    assert [t for t, _ in s["b1"]] == [0.0, 18.0]
    assert [t for t, _ in s["a1"]] == [13.0]
    assert by_id(result, result.end) == {"b1": 118.0, "a1": 18.0}
    assert by_id(result, result.preemptions) == {"b1": 1, "a1": 0}
    assert result.lost_gpu_s == 26.0
    summary = result.summary()
    assert summary["preemptions"] == 1
    # A waited 10..13 with 0 of its 2 guaranteed GPUs: 2 x 3 = 6 GPU-seconds
    assert summary["quota_violation_by_tenant"] == {"A": 6.0}
    # without preemption A waits for b1 to finish
    nopreempt = run(
        [job("b1", 0, 100, gpus=2, tenant="B"), job("a1", 10, 5, gpus=2, tenant="A")],
        policy="axcenter-nopreempt",
        quotas={"A": {"H100": 2}},
        config=SchedulerConfig(min_runtime_s=0.0),
    )
    assert starts(nopreempt)["a1"][0][0] == 100.0
    assert nopreempt.summary()["quota_violation_gpu_s"] == 2 * 90.0


def test_min_runtime_protection_ends_with_a_wakeup() -> None:
    # b1 may be preempted only once it has run 120 s: A's job waits until then (+ grace)
    result = run(
        [job("b1", 0, 1000, gpus=2, tenant="B"), job("a1", 10, 5, gpus=2, tenant="A")],
        quotas={"A": {"H100": 2}},
        grace_s=5.0,
    )
    assert starts(result)["a1"][0][0] == 125.0


def test_tiresias_demotes_and_preempts() -> None:
    # "long" reaches 3,200 GPU-s at 3,200 and drops to the second queue; "short" arrives
    # at 4,000 in the first queue and preempts it (grace 30): short runs 4,030..4,130,
    # long restarts at 4,130 and ends 10,000 s later.
    result = run([job("long", 0, 10_000), job("short", 4000, 100)], cluster(gpus=1), "tiresias")
    s = starts(result)
    assert [t for t, _ in s["long"]] == [0.0, 4130.0]
    assert s["short"][0][0] == 4030.0
    assert by_id(result, result.end) == {"long": 14_130.0, "short": 4130.0}
    assert result.lost_gpu_s == 4030.0


def test_node_failure_requeues_and_repair_restores_capacity() -> None:
    # x on n-00000, y on n-00001 from 0. n-00000 fails at 4: x is requeued (4 GPU-s lost)
    # and restarts on n-00001 when y ends (10..20). z arrives at 12, finds n-00000 down
    # and n-00001 busy, and starts when n-00000 is repaired at 15.
    spec = cluster(nodes=2, gpus=1)
    result = run(
        [job("x", 0, 10), job("y", 0, 10), job("z", 12, 5)],
        spec,
        failures=(NodeFailure("n-00000", at=4.0, repair_at=15.0),),
    )
    s = starts(result)
    assert s["x"] == [(0.0, (("n-00000", (0,)),)), (10.0, (("n-00001", (0,)),))]
    assert s["z"] == [(15.0, (("n-00000", (0,)),))]
    assert by_id(result, result.end) == {"x": 20.0, "y": 10.0, "z": 20.0}
    assert result.failure_requeues == 1
    assert result.lost_gpu_s == 4.0
    capacity = dict(zip(result.times.tolist(), result.capacity.tolist(), strict=True))
    assert capacity[4.0] == 1
    assert capacity[15.0] == 2


def test_reservation_keeps_devices_for_its_project() -> None:
    # the only GPU is reserved for A during [0, 100): B's job (limit 20) waits until 100
    reservation = Reservation("rsv_1", "A", 0.0, 100.0, (("n-00000", (0,)),))
    result = run(
        [job("b", 5, 10, tenant="B", limit=20), job("a", 10, 10, tenant="A", limit=20)],
        cluster(gpus=1),
        reservations=(reservation,),
    )
    assert by_id(result, result.first_start) == {"b": 100.0, "a": 10.0}


def test_time_limits_rejections_and_cost() -> None:
    # 3,600 won per GPU-hour is 1 won per GPU-second. "slow" is cut at its 5 s limit;
    # "huge" needs 4 GPUs on a 2-GPU node: rejected, as the live submit would.
    result = run(
        [job("ok", 0, 10), job("slow", 0, 10, limit=5), job("huge", 0, 1, gpus=4)],
        cluster(price=3600),
    )
    states = {j: STATES[s] for j, s in zip(result.ids, result.state.tolist(), strict=True)}
    assert states == {"ok": "succeeded", "slow": "timed_out", "huge": "rejected"}
    assert by_id(result, result.end)["slow"] == 5.0
    assert by_id(result, result.cost_won) == {"ok": 10, "slow": 5, "huge": 0}
    assert result.summary()["cost_won"] == 15


def random_workload(seed: int, count: int = 300) -> Workload:
    rng = random.Random(seed)
    jobs = []
    t = 0.0
    for i in range(count):
        t += rng.expovariate(1 / 20)
        gpus = rng.choice([1, 1, 1, 2, 4, 8])
        nodes = 2 if gpus == 8 and rng.random() < 0.3 else 1
        jobs.append(
            TraceJob(
                id=f"j{i:04d}",
                submit=round(t, 3),
                duration=round(rng.lognormvariate(5, 1.2), 3) + 1,
                gpus_per_node=gpus,
                nodes=nodes,
                tenant=rng.choice("ABC"),
            )
        )
    return Workload("random", jobs, quotas={"A": {"H100": 8}, "B": {"A100": 4}})


MIXED = ClusterSpec(
    node_groups=[
        NodeGroup(name="h", gpu_type="H100", gpus_per_node=8, count=2),
        NodeGroup(name="a", gpu_type="A100", gpus_per_node=4, count=2),
    ],
    prices={"H100": 6500, "A100": 3800},
)


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_deterministic_and_within_capacity(policy: str) -> None:
    workload = random_workload(7, 150)
    options = SimOptions(
        interval_s=10.0,
        seed=3,
        record_starts=True,
        config=SchedulerConfig(min_runtime_s=30.0),
        failures=(NodeFailure("h-00001", 500.0, 2000.0),),
    )
    first = simulate(workload, MIXED, policy, options)
    second = simulate(workload, MIXED, policy, options)
    assert first.starts == second.starts
    a, b = first.summary(), second.summary()
    a.pop("wall_s")
    b.pop("wall_s")
    assert a == b
    for name in ("first_start", "end", "state", "preemptions", "gpu_seconds", "busy"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    # never more busy than up, and the per-type columns add up
    assert (first.busy <= first.capacity).all()
    assert (first.busy_by_type.sum(axis=1) == first.busy).all()
    assert (first.busy >= 0).all()
    assert a["succeeded"] + a["timed_out"] == len(workload.jobs)
    # every finished job ran for its whole duration in its last run
    assert (first.end[first.end == first.end] >= first.first_start[first.end == first.end]).all()


def test_interval_coalesces_cycles() -> None:
    # a cycle at 0 (first arrival); 10 waits for 60; 70 and 100 wait for 120
    spec = cluster(gpus=8)
    result = run(
        [job("a", 0, 1), job("b", 10, 1), job("c", 70, 1), job("d", 100, 1)],
        spec,
        interval_s=60.0,
    )
    assert by_id(result, result.first_start) == {"a": 0.0, "b": 60.0, "c": 120.0, "d": 120.0}
    assert result.cycles == 3


def test_progress_is_reported_at_most_about_a_hundred_times() -> None:
    calls: list[float] = []
    simulate(random_workload(1, 1000), MIXED, "fifo", SimOptions(), progress=calls.append)
    assert 1 <= len(calls) <= 102
    assert calls == sorted(calls)
    assert calls[-1] == 1.0


def test_unknown_policy_and_node() -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        simulate(Workload("w", []), cluster(), "nope")
    with pytest.raises(ValueError, match="unknown node"):
        simulate(Workload("w", []), cluster(), "fifo", SimOptions(failures=(NodeFailure("x", 1),)))
    empty = simulate(Workload("w", []), cluster(), "fifo")
    assert empty.summary()["jobs"] == 0
    assert not math.isnan(empty.summary()["utilization"])
