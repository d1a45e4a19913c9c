"""Table-driven tests of ``sched.plan``: order, placement, gangs, types, limits of a
node, node states, waiting reasons, determinism.

Each case is a snapshot and the whole expected outcome: which jobs are admitted, in
which order, where, and why every other job waits. ``admitted`` is written in the order
the plan must list the admissions. Unless a case says otherwise there are no quotas,
limits or reservations, all jobs belong to one project, so the order is the project's
queue order (priority, then submit time, then id), and running jobs started at 0 with
a one-hour limit (they end at 3600, after ``NOW``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import pytest
from pydantic import ValidationError

from axcenter.model.cluster import NodeState
from axcenter.model.plan import PendingReason
from axcenter.model.quota import Quota, QuotaNode
from axcenter.model.snapshot import Budget, PendingJob, SchedulerConfig, Snapshot
from axcenter.sched import plan
from axcenter.service.center import scheduler_config
from axcenter.settings import Settings
from tests.builders import Placed, admitted_ids, node, pending, placements, running, snapshot

H = "H100"
A = "A100"
CPU = ""  # the GPU type of a zero-GPU admission
RES = PendingReason.RESOURCES
PRIO = PendingReason.PRIORITY
GANG = PendingReason.GANG
NODES = PendingReason.NODES
NOW = 1_000.0
SHORT = 1_800  # a time limit that ends (at 2800) before running jobs do (at 3600)


@dataclass(frozen=True)
class Case:
    snapshot: Snapshot
    admitted: dict[str, Placed] = field(default_factory=dict)
    waiting: dict[str, PendingReason] = field(default_factory=dict)


CASES = [
    # --- basics -------------------------------------------------------------------
    pytest.param(
        Case(snapshot(nodes=[node("n1", H, gpus=8)])),
        id="empty queue plans nothing",
    ),
    pytest.param(
        Case(
            snapshot(nodes=[node("n1", H, gpus=8)], pending=[pending("j1", gpus=2)]),
            admitted={"j1": (H, (("n1", (0, 1)),))},
        ),
        id="single job fits",
    ),
    pytest.param(
        Case(
            snapshot(nodes=[node("n1", H, gpus=4)], pending=[pending("j1", gpus=4)]),
            admitted={"j1": (H, (("n1", (0, 1, 2, 3)),))},
        ),
        id="job takes a whole node",
    ),
    pytest.param(
        Case(
            snapshot(nodes=[node("n1", H, gpus=4)], pending=[pending("j1", gpus=5)]),
            waiting={"j1": RES},
        ),
        id="job larger than any node waits on resources",
    ),
    # --- never overcommit a device ------------------------------------------------
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=8)],
                running=[running("r1", on=[("n1", (0, 1, 2))])],
                pending=[pending("j1", gpus=2)],
            ),
            admitted={"j1": (H, (("n1", (3, 4)),))},
        ),
        id="job takes the lowest free devices",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                running=[running("r1", on=[("n1", (0, 2))])],
                pending=[pending("j1", gpus=2, time_limit_s=SHORT)],
            ),
            admitted={"j1": (H, (("n1", (1, 3)),))},
        ),
        id="devices held by running jobs are skipped even when interleaved",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                running=[running("r1", on=[("n1", (0, 1, 2))])],
                pending=[pending("j1", gpus=2)],
            ),
            waiting={"j1": RES},
        ),
        id="job waits when running jobs hold the devices it needs",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=8)],
                pending=[pending("j1", gpus=3, submitted=1), pending("j2", gpus=3, submitted=2)],
            ),
            admitted={"j1": (H, (("n1", (0, 1, 2)),)), "j2": (H, (("n1", (3, 4, 5)),))},
        ),
        id="two jobs in one cycle get disjoint devices",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4), node("n2", H, gpus=4)],
                pending=[pending("j1", gpus=3, submitted=1), pending("j2", gpus=3, submitted=2)],
            ),
            admitted={"j1": (H, (("n1", (0, 1, 2)),)), "j2": (H, (("n2", (0, 1, 2)),))},
        ),
        id="second job spills onto the next node",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                pending=[pending("j1", gpus=3, submitted=1), pending("j2", gpus=3, submitted=2)],
            ),
            admitted={"j1": (H, (("n1", (0, 1, 2)),))},
            waiting={"j2": RES},
        ),
        id="devices admitted earlier in the cycle are not given again",
    ),
    # --- best fit -----------------------------------------------------------------
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n2", H, gpus=4), node("n1", H, gpus=4)],
                pending=[pending("j1", gpus=1)],
            ),
            admitted={"j1": (H, (("n1", (0,)),))},
        ),
        id="equally free nodes: by node name, not snapshot order",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=8), node("n2", H, gpus=8)],
                running=[running("r1", on=[("n2", (0, 1, 2, 3, 4, 5))])],
                pending=[pending("j1", gpus=2, time_limit_s=SHORT)],
            ),
            admitted={"j1": (H, (("n2", (6, 7)),))},
        ),
        id="best fit: the fullest node that fits keeps whole nodes free",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4), node("n2", H, gpus=4)],
                running=[running("r1", on=[("n1", (0, 1, 2))])],
                pending=[pending("j1", gpus=2)],
            ),
            admitted={"j1": (H, (("n2", (0, 1)),))},
        ),
        id="a single-node job is never split across nodes",
    ),
    # --- queue order: priority, then FIFO, then id ---------------------------------
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                pending=[
                    pending("j1", gpus=4, priority=0, submitted=1),
                    pending("j2", gpus=4, priority=5, submitted=2),
                ],
            ),
            admitted={"j2": (H, (("n1", (0, 1, 2, 3)),))},
            waiting={"j1": RES},
        ),
        id="higher priority goes first",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                pending=[
                    pending("j1", gpus=4, submitted=20),
                    pending("j2", gpus=4, submitted=10),
                ],
            ),
            admitted={"j2": (H, (("n1", (0, 1, 2, 3)),))},
            waiting={"j1": RES},
        ),
        id="FIFO within one priority",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                pending=[pending("jb", gpus=4, submitted=5), pending("ja", gpus=4, submitted=5)],
            ),
            admitted={"ja": (H, (("n1", (0, 1, 2, 3)),))},
            waiting={"jb": RES},
        ),
        id="id breaks a tie in priority and submit time",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=8)],
                pending=[
                    pending("j1", gpus=1, priority=0, submitted=1),
                    pending("j2", gpus=1, priority=2, submitted=3),
                    pending("j3", gpus=1, priority=2, submitted=2),
                    pending("j4", gpus=1, priority=-1, submitted=0),
                ],
            ),
            admitted={
                "j3": (H, (("n1", (0,)),)),
                "j2": (H, (("n1", (1,)),)),
                "j1": (H, (("n1", (2,)),)),
                "j4": (H, (("n1", (3,)),)),
            },
        ),
        id="admissions are listed and placed in queue order",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                pending=[
                    pending("big", gpus=8, priority=9, submitted=1),
                    pending("small", gpus=2, submitted=2),
                ],
            ),
            admitted={"small": (H, (("n1", (0, 1)),))},
            waiting={"big": RES},
        ),
        id="a job that can never fit reserves nothing and holds back no one",
    ),
    # --- backfill and the waiting reasons it gives ----------------------------------
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                pending=[
                    pending("j1", gpus=4, submitted=1),
                    pending("j2", gpus=4, submitted=2),
                    pending("j3", gpus=2, submitted=3),
                ],
            ),
            admitted={"j1": (H, (("n1", (0, 1, 2, 3)),))},
            waiting={"j2": RES, "j3": RES},
        ),
        id="jobs that find no free devices wait on resources",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                running=[running("r1", on=[("n1", (0, 1))])],
                pending=[pending("top", gpus=4, submitted=1), pending("j2", gpus=2, submitted=2)],
            ),
            waiting={"top": RES, "j2": PRIO},
        ),
        id="a job that would delay the top job's reserved start waits on priority",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                running=[running("r1", on=[("n1", (0, 1))])],
                pending=[
                    pending("top", gpus=4, submitted=1),
                    pending("j2", gpus=2, submitted=2, time_limit_s=SHORT),
                ],
            ),
            admitted={"j2": (H, (("n1", (2, 3)),))},
            waiting={"top": RES},
        ),
        id="a short job backfills before the top job's reserved start",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4), node("n2", H, gpus=4)],
                running=[running("r1", on=[("n2", (3,))])],
                pending=[
                    pending("g", gpus=4, nodes=2, submitted=1),
                    pending("j", gpus=4, submitted=2),
                ],
            ),
            waiting={"g": RES, "j": GANG},
        ),
        id="gang one node short takes nothing and holds its nodes (gang)",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4), node("n2", H, gpus=4)],
                running=[running("r1", on=[("n2", (3,))])],
                pending=[
                    pending("g", gpus=4, nodes=2, submitted=1),
                    pending("j", gpus=4, submitted=2, time_limit_s=SHORT),
                ],
            ),
            admitted={"j": (H, (("n1", (0, 1, 2, 3)),))},
            waiting={"g": RES},
        ),
        id="short job backfills around a gang's reservation",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4, state=NodeState.DOWN)],
                pending=[pending("j1", gpus=1, submitted=1), pending("j2", gpus=0, submitted=2)],
            ),
            waiting={"j1": NODES, "j2": NODES},
        ),
        id="no schedulable node: every job waits on nodes",
    ),
    pytest.param(
        Case(snapshot(pending=[pending("j1", gpus=1)]), waiting={"j1": NODES}),
        id="empty cluster: job waits on nodes",
    ),
    # --- gang jobs ----------------------------------------------------------------
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4), node("n2", H, gpus=4)],
                pending=[pending("g", gpus=4, nodes=2)],
            ),
            admitted={"g": (H, (("n1", (0, 1, 2, 3)), ("n2", (0, 1, 2, 3))))},
        ),
        id="gang needs two nodes of one type",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=8), node("n2", H, gpus=8)],
                pending=[pending("g", gpus=2, nodes=2)],
            ),
            admitted={"g": (H, (("n1", (0, 1)), ("n2", (0, 1))))},
        ),
        id="gang puts one allocation on each of distinct nodes",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("a1", A, gpus=4), node("h1", H, gpus=4)],
                pending=[pending("g", gpus=4, nodes=2)],
            ),
            waiting={"g": RES},
        ),
        id="gang never mixes GPU types",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[
                    node("a1", A, gpus=4),
                    node("h1", H, gpus=4),
                    node("h2", H, gpus=4),
                ],
                pending=[pending("g", gpus=2, nodes=2)],
            ),
            admitted={"g": (H, (("h1", (0, 1)), ("h2", (0, 1))))},
        ),
        id="gang skips a type with too few nodes for one that has enough",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=8), node("n2", H, gpus=8), node("n3", H, gpus=8)],
                running=[running("r1", on=[("n2", (0, 1, 2, 3, 4, 5))])],
                pending=[pending("g", gpus=4, nodes=2)],
            ),
            admitted={"g": (H, (("n1", (0, 1, 2, 3)), ("n3", (0, 1, 2, 3))))},
        ),
        id="gang skips a node without room",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[
                    node("n1", H, gpus=4, rack="r1"),
                    node("n2", H, gpus=4, rack="r2"),
                    node("n3", H, gpus=4, rack="r2"),
                ],
                pending=[pending("g", gpus=4, nodes=2)],
            ),
            admitted={"g": (H, (("n2", (0, 1, 2, 3)), ("n3", (0, 1, 2, 3))))},
        ),
        id="gang stays within one rack when one rack can hold it",
    ),
    # --- GPU types ----------------------------------------------------------------
    pytest.param(
        Case(
            snapshot(
                nodes=[node("a1", A, gpus=4), node("h1", H, gpus=4)],
                pending=[pending("j1", gpus=1, types=[H])],
            ),
            admitted={"j1": (H, (("h1", (0,)),))},
        ),
        id="accepted GPU type is honoured",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("a1", A, gpus=4), node("h1", H, gpus=4)],
                running=[running("r1", on=[("h1", (0, 1, 2, 3))])],
                pending=[pending("j1", gpus=1, types=[H])],
            ),
            waiting={"j1": RES},
        ),
        id="free devices of another type do not help",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("a1", A, gpus=4), node("h1", H, gpus=4)],
                pending=[pending("j1", gpus=1, types=[H, A])],
            ),
            admitted={"j1": (H, (("h1", (0,)),))},
        ),
        id="job's type preference beats node order",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("a1", A, gpus=4), node("h1", H, gpus=4)],
                running=[running("r1", on=[("h1", (0, 1, 2, 3))])],
                pending=[pending("j1", gpus=2, types=[H, A])],
            ),
            admitted={"j1": (A, (("a1", (0, 1)),))},
        ),
        id="falls back to the next preferred type",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("a-node", H, gpus=4), node("b-node", A, gpus=4)],
                pending=[pending("j1", gpus=1)],
            ),
            admitted={"j1": (A, (("b-node", (0,)),))},
        ),
        id="no preference: GPU types in name order",
    ),
    # --- CPU and memory -----------------------------------------------------------
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=8, cpus=16)],
                pending=[
                    pending("j1", gpus=1, cpus=12, submitted=1),
                    pending("j2", gpus=1, cpus=8, submitted=2),
                ],
            ),
            admitted={"j1": (H, (("n1", (0,)),))},
            waiting={"j2": RES},
        ),
        id="CPUs admitted earlier in the cycle count",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=8, cpus=16)],
                running=[running("r1", on=[("n1", (0,))], cpus=10)],
                pending=[pending("j1", gpus=1, cpus=8)],
            ),
            waiting={"j1": RES},
        ),
        id="CPUs held by running jobs count",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=8, memory_mb=64_000)],
                running=[running("r1", on=[("n1", (0,))], memory_mb=40_000)],
                pending=[pending("j1", gpus=1, memory_mb=30_000)],
            ),
            waiting={"j1": RES},
        ),
        id="memory held by running jobs counts",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=8, cpus=4), node("n2", H, gpus=8, cpus=64)],
                pending=[pending("j1", gpus=1, cpus=8)],
            ),
            admitted={"j1": (H, (("n2", (0,)),))},
        ),
        id="node without enough CPUs is skipped",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=8, memory_mb=1000), node("n2", H, gpus=8)],
                pending=[pending("g", gpus=1, nodes=2, memory_mb=2000)],
            ),
            waiting={"g": RES},
        ),
        id="gang fails when one node lacks memory",
    ),
    # --- node states --------------------------------------------------------------
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4, state=NodeState.DRAIN), node("n2", H, gpus=4)],
                pending=[pending("j1", gpus=1)],
            ),
            admitted={"j1": (H, (("n2", (0,)),))},
        ),
        id="drained node is skipped",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4, state=NodeState.DOWN), node("n2", H, gpus=4)],
                pending=[pending("j1", gpus=1)],
            ),
            admitted={"j1": (H, (("n2", (0,)),))},
        ),
        id="down node is skipped",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[
                    node("n1", H, gpus=4, state=NodeState.DRAIN),
                    node("n2", H, gpus=4),
                ],
                pending=[pending("g", gpus=1, nodes=2)],
            ),
            waiting={"g": RES},
        ),
        id="gang cannot count a drained node",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4, state=NodeState.DRAIN)],
                running=[running("r1", on=[("n1", (0, 1))])],
                pending=[pending("j1", gpus=1)],
            ),
            waiting={"j1": NODES},
        ),
        id="drained node with running jobs takes nothing new",
    ),
    # --- zero-GPU jobs ------------------------------------------------------------
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                running=[running("r1", on=[("n1", (0, 1, 2, 3))])],
                pending=[pending("cpu", gpus=0, cpus=4)],
            ),
            admitted={"cpu": (CPU, (("n1", ()),))},
        ),
        id="zero-GPU job runs on a node whose GPUs are all busy",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4)],
                pending=[
                    pending("cpu", gpus=0, priority=5),
                    pending("gpu", gpus=4),
                ],
            ),
            admitted={"cpu": (CPU, (("n1", ()),)), "gpu": (H, (("n1", (0, 1, 2, 3)),))},
        ),
        id="zero-GPU job takes no devices",
    ),
    pytest.param(
        Case(
            snapshot(
                nodes=[node("n1", H, gpus=4, cpus=8)],
                pending=[pending("cpu", gpus=0, cpus=16)],
            ),
            waiting={"cpu": RES},
        ),
        id="zero-GPU job still needs CPUs",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_plan(case: Case) -> None:
    result = plan(case.snapshot, NOW)

    assert placements(result) == case.admitted
    assert admitted_ids(result) == list(case.admitted), "admissions out of order"
    assert dict(result.waiting) == case.waiting
    assert result.preemptions == ()


def test_allocation_records_the_jobs_cpus_and_memory_per_node() -> None:
    snap = snapshot(
        nodes=[node("n1", H, gpus=4), node("n2", H, gpus=4)],
        pending=[pending("g", gpus=2, nodes=2, cpus=6, memory_mb=12_000)],
    )
    (admission,) = plan(snap, NOW).admissions
    assert [(a.cpus, a.memory_mb) for a in admission.placement] == [(6, 12_000), (6, 12_000)]


def test_node_ids_not_names_appear_in_placements() -> None:
    snap = snapshot(
        nodes=[node("gpu-01", H, gpus=4, node_id="nod_x")],
        running=[running("r1", on=[("nod_x", (0,))])],
        pending=[pending("j1", gpus=1, time_limit_s=SHORT)],
    )
    assert placements(plan(snap, NOW)) == {"j1": (H, (("nod_x", (1,)),))}


def test_the_top_blocked_job_gets_an_estimate_of_its_start() -> None:
    snap = snapshot(
        nodes=[node("n1", H, gpus=4)],
        running=[running("r1", on=[("n1", (0, 1))], started=0.0, time_limit_s=3600)],
        pending=[pending("top", gpus=4)],
    )
    (estimate,) = plan(snap, NOW).estimates
    assert (estimate.job_id, estimate.at) == ("top", 3600.0)
    assert [(a.node_id, a.devices) for a in estimate.placement] == [("n1", (0, 1, 2, 3))]


def test_job_whose_accepted_type_has_no_node_up_waits_on_nodes() -> None:
    snap = snapshot(
        nodes=[node("a1", A, gpus=4), node("h1", H, gpus=4, state=NodeState.DOWN)],
        pending=[pending("j1", gpus=1, types=[H])],
    )
    assert dict(plan(snap, NOW).waiting) == {"j1": NODES}


def test_jobs_on_a_drained_node_do_not_shrink_the_capacity_of_up_nodes() -> None:
    """Drained nodes leave the capacity pool; what runs on them must leave it too."""
    snap = snapshot(
        nodes=[node("n1", H, gpus=4, state=NodeState.DRAIN), node("n2", H, gpus=4)],
        running=[running("r1", on=[("n1", (0, 1, 2, 3))])],
        pending=[pending("j1", gpus=2)],
    )
    assert placements(plan(snap, NOW)) == {"j1": (H, (("n2", (0, 1)),))}


def test_backfill_does_not_take_the_memory_the_top_job_needs() -> None:
    """EASY backfill: a backfilled job never delays the reserved start (backfill.py).

    At 3600 r1 ends and frees 40 GB: with the 24 GB free now, enough for ``top`` (60 GB).
    ``late`` (20 GB) would run past 3600 on the same node: ``top`` could then not start.
    """
    snap = snapshot(
        nodes=[node("n1", H, gpus=2, memory_mb=64_000)],
        running=[running("r1", on=[("n1", (0,))], memory_mb=40_000)],
        pending=[
            pending("top", gpus=1, memory_mb=60_000, submitted=1),
            pending("late", gpus=1, memory_mb=20_000, submitted=2),
        ],
    )
    result = plan(snap, NOW)
    assert result.waiting.get("top") is RES
    (estimate,) = result.estimates
    assert estimate.at == 3600.0
    assert "late" not in admitted_ids(result), "late would hold 20 GB past top's start"


# --- determinism ------------------------------------------------------------------

_NODES = (
    node("h2", H, gpus=4),
    node("a1", A, gpus=8, cpus=16),
    node("h1", H, gpus=4),
    node("h3", H, gpus=8, state=NodeState.DRAIN),
)
_RUNNING = (
    running("r1", on=[("h1", (1, 2))]),
    running("r2", on=[("a1", (0,)), ("h3", (0, 1))], cpus=8, project="prj_b"),
)
_PENDING = (
    pending("j1", gpus=2, nodes=2, submitted=3, types=[H]),
    pending("j2", gpus=4, submitted=1, priority=1, project="prj_b"),
    pending("j3", gpus=0, cpus=4, submitted=2),
    pending("j4", gpus=1, submitted=2, types=[A, H], project="prj_b"),
    pending("j5", gpus=3, submitted=2, project="prj_c"),
    pending("j6", gpus=8, submitted=0),
    pending("j7", gpus=1, submitted=3, cpus=9, types=[A], project="prj_c"),
)
_BUSY = snapshot(nodes=_NODES, running=_RUNNING, pending=_PENDING)


def test_same_snapshot_gives_equal_plans() -> None:
    first = plan(_BUSY, NOW)
    assert first.admissions, "the fixture should admit something"
    assert first.waiting, "the fixture should leave something waiting"
    assert plan(_BUSY, NOW) == first


@pytest.mark.parametrize("rotation", range(len(_PENDING)))
def test_plan_does_not_depend_on_input_order(rotation: int) -> None:
    expected = plan(_BUSY, NOW)
    jobs = _PENDING[rotation:] + _PENDING[:rotation]
    rotated = snapshot(nodes=_NODES, running=_RUNNING[::-1], pending=jobs[::-1])
    # the per-project queues are sorted; the order of the projects is not promised
    rotated = replace(rotated, queues=dict(reversed(list(rotated.queues.items()))))
    assert plan(rotated, NOW) == expected


def test_plan_does_not_depend_on_node_order() -> None:
    expected = plan(_BUSY, NOW)
    for nodes in itertools.permutations(_NODES):
        shuffled = snapshot(nodes=nodes, running=_RUNNING, pending=_PENDING)
        assert plan(shuffled, NOW) == expected


def test_reclaimed_devices_are_not_promised_to_another_job() -> None:
    snap = snapshot(
        nodes=[node("n1", H, gpus=1)],
        running=[running("r0", on=[("n1", (0,))], project="prj_b", time_limit_s=7200)],
        pending=[
            pending("own", gpus=1, project="prj_a"),
            pending("other", gpus=1, project="prj_b"),
        ],
        projects=[QuotaNode("prj_a", quotas={H: Quota(nominal=1)})],
    )
    result = plan(snap, NOW)
    assert [(p.job_id, p.for_job) for p in result.preemptions] == [("r0", "own")]
    assert dict(result.waiting) == {"own": PendingReason.PREEMPTING, "other": RES}
    own_ends = NOW + 3600
    for estimate in result.estimates:
        promised = {(a.node_id, d) for a in estimate.placement for d in a.devices}
        assert not (promised & {("n1", 0)} and estimate.at < own_ends), estimate


def test_reclaimed_devices_go_to_the_reclaiming_job_when_the_victim_exits() -> None:
    """A job within its quota behind a borrowing job of its own project reclaims devices;
    once the victim has exited, those devices go to it, not to another project's head
    (else it would preempt again, every cycle)."""
    nodes = [node("n1", H, gpus=8)]
    quota = [QuotaNode("prj_a", quotas={H: Quota(nominal=4)})]
    config = SchedulerConfig(min_runtime_s=0)
    usage = {"prj_a": 1000.0, "prj_b": 1.0}  # prj_b used less: it would go first
    queue_a = [
        pending("a_big", gpus=8, submitted=0, project="prj_a"),
        pending("a_small", gpus=4, submitted=1, project="prj_a"),
    ]
    b1 = running("b1", on=[("n1", (0, 1, 2, 3))], project="prj_b", borrowed=True, started=1)
    b3 = running("b3", on=[("n1", (4, 5, 6, 7))], project="prj_b", borrowed=True, started=0)
    first = plan(
        snapshot(
            nodes=nodes,
            running=[b1, b3],
            pending=queue_a,
            projects=quota,
            usage=usage,
            config=config,
        ),
        NOW,
    )
    assert [(p.job_id, p.for_job) for p in first.preemptions] == [("b1", "a_small")]
    # b1 has exited and waits again, as does another job of prj_b
    second = plan(
        snapshot(
            nodes=nodes,
            running=[b3],
            pending=[
                *queue_a,
                pending("b1", gpus=4, submitted=-1, project="prj_b"),
                pending("b2", gpus=4, submitted=2, project="prj_b"),
            ],
            projects=quota,
            usage=usage,
            config=config,
        ),
        NOW,
    )
    assert placements(second) == {"a_small": (H, (("n1", (0, 1, 2, 3)),))}
    assert not second.preemptions


def test_a_held_job_keeps_its_place_and_is_passed_over() -> None:
    """``held`` (axc hold): never admitted, reason ``held``, the jobs behind it go on, and
    it costs no backfill test (bf_max_job_test 1 still reaches the job behind it)."""
    first = replace(pending("job_held", gpus=1, submitted=1), held=True)
    snap = snapshot(
        nodes=[node("n1", H, 1)],
        pending=[first, pending("job_next", gpus=1, submitted=2)],
        config=SchedulerConfig(bf_max_job_test=1),
    )
    result = plan(snap, NOW)
    assert admitted_ids(result) == ["job_next"]
    assert result.waiting == {"job_held": PendingReason.HELD}
    released = replace(snap, queues={"prj_a": (replace(first, held=False),)})
    assert admitted_ids(plan(released, NOW)) == ["job_held"]


def test_a_job_waiting_on_a_dependency_is_passed_over() -> None:
    waiting = replace(pending("job_after", gpus=1, submitted=1), dependent=True)
    snap = snapshot(nodes=[node("n1", H, 1)], pending=[waiting, pending("job_free", submitted=2)])
    result = plan(snap, NOW)
    assert admitted_ids(result) == ["job_free"]
    assert result.waiting == {"job_after": PendingReason.DEPENDENCY}


@pytest.mark.parametrize("run_unallocated", [True, False])
def test_gpu_jobs_of_a_project_without_an_allocation_follow_the_centers_policy(
    run_unallocated: bool,
) -> None:
    """``prj_a`` has no budget (no allocation), ``prj_b`` has one: with
    ``run_unallocated`` False, ``prj_a``'s GPU job waits (reason ``budget``) while its
    CPU-only job and ``prj_b``'s GPU job run."""
    funded = Budget(won_left=10**9, gpu_seconds_left={H: 10**9}, prices={H: 1})
    snap = replace(
        snapshot(
            nodes=[node("n1", H, 2)],
            pending=[
                pending("job_gpu", gpus=1, submitted=1),
                pending("job_cpu", gpus=0, submitted=2),
                pending("job_funded", gpus=1, submitted=3, project="prj_b"),
            ],
            config=SchedulerConfig(run_unallocated=run_unallocated),
        ),
        budgets={"prj_b": funded},
    )
    result = plan(snap, NOW)
    if run_unallocated:
        assert sorted(admitted_ids(result)) == ["job_cpu", "job_funded", "job_gpu"]
    else:
        assert sorted(admitted_ids(result)) == ["job_cpu", "job_funded"]
        assert result.waiting == {"job_gpu": PendingReason.BUDGET}


# --- reservation depth (bf_reservations) -----------------------------------------------


def _depth_snapshot(depth: int, *extra: PendingJob) -> Snapshot:
    """n1 frees 7 GPUs at 3600, n2 frees 4 at 7200 (its other 4 are free now). ``top``
    and ``wide`` need a whole node; ``small`` (4 GPUs for 10 hours) fits n2 now."""
    return snapshot(
        nodes=[node("n1", H, gpus=8), node("n2", H, gpus=8)],
        running=[
            running("r1", on=[("n1", tuple(range(7)))]),
            running("r2", on=[("n2", (0, 1, 2, 3))], time_limit_s=7200),
        ],
        pending=[
            pending("top", gpus=8, submitted=1),
            pending("wide", gpus=8, submitted=2),
            pending("small", gpus=4, submitted=3, time_limit_s=36_000),
            *extra,
        ],
        config=SchedulerConfig(bf_reservations=depth),
    )


def test_one_reservation_lets_a_long_job_take_what_the_second_wide_job_needs() -> None:
    """EASY (depth 1): only ``top`` is protected; ``small`` takes n2 for 10 hours, so
    ``wide`` (which could start on n2 at 7200) now waits until 39,600 at least."""
    result = plan(_depth_snapshot(1), NOW)
    assert admitted_ids(result) == ["small"]
    assert placements(result)["small"] == (H, (("n2", (4, 5, 6, 7)),))
    assert [(e.job_id, e.at) for e in result.estimates] == [("top", 3600.0)]


def test_a_second_reservation_protects_the_second_blocked_job() -> None:
    """Depth 2: ``wide`` gets its own reservation, on devices ``top``'s does not hold
    (n2 at 7200, not n1 at 3600 where ``top`` starts), and ``small``, which would run
    past 7200, may not take them."""
    result = plan(_depth_snapshot(2), NOW)
    assert admitted_ids(result) == []
    assert result.waiting["top"] is RES and result.waiting["wide"] is RES
    assert result.waiting["small"] is PRIO
    starts = {e.job_id: (e.at, tuple(a.node_id for a in e.placement)) for e in result.estimates}
    assert starts == {"top": (3600.0, ("n1",)), "wide": (7200.0, ("n2",))}


def test_a_short_job_backfills_around_every_reservation() -> None:
    """A job that ends before both reserved starts still backfills at depth 2."""
    result = plan(
        _depth_snapshot(2, pending("short", gpus=4, submitted=4, time_limit_s=SHORT)), NOW
    )
    assert admitted_ids(result) == ["short"]


def test_the_depth_is_set_from_the_environment_and_at_least_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert scheduler_config(Settings()).bf_reservations == SchedulerConfig().bf_reservations
    monkeypatch.setenv("AXC_SCHED_BF_RESERVATIONS", "3")
    assert scheduler_config(Settings()).bf_reservations == 3
    with pytest.raises(ValidationError, match="sched_bf_reservations"):
        Settings(sched_bf_reservations=0)
