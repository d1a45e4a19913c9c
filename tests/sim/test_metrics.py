"""Metrics on hand examples: percentiles, Jain's index, integer won, shares, summaries."""

from __future__ import annotations

import json

import numpy as np
import pytest

from axcenter.sim.cluster import ClusterSpec, NodeGroup
from axcenter.sim.engine import SimOptions, simulate
from axcenter.sim.metrics import SIZE_CLASSES, jain_index, size_class, stats, won
from axcenter.sim.workload import TraceJob, Workload


def test_stats_use_linear_interpolation() -> None:
    # order statistics 1..4 at positions 0..3: p50 at 1.5, p95 at 2.85, p99 at 2.97
    assert stats([4, 1, 3, 2]) == {
        "count": 4,
        "mean": 2.5,
        "median": 2.5,
        "p95": pytest.approx(3.85),
        "p99": pytest.approx(3.97),
    }
    assert stats([7.0]) == {"count": 1, "mean": 7.0, "median": 7.0, "p95": 7.0, "p99": 7.0}
    assert stats([]) == {"count": 0, "mean": 0.0, "median": 0.0, "p95": 0.0, "p99": 0.0}
    # the median of 1..100 is 50.5; p99 sits at position 98.01: 99.01
    hundred = stats(np.arange(1, 101))
    assert hundred["median"] == 50.5
    assert hundred["p99"] == pytest.approx(99.01)


def test_jain_index_hand_examples() -> None:
    assert jain_index([1, 1, 1, 1]) == 1.0
    assert jain_index([1, 0, 0, 0]) == 0.25  # one of four takes everything: 1/n
    assert jain_index([1, 2]) == pytest.approx(9 / 10)  # (1+2)^2 / (2 (1+4))
    assert jain_index([2 / 3, 2]) == pytest.approx(0.8)
    assert jain_index([]) == 1.0
    assert jain_index([0, 0]) == 1.0


def test_won_rounds_half_up_per_job() -> None:
    # GPU-seconds x won per GPU-hour / 3600
    assert won(1800 * 1) == 1  # 0.5 won rounds up
    assert won(1799 * 1) == 0
    assert won(5400) == 2  # 1.5 -> 2
    assert won(9000) == 3  # 2.5 -> 3: half up, not to even
    assert won(2 * 3600 * 6500) == 13_000  # two H100-hours at 6,500 won
    assert won(0) == 0


def test_size_classes() -> None:
    assert [SIZE_CLASSES[size_class(g)] for g in (0, 1, 2, 4, 5, 8, 9, 16)] == [
        "1", "1", "2-4", "2-4", "5-8", "5-8", ">8", ">8",
    ]  # fmt: skip


def two_tenants(quotas: dict[str, dict[str, int]]) -> Workload:
    # A and B each run one 1-GPU job for 10 s on a 2-GPU node: equal delivered GPU-s
    return Workload(
        "two",
        [
            TraceJob("a", 0, 10, 1, tenant="A"),
            TraceJob("b", 0, 10, 1, tenant="B"),
            TraceJob("b2", 0, 5, 2, tenant="B"),
        ],
        quotas=quotas,
    )


SPEC = ClusterSpec(
    node_groups=[NodeGroup(name="n", gpu_type="H100", gpus_per_node=2, count=1)],
    prices={"H100": 1000},
)


def test_shares_against_equal_and_quota_entitlements() -> None:
    # delivered: A 10 GPU-s, B 10 + 10 = 20 GPU-s: shares 1/3 and 2/3
    options = SimOptions(interval_s=0.0)
    equal = simulate(two_tenants({}), SPEC, "fifo", options).summary()
    assert equal["share_vs_entitlement"] == pytest.approx({"A": 2 / 3, "B": 4 / 3})
    assert equal["jain_index"] == pytest.approx(jain_index([2 / 3, 4 / 3]))
    # A is entitled to 3 parts of 4: A's 1/3 against 3/4, B's 2/3 against 1/4
    quota = simulate(two_tenants({"A": {"H100": 3}, "B": {"H100": 1}}), SPEC, "fifo", options)
    summary = quota.summary()
    assert summary["share_vs_entitlement"] == pytest.approx({"A": 4 / 9, "B": 8 / 3})
    assert summary["jain_index"] == pytest.approx(jain_index([4 / 9, 8 / 3]))


def test_summary_is_plain_json_and_by_group() -> None:
    result = simulate(two_tenants({}), SPEC, "fifo", SimOptions(interval_s=0.0))
    summary = result.summary()
    text = json.dumps(summary, allow_nan=False)  # no NaN, no NumPy scalars
    assert json.loads(text) == summary
    # fifo: a and b run 0..10, b2 (2 GPUs) 10..15
    assert summary["jct_by_size"]["1"]["mean"] == 10.0
    assert summary["jct_by_size"]["2-4"]["mean"] == 15.0
    assert summary["queueing_delay_by_tenant"]["B"]["median"] == 5.0
    assert summary["makespan_s"] == 15.0
    assert summary["utilization"] == 1.0
    # 30 GPU-s at 1,000 won per GPU-hour: a 2.78 -> 3, b 2.78 -> 3, b2 2.78 -> 3
    assert summary["cost_won"] == 9
    assert summary["gpu_hours"] == pytest.approx(30 / 3600)
