"""Limits corrected from history (issue 23, point 5; docs/scheduling.md, "Estimates from
history"): a user's requested limit tightened by the run times of their own similar
jobs, for queue order and backfill only."""

from __future__ import annotations

from dataclasses import replace

from axcenter.model.snapshot import SchedulerConfig, queue_key
from axcenter.sched import plan
from axcenter.sched.history import RunHistory
from tests.builders import node, pending, running, snapshot

H = 3600
DAY = 24 * H


def taught(
    runs: list[float], *, gpus: int = 1, limit: int = DAY, user: str = "usr_a"
) -> RunHistory:
    history = RunHistory(min_runs=3)
    for run_s in runs:
        history.record(user, "prj_a", limit, gpus, run_s)
    return history


def test_no_estimate_without_enough_similar_successes() -> None:
    job = pending("j", time_limit_s=DAY)
    assert taught([600.0, 700.0]).estimate(job) == 0
    assert taught([600.0, 700.0, 800.0]).estimate(job) == 840  # 800 s up to 14 minutes
    # another user's, another limit's or another project's runs say nothing of it
    assert taught([600.0] * 5, user="usr_b").estimate(job) == 0
    assert taught([600.0] * 5, limit=4 * H).estimate(job) == 0
    assert RunHistory(min_runs=0).estimate(job) == 0


def test_the_estimate_is_the_p90_of_the_last_twenty_and_never_above_the_limit() -> None:
    runs = [60.0 * m for m in range(1, 21)]  # 1..20 minutes
    assert taught(runs).estimate(pending("j", time_limit_s=DAY)) == 18 * 60  # rank 18 of 20
    # only the last 20 count: 20 more runs of an hour push the old ones out
    assert taught(runs + [float(H)] * 20).estimate(pending("j", time_limit_s=DAY)) == H
    overran = taught([2 * H] * 3, limit=H)  # a run can end in its grace period
    assert overran.estimate(pending("j", time_limit_s=H)) == H


def test_similar_means_the_same_gpus_first_then_any() -> None:
    history = taught([60.0] * 3, gpus=1)
    for run_s in (3000.0, 3000.0, 3000.0):
        history.record("usr_a", "prj_a", DAY, 8, run_s)
    assert history.estimate(pending("one", gpus=1, time_limit_s=DAY)) == 60
    assert history.estimate(pending("eight", gpus=8, time_limit_s=DAY)) == 3000
    # four GPUs: no run of its own size, so the user's runs of that limit, any size
    assert history.estimate(pending("four", gpus=4, time_limit_s=DAY)) == 3000


def test_an_estimate_moves_a_job_ahead_in_its_projects_queue() -> None:
    plain = pending("plain", submitted=0.0, time_limit_s=DAY)
    known = replace(pending("known", submitted=60.0, time_limit_s=DAY), estimate_s=10 * 60)
    assert (known.expected_s, plain.expected_s) == (600, DAY)
    assert sorted([plain, known], key=queue_key)[0] is known
    # an estimate above the limit changes nothing
    assert replace(plain, estimate_s=2 * DAY).expected_s == DAY
    snap = snapshot(nodes=[node("n1", gpus=1)], pending=[plain, known])
    assert [a.job_id for a in plan(snap, 100.0).admissions] == ["known"]


def backfill_case(*, estimate_s: int) -> tuple[float, list[str]]:
    """4 GPUs; a job holding 2 runs until t=2 h (its limit); a 4-GPU job waits for it
    (the reservation); a 2-GPU job asking 4 hours, expected to run ``estimate_s``, might
    backfill before it."""
    small = replace(
        pending("small", gpus=2, submitted=1.0, time_limit_s=4 * H), estimate_s=estimate_s
    )
    snap = snapshot(
        nodes=[node("n1", gpus=4)],
        running=[running("r", on=[("n1", (0, 1))], started=0.0, time_limit_s=2 * H)],
        pending=[pending("big", gpus=4, submitted=0.0, time_limit_s=H), small],
        config=SchedulerConfig(preemption=False),
    )
    result = plan(snap, 60.0)
    (estimate,) = result.estimates
    return estimate.at, [a.job_id for a in result.admissions]


def test_backfill_lets_in_a_job_expected_to_end_before_the_reservation() -> None:
    # the running job is expected until its limit (2 h): the big job's reserved start
    assert backfill_case(estimate_s=0) == (2 * H, [])  # 4 h would delay it
    # its user's runs of this kind take under an hour: it backfills
    assert backfill_case(estimate_s=50 * 60) == (2 * H, ["small"])


def test_the_estimate_never_shortens_the_run() -> None:
    job = replace(pending("j", time_limit_s=DAY), estimate_s=60)
    admitted = plan(snapshot(nodes=[node("n1")], pending=[job]), 0.0).admissions
    assert [a.job_id for a in admitted] == ["j"]
    assert job.time_limit_s == DAY  # what the engine enforces (and budgets hold)
    started = running("j", on=[("n1", (0,))], started=0.0, time_limit_s=job.time_limit_s)
    assert started.ends_by == DAY  # once running, it is expected until its limit
