"""Queue order within a project by requested time limit, with a bound (issue 23;
docs/scheduling.md, "Queue order")."""

from __future__ import annotations

from axcenter.model.snapshot import LIMIT_STEP_S, limit_bucket, queue_key
from axcenter.sched import plan
from tests.builders import node, pending, snapshot

H = 3600
DAY = 24 * H


def test_log2_buckets_of_the_limits_users_ask() -> None:
    assert [limit_bucket(s) for s in (30, 60, H, 4 * H, 12 * H, DAY, 3 * DAY, 7 * DAY)] == [
        0, 0, 6, 8, 10, 11, 13, 14,
    ]  # fmt: skip


def test_short_jobs_pass_a_long_one_only_within_the_bound() -> None:
    week = pending("week", submitted=0.0, time_limit_s=7 * DAY)
    # 8 buckets apart: a 1-hour job passes it if submitted less than 8 h after it
    soon = pending("soon", submitted=8 * LIMIT_STEP_S - 1, time_limit_s=H)
    late = pending("late", submitted=8 * LIMIT_STEP_S + 1, time_limit_s=H)
    ordered = sorted([late, week, soon], key=queue_key)
    assert [j.id for j in ordered] == ["soon", "week", "late"]
    # priority classes still come first
    urgent = pending("urgent", submitted=10 * DAY, time_limit_s=7 * DAY, priority=10)
    assert sorted([soon, urgent], key=queue_key)[0] is urgent


def test_the_cycle_starts_the_shorter_request_first() -> None:
    # one free GPU, two jobs of one project: the later, shorter request gets it
    snap = snapshot(
        nodes=[node("n1", "H100", gpus=1)],
        pending=[
            pending("long", submitted=0.0, time_limit_s=3 * DAY),
            pending("short", submitted=60.0, time_limit_s=H),
        ],
    )
    result = plan(snap, 100.0)
    assert [a.job_id for a in result.admissions] == ["short"]
