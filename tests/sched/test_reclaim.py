"""Reclaim without churn: devices held for a reclaiming job, reclaiming jobs decided first
in the next cycle, and the root pool of the quota tree (docs/scheduling.md, "Reclaim by
preemption").

Table-driven: each case is a snapshot and what the plan must decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axcenter.model.plan import PendingReason
from axcenter.model.quota import Quota, QuotaNode
from axcenter.model.snapshot import RunningJob, Snapshot
from axcenter.sched import plan
from axcenter.sched.quota import QuotaTree
from tests.builders import Placed, node, pending, placements, snapshot
from tests.builders import running as _running

H = "H100"
NOW = 10_000.0
QUOTA = PendingReason.QUOTA
RES = PendingReason.RESOURCES
PREEMPTING = PendingReason.PREEMPTING


WEEK = 7 * 86400


def running(job_id: str, **kwargs: Any) -> RunningJob:
    """A running job asking a week: far from its end, so reclaiming from it is worth
    what it loses (``worth_it``; tests/sched/test_reclaim_cost.py weighs that)."""
    kwargs.setdefault("time_limit_s", WEEK)
    return _running(job_id, **kwargs)


# --- plan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    snapshot: Snapshot
    admitted: dict[str, Placed] = field(default_factory=dict)
    waiting: dict[str, PendingReason] = field(default_factory=dict)
    preempted: dict[str, str] = field(default_factory=dict)  # victim -> for job


NODE8 = [node("n1", H, gpus=8)]

_A1 = pending("a1", gpus=2, project="prj_a")
#: a1 (prj_a, nominal 2) preempted a borrower of devices 0-1, which has exited; c1
#: (prj_c, nominal 2, less used: it would go first) waits too; b1 on 2-3 is too young
#: to preempt
_AFTER_EXIT = snapshot(
    nodes=[node("n1", H, gpus=4)],
    running=[running("b1", on=[("n1", (2, 3))], project="prj_b", started=NOW - 60)],
    pending=[_A1, pending("c1", gpus=2, project="prj_c")],
    projects=[QuotaNode(p, quotas={H: Quota(nominal=2)}) for p in ("prj_a", "prj_c")],
    usage={"prj_a": 1000.0, "prj_c": 1.0},
)

CASES = [
    # --- devices held for a reclaiming job -------------------------------------------
    pytest.param(
        Case(
            snapshot(
                nodes=NODE8,
                running=[
                    running("b0", on=[("n1", (0, 1, 2, 3))], project="prj_b", borrowed=True),
                    running("c0", on=[("n1", (6, 7))], project="prj_c"),
                ],
                pending=[
                    pending("a1", gpus=6, project="prj_a"),
                    pending("c1", gpus=2, project="prj_c"),
                ],
                projects=[QuotaNode("prj_a", quotas={H: Quota(nominal=6)})],
            ),
            waiting={"a1": PREEMPTING, "c1": RES},
            preempted={"b0": "a1"},
        ),
        id="the free devices a reclaiming job counts on are not given to a later job",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                running=[
                    running("a0", on=[("n1", (0,))], project="prj_a"),
                    *(
                        running(f"b{d}", on=[("n1", (d,))], project="prj_b", started=d)
                        for d in (1, 2, 3)
                    ),
                ],
                pending=[
                    pending("a1", project="prj_a", submitted=0),
                    pending("a2", project="prj_a", submitted=1),
                ],
                projects=[QuotaNode("prj_a", quotas={H: Quota(nominal=2)})],
            ),
            waiting={"a1": PREEMPTING, "a2": RES},
            preempted={"b3": "a1"},
        ),
        id="what a job reclaims counts against its project's guarantee for the next",
    ),
    # --- a job that reclaimed goes first in the next cycle ---------------------------
    pytest.param(
        Case(
            replace(_AFTER_EXIT, reclaiming=(_A1,)),
            admitted={"a1": (H, (("n1", (0, 1)),))},
            waiting={"c1": RES},
        ),
        id="its victims gone, the reclaiming job gets their devices before other heads",
    ),
    pytest.param(
        Case(_AFTER_EXIT, admitted={"c1": (H, (("n1", (0, 1)),))}, waiting={"a1": RES}),
        id="(without the mark, a head with a lower fair-share key would take them)",
    ),
    pytest.param(
        Case(
            replace(
                _AFTER_EXIT,
                reclaiming=(_A1, pending("gone", gpus=2, project="prj_a")),
            ),
            admitted={"a1": (H, (("n1", (0, 1)),))},
            waiting={"c1": RES},
        ),
        id="a marked job no longer pending is ignored",
    ),
    pytest.param(
        Case(
            replace(
                snapshot(
                    nodes=[node("n1", H, gpus=4)],
                    running=[running("b0", on=[("n1", (0, 1, 2, 3))], project="prj_b")],
                    pending=[pending("a1", gpus=2, project="prj_a")],
                    projects=[QuotaNode("prj_a", quotas={H: Quota(nominal=2)})],
                ),
                reclaiming=(_A1,),
            ),
            waiting={"a1": PREEMPTING},
            preempted={"b0": "a1"},
        ),
        id="a marked job that still does not fit reclaims again",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_plan(case: Case) -> None:
    result = plan(case.snapshot, NOW)
    assert placements(result) == case.admitted
    assert dict(result.waiting) == case.waiting
    assert {p.job_id: p.for_job for p in result.preemptions} == case.preempted


# --- the root pool -------------------------------------------------------------------


def test_root_pool_is_what_nobody_was_granted() -> None:
    """docs/scheduling.md's worked example: 16 H100s, A nominal 8 (lends all), B nominal
    4 (lends nothing): the root owns 4, and C (no quota) may borrow up to 12, never B's 4."""
    tree = QuotaTree(
        {
            "A": QuotaNode("A", quotas={H: Quota(nominal=8)}),
            "B": QuotaNode("B", quotas={H: Quota(nominal=4, lending_limit=0)}),
        },
        {},
        {H: 16},
    )
    assert tree.available("C", H) == 12
    assert tree.available("B", H) == 16
    tree.add("C", H, 12)
    assert tree.available("C", H) == 0
    assert tree.available("B", H) == 4  # B's own, never lent
    assert tree.available("A", H) == 0  # A's nominal is lent out: it must reclaim


def test_a_full_cluster_has_no_quota_left_for_borrowers() -> None:
    """Every device held (by projects within and beyond their quotas): nobody may start
    another job on quota alone (before, the granted quotas were counted twice)."""
    tree = QuotaTree(
        {p: QuotaNode(p, quotas={H: Quota(nominal=4)}) for p in ("A", "B")},
        {},
        {H: 16},
        {("A", H): 2, ("B", H): 10, ("C", H): 4},
    )
    assert tree.available("C", H) == 0
    assert tree.available("A", H) == 0


# --- the guarantee promise -----------------------------------------------------------


@st.composite
def guarantee_cases(draw: st.DrawFn) -> tuple[Snapshot, str]:
    """prj_a (nominal quota ``nominal``, some of it in use) has one job within what is
    left of it; prj_b (no quota) borrows the rest with jobs of random ages and has more
    waiting; any waiting job may be marked as reclaiming from the previous cycle."""
    sizes = draw(st.lists(st.integers(1, 8), min_size=1, max_size=3))
    nodes = [node(f"n{i}", H, gpus=g) for i, g in enumerate(sizes)]
    nominal = draw(st.integers(1, sum(sizes)))
    runs: list[RunningJob] = []
    used_a = 0
    for n in nodes:
        free = list(range(n.gpu_count))
        while free and draw(st.booleans()):
            take = free[: draw(st.integers(1, len(free)))]
            free = free[len(take) :]
            own = used_a + len(take) <= nominal - 1 and draw(st.booleans())
            used_a += len(take) if own else 0
            runs.append(
                running(
                    f"r{len(runs)}",
                    on=[(n.id, tuple(take))],
                    project="prj_a" if own else "prj_b",
                    started=NOW - draw(st.sampled_from([30, 119, 120, 600, 5000])),
                    borrowed=not own,
                )
            )
    job = pending("a1", gpus=draw(st.integers(1, nominal - used_a)), project="prj_a")
    others = [
        pending(f"b{i}", gpus=draw(st.integers(1, 8)), project="prj_b", submitted=-i)
        for i in range(draw(st.integers(0, 5)))
    ]
    marked = tuple(j for j in [job, *others] if draw(st.booleans()))
    snap = snapshot(
        nodes=nodes,
        running=runs,
        pending=[job, *others],
        projects=[QuotaNode("prj_a", quotas={H: Quota(nominal=nominal)})],
        usage={"prj_a": draw(st.sampled_from([0.0, 1e6])), "prj_b": 1.0},
    )
    return replace(snap, reclaiming=marked), job.id


@settings(max_examples=300, deadline=None)
@given(guarantee_cases())
def test_work_within_the_guarantee_starts_or_reclaims_in_one_cycle(
    case: tuple[Snapshot, str],
) -> None:
    """A project under its guaranteed quota whose job fits on free devices is admitted in
    this cycle, whatever borrowers wait or were marked as reclaiming; if it fits only once
    borrowers old enough to preempt are stopped, they are preempted for it."""
    snap, job_id = case
    job = next(j for q in snap.queues.values() for j in q if j.id == job_id)
    result = plan(snap, NOW)
    held: dict[str, set[int]] = {n.id: set() for n in snap.nodes}
    preemptible: dict[str, set[int]] = {n.id: set() for n in snap.nodes}
    for r in snap.running:
        for a in r.allocations:
            held[a.node_id].update(a.devices)
            if r.project_id == "prj_b" and NOW - r.started_at >= 120:
                preemptible[a.node_id].update(a.devices)
    free = {n.id: n.gpu_count - len(held[n.id]) for n in snap.nodes}
    if max(free.values()) >= job.gpus_per_node:
        assert job_id in {a.job_id for a in result.admissions}, result
    elif max(free[n] + len(preemptible[n]) for n in free) >= job.gpus_per_node:
        assert result.waiting.get(job_id) is PREEMPTING, result
        assert any(p.for_job == job_id for p in result.preemptions)
