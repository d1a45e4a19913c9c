"""Synthetic traces keep the base's distributions and are seeded; cluster scaling; the
usage rule that turns a trace's GPU-seconds into quotas."""

from __future__ import annotations

import numpy as np
import pytest

from axcenter.sim.cluster import ClusterSpec, NodeGroup
from axcenter.sim.quotas import quotas_from_usage, with_usage_quotas
from axcenter.sim.synth import scale_cluster, synthesize
from axcenter.sim.workload import TraceJob, Workload


def base_workload(n: int = 2000, seed: int = 7) -> Workload:
    """A base with distinct shapes: small short jobs, big long ones, typed jobs."""
    rng = np.random.default_rng(seed)
    jobs = []
    t = 0.0
    for i in range(n):
        t += float(rng.exponential(60.0))
        big = rng.random() < 0.2
        jobs.append(
            TraceJob(
                id=f"b{i}",
                submit=t,
                duration=float(rng.lognormal(9 if big else 6, 0.5)),
                gpus_per_node=8 if big else int(rng.choice([1, 2, 4])),
                nodes=int(rng.choice([1, 2])) if big else 1,
                gpu_types=("H100",) if big else (),
                tenant="big" if big else f"small{i % 3}",
                priority=-1 if i % 5 == 0 else 0,
            )
        )
    return Workload("base", jobs, notes=("base rule",))


def arrays(w: Workload) -> dict[str, np.ndarray]:
    return {
        "gpus": np.array([j.gpus for j in w.jobs]),
        "duration": np.array([j.duration for j in w.jobs]),
        "submit": np.array([j.submit for j in w.jobs]),
    }


def test_distributions_roughly_match_the_base() -> None:
    base = base_workload()
    synth = synthesize(base, 20_000, seed=1)
    a, b = arrays(base), arrays(synth)
    assert len(synth.jobs) == 20_000
    assert set(b["gpus"]) <= set(a["gpus"])
    for q in (25, 50, 90):
        assert np.percentile(b["duration"], q) == pytest.approx(
            np.percentile(a["duration"], q), rel=0.1
        )
    assert (b["gpus"] >= 8).mean() == pytest.approx((a["gpus"] >= 8).mean(), abs=0.02)
    base_gap = np.diff(np.sort(a["submit"])).mean()
    assert np.diff(b["submit"]).mean() == pytest.approx(base_gap, rel=0.05)
    # sizes and durations travel together: big jobs stay long and typed
    big = [j for j in synth.jobs if j.gpus_per_node == 8]
    assert all(j.gpu_types == ("H100",) and j.tenant == "big" for j in big)
    shares = {t: sum(j.tenant == t for j in synth.jobs) / 20_000 for t in synth.tenants}
    assert shares["big"] == pytest.approx(0.2, abs=0.02)
    assert synth.notes[0] == "base rule" and "drawn (seed 1)" in synth.notes[-1]
    assert [j.submit for j in synth.jobs] == sorted(j.submit for j in synth.jobs)
    assert len({j.id for j in synth.jobs}) == 20_000


def test_seeded_and_deterministic() -> None:
    base = base_workload(300)
    one = synthesize(base, 1000, seed=5)
    assert one.jobs == synthesize(base, 1000, seed=5).jobs
    assert one.jobs != synthesize(base, 1000, seed=6).jobs


def test_rate_scale_tenants_and_type_renames() -> None:
    base = base_workload(500)
    slow = synthesize(base, 4000, seed=2)
    fast = synthesize(base, 4000, seed=2, rate_scale=4.0)
    assert fast.jobs[-1].submit == pytest.approx(slow.jobs[-1].submit / 4)
    many = synthesize(base, 4000, seed=2, tenants=5)
    assert set(many.tenants) <= {f"t{i}" for i in range(5)}
    counts = [sum(j.tenant == f"t{i}" for j in many.jobs) for i in range(5)]
    assert counts[0] > counts[4]  # weights 1, 1/2, ... 1/5
    renamed = synthesize(base, 500, seed=2, gpu_types={"H100": "B200"})
    assert {j.gpu_types for j in renamed.jobs} <= {(), ("B200",)}
    dropped = synthesize(base, 500, seed=2, gpu_types={"H100": ""})
    assert {j.gpu_types for j in dropped.jobs} == {()}
    with pytest.raises(ValueError, match="no jobs"):
        synthesize(Workload("empty", []), 10, seed=0)


def test_scale_cluster() -> None:
    spec = ClusterSpec(
        name="c",
        node_groups=[
            NodeGroup(name="a", gpu_type="A100", gpus_per_node=8, count=10),
            NodeGroup(name="b", gpu_type="H100", gpus_per_node=8, count=1),
            NodeGroup(name="z", gpu_type="T4", gpus_per_node=1, count=0),
        ],
    )
    big = scale_cluster(spec, 2.5)
    assert [g.count for g in big.node_groups] == [25, 2, 0]
    small = scale_cluster(spec, 0.01)
    assert [g.count for g in small.node_groups] == [1, 1, 0]
    assert big.name == "c-x2.5"


# -- quotas from usage -------------------------------------------------------------------


def quota_cluster() -> ClusterSpec:
    return ClusterSpec(
        node_groups=[
            NodeGroup(name="a", gpu_type="A100", gpus_per_node=8, count=10),  # 80 GPUs
            NodeGroup(name="h", gpu_type="H100", gpus_per_node=8, count=5),  # 40 GPUs
        ]
    )


def test_quotas_from_usage_by_hand() -> None:
    jobs = [
        # x: 300 GPU-s on A100 only; y: 100 GPU-s on A100 only
        TraceJob("1", 0, 300, 1, gpu_types=("A100",), tenant="x"),
        TraceJob("2", 0, 100, 1, gpu_types=("A100",), tenant="y"),
        # y: 120 GPU-s on any type: 80 to A100, 40 to H100 (capacity 80:40)
        TraceJob("3", 0, 60, 2, tenant="y"),
        # unknown type: counts nowhere
        TraceJob("4", 0, 1000, 1, gpu_types=("T4",), tenant="z"),
    ]
    quotas = quotas_from_usage(Workload("w", jobs), quota_cluster())
    # A100: x 300, y 180 of 480 -> floor(300/480*64)=40, floor(180/480*64)=24
    # H100: y only -> floor(1 * 32) = 32
    assert quotas == {"x": {"A100": 40}, "y": {"A100": 24, "H100": 32}}
    total_a100 = sum(q.get("A100", 0) for q in quotas.values())
    assert total_a100 <= 0.8 * 80


def test_with_usage_quotas_keeps_existing_ones() -> None:
    w = Workload("w", [TraceJob("1", 0, 10, 1, tenant="x")])
    with_q = with_usage_quotas(w, quota_cluster(), 0.5)
    assert with_q.quotas == {"x": {"A100": 40, "H100": 20}}
    assert "50% x the cluster's GPUs" in with_q.notes[-1]
    preset = Workload("w", w.jobs, quotas={"x": {"A100": 1}})
    assert with_usage_quotas(preset, quota_cluster()) is preset
