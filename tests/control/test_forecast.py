"""``sim.forecast``: the scheduler run forward over a queue, every job lasting its limit.

The forecast must be ``plan``'s own decisions replayed: what ``plan`` admits now starts
now, a job waits for exactly the devices the jobs ahead of it free at the ends of their
limits, and held jobs, quotas and budgets hold it back as they would live."""

from __future__ import annotations

from dataclasses import replace

import pytest

from axcenter.model.quota import Quota, QuotaNode
from axcenter.model.snapshot import Budget, SchedulerConfig
from axcenter.sched.plan import plan
from axcenter.sim.forecast import MIN_STEP_S, RESOLUTION, forecast
from tests.builders import node, pending, running, snapshot

NOW = 100_000.0
H = 3600


def slack(at: float) -> float:
    """How late the forecast may place a start at ``at`` (its coalescing step)."""
    return max(MIN_STEP_S, RESOLUTION * (at - NOW)) + 1


def test_jobs_wait_for_the_ends_of_the_limits_ahead_of_them() -> None:
    snap = snapshot(
        nodes=[node("n1", gpus=8)],
        running=[running("r1", on=[("n1", range(8))], started=NOW - 600, time_limit_s=H)],
        pending=[
            pending("j1", gpus=8, submitted=1, time_limit_s=H),
            pending("j2", gpus=8, submitted=2, time_limit_s=H),
            pending("j3", gpus=4, submitted=3, time_limit_s=H),
        ],
    )
    starts = forecast(snap, NOW, plan).starts
    r1_end = NOW - 600 + H
    assert r1_end <= starts["j1"] <= r1_end + slack(r1_end)
    assert starts["j1"] + H <= starts["j2"] <= starts["j1"] + H + slack(starts["j1"] + H)
    j2_end = starts["j2"] + H
    assert j2_end <= starts["j3"] <= j2_end + slack(j2_end)
    # the caller's snapshot is left as it was
    assert [j.id for q in snap.queues.values() for j in q] == ["j1", "j2", "j3"]


def test_what_plan_admits_now_starts_now_and_backfill_is_kept() -> None:
    snap = snapshot(
        nodes=[node("n1", gpus=8)],
        running=[running("r1", on=[("n1", range(6))], started=NOW, time_limit_s=H)],
        pending=[
            pending("big", gpus=8, submitted=1, time_limit_s=H),
            pending("small", gpus=2, submitted=2, time_limit_s=600),  # fits before r1 ends
            pending("long", gpus=2, submitted=3, time_limit_s=4 * H),  # would delay "big"
        ],
    )
    now_plan = {a.job_id for a in plan(snap, NOW).admissions}
    starts = forecast(snap, NOW, plan).starts
    assert now_plan == {"small"} == {j for j, at in starts.items() if at == NOW}
    assert NOW + H <= starts["big"] <= NOW + H + slack(NOW + H)
    assert starts["long"] >= starts["big"] + H  # after "big", never delaying it


def test_held_jobs_get_no_forecast_and_block_nothing() -> None:
    snap = snapshot(
        nodes=[node("n1", gpus=4)],
        pending=[pending("held", gpus=4, submitted=1), pending("next", gpus=4, submitted=2)],
    )
    queues = {p: tuple(replace(j, held=j.id == "held") for j in q) for p, q in snap.queues.items()}
    starts = forecast(replace(snap, queues=queues), NOW, plan).starts
    assert "held" not in starts
    assert starts["next"] == NOW


def test_a_quota_spreads_a_projects_jobs_over_time() -> None:
    projects = [
        QuotaNode("prj_a", quotas={"H100": Quota(nominal=4, borrowing_limit=0)}),
        QuotaNode("prj_b", quotas={"H100": Quota(nominal=4, borrowing_limit=0)}),
    ]
    jobs = [pending(f"a{i}", gpus=4, submitted=i, time_limit_s=H) for i in range(3)]
    snap = snapshot(nodes=[node("n1", gpus=8)], pending=jobs, projects=projects)
    starts = forecast(snap, NOW, plan).starts
    # four of its eight GPUs at a time, although the other four stay free
    assert starts["a0"] == NOW
    assert NOW + H <= starts["a1"] <= NOW + H + slack(NOW + H)
    assert starts["a2"] >= starts["a1"] + H


def test_a_budget_spent_by_the_jobs_ahead_stops_the_rest() -> None:
    budget = Budget(won_left=2_000, gpu_seconds_left={"H100": 10 * H}, prices={"H100": 1_000})
    jobs = [pending(f"j{i}", gpus=1, submitted=i, time_limit_s=H) for i in range(4)]
    snap = replace(
        snapshot(
            nodes=[node("n1", gpus=8)],
            pending=jobs,
            config=SchedulerConfig(run_unallocated=False),
        ),
        budgets={"prj_a": budget},
    )
    starts = forecast(snap, NOW, plan).starts
    assert sorted(starts) == ["j0", "j1"]  # 2 x 1 GPU-hour at 1,000 won: the rest never


def test_the_forecast_stops_at_its_horizon() -> None:
    jobs = [pending(f"j{i}", gpus=8, submitted=i, time_limit_s=86_400) for i in range(30)]
    result = forecast(
        snapshot(nodes=[node("n1", gpus=8)], pending=jobs), NOW, plan, horizon_s=5 * 86_400
    )
    assert sorted(result.starts, key=lambda j: int(j[1:])) == [f"j{i}" for i in range(5)]
    assert result.until == NOW + 5 * 86_400


@pytest.mark.parametrize("preempting", [True, False])
def test_a_preempting_job_frees_its_devices_after_the_grace(preempting: bool) -> None:
    snap = snapshot(
        nodes=[node("n1", gpus=8)],
        running=[
            running("r1", on=[("n1", range(8))], started=NOW, time_limit_s=H, preempting=preempting)
        ],
        pending=[pending("j1", gpus=8)],
    )
    at = forecast(snap, NOW, plan, grace_s=30).starts["j1"]
    expected = NOW + 30 if preempting else NOW + H
    assert expected <= at <= expected + slack(expected)
