"""``ClusterState.cannot_start``: when a cycle woken only by submissions may skip the
scheduler. Skipping must never hide a start or a reclaim: in every case where it says the
new jobs cannot start, a full plan on the same state admits and preempts nothing.

``StartHint`` decides the same thing on the API thread, from the latest cycle, to spare
the loop a wake-up: it may wake the loop where ``cannot_start`` would skip, never the
reverse."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from axcenter.control.state import ClusterState
from axcenter.model.quota import Quota, QuotaNode
from axcenter.model.snapshot import PendingJob, RunningJob
from axcenter.sched.plan import plan
from axcenter.store.policy import Policy
from tests.builders import node, pending, running

NOW = 10_000.0  # every running job below is older than min_runtime_s


@dataclass(frozen=True)
class Case:
    name: str
    running: tuple[RunningJob, ...]
    new: PendingJob
    nominal: dict[str, int] = field(default_factory=lambda: {"prj_a": 4})
    intra_project: bool = False
    cannot_start: bool = True
    #: the hint wakes the loop although nothing can start (it does not look at types)
    hint_wakes_anyway: bool = False


def on(devices: range) -> list[tuple[str, list[int]]]:
    return [("n1", list(devices))]


A_FULL_OWN = (running("a1", on=on(range(8)), project="prj_a", gpu_type="H100"),)
A2_B6 = (
    running("a1", on=on(range(2)), project="prj_a", gpu_type="H100"),
    running("b1", on=on(range(2, 8)), project="prj_b", gpu_type="H100"),
)
A4_LOW_B4 = (
    running("a1", on=on(range(4)), project="prj_a", gpu_type="H100", priority=0),
    running("b1", on=on(range(4, 8)), project="prj_b", gpu_type="H100"),
)
CASES = [
    Case(
        "free GPUs: it may start",
        (running("a1", on=on(range(6)), project="prj_a", gpu_type="H100"),),
        pending("new", gpus=2),
        cannot_start=False,
    ),
    Case("full, its project already above its quota", A_FULL_OWN, pending("new")),
    Case(
        "full, within quota, another project borrows: it may reclaim",
        A2_B6,
        pending("new", gpus=2),
        cannot_start=False,
    ),
    Case(
        "full, within quota, but nobody borrows",
        A2_B6,
        pending("new", gpus=2),
        nominal={"prj_a": 2, "prj_b": 6},
    ),
    Case(
        "full, within quota of another type only",
        A2_B6,
        pending("new", types=["A100"]),
        hint_wakes_anyway=True,
    ),
    Case(
        "full, within quota, the job is larger than the quota left",
        A2_B6,
        pending("new", gpus=3),
        hint_wakes_anyway=True,
    ),
    Case(
        "full, within quota, its own lower priority work runs, intra-project preemption on",
        A4_LOW_B4,
        pending("new", gpus=2, priority=5),
        nominal={"prj_a": 8, "prj_b": 4},
        intra_project=True,
        cannot_start=False,
    ),
    Case(
        "full, within quota, its own lower priority work runs, intra-project preemption off",
        A4_LOW_B4,
        pending("new", gpus=2, priority=5),
        nominal={"prj_a": 8, "prj_b": 4},
    ),
    Case(
        "full, within quota, its own work of the same priority runs, intra-project on",
        A4_LOW_B4,
        pending("new", gpus=2, priority=0),
        nominal={"prj_a": 8, "prj_b": 4},
        intra_project=True,
        hint_wakes_anyway=True,
    ),
    Case(
        "full of its own lower priority work, but above its quota",
        (running("a1", on=on(range(8)), project="prj_a", gpu_type="H100", priority=0),),
        pending("new", priority=5),
        intra_project=True,
    ),
]


def state_for(case: Case) -> ClusterState:
    state = ClusterState(
        nodes={"n1": node("n1")},
        policy=Policy(
            projects={
                p: QuotaNode(p, quotas={"H100": Quota(nominal=n)}) for p, n in case.nominal.items()
            }
        ),
    )
    state.config = replace(state.config, intra_project_preemption=case.intra_project)
    for r in case.running:
        state.start(r)
    state.add_pending(case.new)
    return state


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cannot_start(case: Case) -> None:
    state = state_for(case)
    assert state.cannot_start([case.new]) is case.cannot_start
    decided = plan(state.snapshot(), NOW)
    if case.cannot_start:
        assert not decided.admissions and not decided.preemptions
        assert state.reason(case.new.id) is not None
    else:  # the scheduler does act on it: the skip would have hidden something
        assert decided.admissions or decided.preemptions


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_start_hint_wakes_the_loop_wherever_a_quick_cycle_would_plan(case: Case) -> None:
    state = state_for(case)
    state.forget(case.new.id)  # the hint is computed before the job arrives
    hint = state.start_hint()
    assert hint.could_start(case.new) is (not case.cannot_start or case.hint_wakes_anyway)


def test_no_preemption_configured_means_no_reclaim() -> None:
    case = CASES[2]  # another project borrows
    state = state_for(case)
    state.config = replace(state.config, preemption=False)
    assert state.cannot_start([case.new])
    assert not state.start_hint().could_start(case.new)
