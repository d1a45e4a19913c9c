"""The per-cycle test budget (``bf_max_job_test``) is shared across projects.

One project's blocked backlog must not spend the whole budget of every cycle: its
misses stop at its share (the budget over the projects with pending work, as Slurm's
``bf_max_job_assoc``), so every other project's head is examined in the same cycle.
The share is work-conserving: budget the others leave unused goes back to it.
"""

from __future__ import annotations

from collections.abc import Sequence

from axcenter.model.quota import Quota, QuotaNode
from axcenter.model.snapshot import PendingJob, SchedulerConfig, Snapshot
from axcenter.sched.plan import plan
from tests.builders import admitted_ids, node, pending, running, snapshot

NOW = 10_000.0
BUDGET = SchedulerConfig().bf_max_job_test


def full_node(
    backlog: Sequence[PendingJob], others: Sequence[PendingJob] = (), budget: int = BUDGET
) -> Snapshot:
    """One node whose 8 GPUs are busy (``prj_c``), the blocked ``backlog`` and ``others``."""
    projects = {j.project_id for j in [*backlog, *others]} | {"prj_c"}
    return snapshot(
        nodes=[node("n1", gpus=8)],
        running=[running("r1", on=[("n1", range(8))], project="prj_c")],
        pending=[*backlog, *others],
        projects=[QuotaNode(p, quotas={"H100": Quota(nominal=8)}) for p in sorted(projects)],
        config=SchedulerConfig(bf_max_job_test=budget),
    )


def blocked(n: int, project: str = "prj_a") -> list[PendingJob]:
    """``n`` one-GPU jobs of ``project``, older and of higher priority than anyone's."""
    return [
        pending(f"{project}_{i:05d}", gpus=1, project=project, priority=10, submitted=float(i))
        for i in range(n)
    ]


def cpu_job(project: str = "prj_b") -> PendingJob:
    return pending(f"{project}_cpu", gpus=0, project=project, submitted=NOW - 1)


def test_a_blocked_backlog_of_40000_does_not_starve_another_projects_cpu_job() -> None:
    decided = plan(full_node(blocked(40_000), [cpu_job()]), NOW)
    assert admitted_ids(decided) == ["prj_b_cpu"]
    # the backlog spent its share, and the cycle stayed within its budget
    assert 0 < len(decided.waiting) <= BUDGET


def test_a_quick_cycle_depth_is_shared_too() -> None:
    """The control loop's quick cycles (32 tests) reach the other project as well."""
    decided = plan(full_node(blocked(40_000), [cpu_job()], budget=32), NOW)
    assert admitted_ids(decided) == ["prj_b_cpu"]
    assert len(decided.waiting) <= 32


def test_ten_blocked_backlogs_leave_the_eleventh_project_its_turn() -> None:
    """Ten projects, each with a blocked backlog, and a budget of 22: each spends its
    share of two tests, so the eleventh project's job still starts this cycle."""
    backlogs = [j for k in range(10) for j in blocked(50, f"prj_{k}")]
    decided = plan(full_node(backlogs, [cpu_job("prj_z")], budget=22), NOW)
    assert admitted_ids(decided) == ["prj_z_cpu"]
    assert len(decided.waiting) <= 22


def test_budget_the_others_leave_goes_back_to_the_backlog() -> None:
    """Work-conserving: when the other project's only job starts, the backlog's project
    spends the rest of the budget, as it would alone."""
    alone = plan(full_node(blocked(1_000)), NOW)
    shared = plan(full_node(blocked(1_000), [cpu_job()]), NOW)
    assert len(alone.waiting) == BUDGET
    assert len(shared.waiting) == BUDGET
    assert admitted_ids(shared) == ["prj_b_cpu"]
