"""Reclaim weighs what it throws away (issue 23): a victim costs the GPU-seconds since
its last checkpoint; preemption happens only when that does not outweigh the reclaiming
job's GPUs x the wait it would have without it (docs/scheduling.md, "What reclaim
weighs")."""

from __future__ import annotations

import math
from dataclasses import replace

from axcenter.model.plan import PendingReason
from axcenter.model.quota import Quota, QuotaNode
from axcenter.model.snapshot import RunningJob, SchedulerConfig, Snapshot
from axcenter.sched import plan
from tests.builders import node, pending, running, snapshot

H = "H100"
NOW = 1_000_000.0
HOUR = 3600.0
WEEK = 7 * 86400


def center(wide_age_s: float, small_ends_in_s: float, **config: float) -> Snapshot:
    """Two 8-GPU nodes. prj_b (nominal 2) runs ``b0`` on all of n1, wider than its
    quota, for ``wide_age_s``; n2 holds prj_a's ``a0`` (7 GPUs) and prj_d's ``d0``
    (1 GPU, within its quota, ending in ``small_ends_in_s``). prj_a (nominal 8) submits a
    1-GPU job: within its guarantee, and only ``b0`` may be preempted for it."""
    return snapshot(
        nodes=[node("n1", H, gpus=8), node("n2", H, gpus=8)],
        running=[
            running(
                "b0", on=[("n1", range(8))], project="prj_b", started=NOW - wide_age_s,
                time_limit_s=WEEK, borrowed=True,
            ),
            running(
                "a0", on=[("n2", range(7))], project="prj_a", started=NOW - 60,
                time_limit_s=WEEK,
            ),
            running(
                "d0", on=[("n2", (7,))], project="prj_d", started=NOW - 60,
                time_limit_s=int(60 + small_ends_in_s),
            ),
        ],
        pending=[pending("a1", project="prj_a", submitted=NOW - 10)],
        projects=[
            QuotaNode("prj_a", quotas={H: Quota(nominal=8)}),
            QuotaNode("prj_b", quotas={H: Quota(nominal=2)}),
            QuotaNode("prj_d", quotas={H: Quota(nominal=1)}),
        ],
        config=SchedulerConfig(**config),  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_long_running_wide_job_is_not_thrown_away_for_a_short_wait() -> None:
    # b0 lost 8 GPUs x 34 h; a1 gains 1 GPU x 10 minutes (d0 ends then): it waits
    result = plan(center(34 * HOUR, 600), NOW)
    assert result.preemptions == ()
    assert result.waiting["a1"] is PendingReason.RESOURCES
    assert [e.at for e in result.estimates] == [NOW + 600]
    # before issue 23 (reclaim whatever it costs) b0 was stopped for it
    always = plan(center(34 * HOUR, 600, reclaim_loss_ratio=math.inf), NOW)
    assert [p.job_id for p in always.preemptions] == ["b0"]


def test_a_wide_job_that_just_started_is_cheap_to_reclaim_from() -> None:
    # b0 ran 5 minutes (8 x 300 = 2,400 GPU-seconds lost) and a1 would wait an hour
    result = plan(center(300, HOUR), NOW)
    assert [p.job_id for p in result.preemptions] == ["b0"]
    assert result.waiting["a1"] is PendingReason.PREEMPTING
    # the same job, with a long wait saved, against a job that lost more: still weighed
    assert plan(center(2 * HOUR, HOUR), NOW).preemptions == ()


def test_victims_go_by_work_lost_since_their_last_checkpoint() -> None:
    # one 2-GPU node full of prj_b's borrowers: b1 ran 1,000 s and never checkpointed,
    # b2 ran 5,000 s but checkpointed 100 s ago. b2 loses less: it goes first.
    def borrower(job_id: str, device: int, age: float, checkpoint: float | None) -> RunningJob:
        r = running(
            job_id, on=[("n1", (device,))], project="prj_b", started=NOW - age,
            time_limit_s=WEEK, borrowed=True,
        )  # fmt: skip
        return replace(r, last_checkpoint_at=checkpoint)

    snap = snapshot(
        nodes=[node("n1", H, gpus=2)],
        running=[borrower("b1", 0, 1000, None), borrower("b2", 1, 5000, NOW - 100)],
        pending=[pending("a1", project="prj_a")],
        projects=[QuotaNode("prj_a", quotas={H: Quota(nominal=2)})],
    )
    b1, b2 = snap.running
    assert (b1.loss(NOW), b2.loss(NOW)) == (1000.0, 100.0)
    assert [p.job_id for p in plan(snap, NOW).preemptions] == ["b2"]
    # a checkpoint reported before the start of this run does not count
    stale = replace(b2, last_checkpoint_at=NOW - 6000)
    assert stale.loss(NOW) == 5000.0


def test_an_estimate_that_is_not_in_the_future_does_not_hold_the_guarantee_back() -> None:
    # b0 has overrun its 1-hour limit: the backfill search would say "now", which says
    # nothing of the wait (it is about to be killed, or not): reclaim as before
    snap = snapshot(
        nodes=[node("n1", H, gpus=1)],
        running=[
            running(
                "b0", on=[("n1", (0,))], project="prj_b", started=NOW - 34 * HOUR,
                time_limit_s=3600, borrowed=True,
            )
        ],
        pending=[pending("a1", project="prj_a")],
        projects=[QuotaNode("prj_a", quotas={H: Quota(nominal=1)})],
    )  # fmt: skip
    assert [p.job_id for p in plan(snap, NOW).preemptions] == ["b0"]
