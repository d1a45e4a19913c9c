"""Properties of ``sched.plan`` over random small clusters and queues.

Clusters have 1-6 nodes of 1-8 GPUs and two GPU types, some drained or down, with
random *valid* running allocations (no device, CPU or memory given twice); queues have
0-30 jobs, some of them gangs, some without GPUs, with random type preferences.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from axcenter.model.cluster import Allocation, Node, NodeState
from axcenter.model.plan import Admission, PendingReason, Plan
from axcenter.model.snapshot import PendingJob, RunningJob, Snapshot
from axcenter.sched import plan
from axcenter.sched.plan import queue_order
from tests.builders import node, pending, snapshot

TYPES = ("A100", "H100")
NOW = 1_000.0
PROPERTY = settings(max_examples=200, deadline=None)


@st.composite
def clusters(draw: st.DrawFn) -> tuple[tuple[Node, ...], tuple[RunningJob, ...]]:
    count = draw(st.integers(1, 6))
    nodes = tuple(
        node(
            f"n{i}",
            draw(st.sampled_from(TYPES)),
            gpus=draw(st.integers(1, 8)),
            cpus=draw(st.integers(1, 32)),
            memory_mb=draw(st.integers(1, 64)) * 1024,
            state=draw(st.sampled_from([NodeState.UP] * 4 + [NodeState.DRAIN, NodeState.DOWN])),
        )
        for i in range(count)
    )
    # What is still free on each node while running jobs are drawn.
    devices_left = {n.id: list(range(n.gpu_count)) for n in nodes}
    cpus_left = {n.id: n.cpus for n in nodes}
    memory_left = {n.id: n.memory_mb for n in nodes}
    jobs: list[RunningJob] = []
    for j in range(draw(st.integers(0, 8))):
        where = draw(st.lists(st.sampled_from([n.id for n in nodes]), min_size=1, max_size=2))
        allocations = []
        for node_id in dict.fromkeys(where):
            if cpus_left[node_id] < 1 or memory_left[node_id] < 1024:
                continue
            devices = devices_left[node_id]
            taken = sorted(draw(st.lists(st.sampled_from(devices), unique=True))) if devices else []
            cpus = draw(st.integers(1, cpus_left[node_id]))
            memory = draw(st.integers(1, memory_left[node_id] // 1024)) * 1024
            devices_left[node_id] = [d for d in devices if d not in taken]
            cpus_left[node_id] -= cpus
            memory_left[node_id] -= memory
            allocations.append(Allocation(node_id, tuple(taken), cpus, memory))
        if allocations:
            jobs.append(
                RunningJob(
                    id=f"r{j}",
                    project_id="prj_a",
                    user_id="usr_a",
                    started_at=0.0,
                    time_limit_s=3600,
                    allocations=tuple(allocations),
                )
            )
    return nodes, tuple(jobs)


type_choices = st.sampled_from([(), ("A100",), ("H100",), ("A100", "H100"), ("H100", "A100")])


@st.composite
def queues(draw: st.DrawFn) -> tuple[PendingJob, ...]:
    size = draw(st.integers(0, 30))
    return tuple(
        pending(
            f"j{i:02d}",
            gpus=draw(st.integers(0, 8)),
            nodes=draw(st.sampled_from([1, 1, 1, 2, 3])),
            cpus=draw(st.integers(1, 16)),
            memory_mb=draw(st.integers(1, 32)) * 1024,
            priority=draw(st.integers(0, 3)),
            submitted=float(draw(st.integers(0, 10))),
            types=draw(type_choices),
        )
        for i in range(size)
    )


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    nodes, running = draw(clusters())
    return snapshot(nodes=nodes, running=running, pending=draw(queues()))


def _allocations(snap: Snapshot, result: Plan) -> Iterable[Allocation]:
    for job in snap.running:
        yield from job.allocations
    for admission in result.admissions:
        yield from admission.placement


def _final_free(snap: Snapshot, result: Plan) -> dict[str, tuple[int, int, int]]:
    """(free devices, CPUs, memory) per schedulable node after running + admitted."""
    free = {n.id: [n.gpu_count, n.cpus, n.memory_mb] for n in snap.nodes if n.schedulable}
    for alloc in _allocations(snap, result):
        if alloc.node_id in free:
            free[alloc.node_id][0] -= len(alloc.devices)
            free[alloc.node_id][1] -= alloc.cpus
            free[alloc.node_id][2] -= alloc.memory_mb
    return {k: (v[0], v[1], v[2]) for k, v in free.items()}


def check_no_device_is_overcommitted(snap: Snapshot, result: Plan) -> None:
    by_id = {n.id: n for n in snap.nodes}
    held: dict[str, list[int]] = {n.id: [] for n in snap.nodes}
    for alloc in _allocations(snap, result):
        held[alloc.node_id].extend(alloc.devices)
    for node_id, devices in held.items():
        twice = [d for d, c in Counter(devices).items() if c > 1]
        assert not twice, f"devices {twice} of {node_id} given twice"
        assert all(0 <= d < by_id[node_id].gpu_count for d in devices), (node_id, devices)
    for admission in result.admissions:
        for alloc in admission.placement:
            assert by_id[alloc.node_id].schedulable, f"{admission.job_id} on {alloc.node_id}"


def check_cpus_and_memory_are_never_exceeded(snap: Snapshot, result: Plan) -> None:
    for node_id, (_, cpus, memory) in _final_free(snap, result).items():
        assert cpus >= 0, f"CPUs of {node_id} overcommitted by {-cpus}"
        assert memory >= 0, f"memory of {node_id} overcommitted by {-memory} MB"


def check_gang_is_all_or_nothing_on_one_accepted_type(snap: Snapshot, result: Plan) -> None:
    jobs = {j.id: j for j in snap.pending}
    nodes = {n.id: n for n in snap.nodes}
    for admission in result.admissions:
        job = jobs[admission.job_id]
        placed_on = [a.node_id for a in admission.placement]
        assert len(placed_on) == job.nodes, admission
        assert len(set(placed_on)) == job.nodes, f"{job.id} has two allocations on one node"
        assert job.accepts(admission.gpu_type), admission
        for alloc in admission.placement:
            assert nodes[alloc.node_id].gpu_type == admission.gpu_type, admission
            assert len(alloc.devices) == job.gpus_per_node, admission
            assert (alloc.cpus, alloc.memory_mb) == (job.cpus_per_node, job.memory_mb_per_node)


def check_every_pending_job_is_admitted_or_waiting_never_both(snap: Snapshot, result: Plan) -> None:
    admitted = [a.job_id for a in result.admissions]
    assert len(admitted) == len(set(admitted)), "a job admitted twice"
    assert not set(admitted) & set(result.waiting)
    assert set(admitted) | set(result.waiting) == {j.id for j in snap.pending}


def check_waiting_reasons_are_consistent(snap: Snapshot, result: Plan) -> None:
    jobs = {j.id: j for j in snap.pending}
    up = [n for n in snap.nodes if n.schedulable]
    if not up:
        assert not result.admissions
        assert set(result.waiting.values()) <= {PendingReason.NODES}
        return
    assert PendingReason.NODES not in result.waiting.values()
    waiting_in_order = sorted(result.waiting, key=lambda job_id: queue_order(jobs[job_id]))
    if waiting_in_order:
        assert result.waiting[waiting_in_order[0]] is PendingReason.RESOURCES
    # A waiting job did not fit when its turn came; capacity only shrinks afterwards,
    # so it cannot fit in what is left at the end either (checked by a separate oracle).
    free = _final_free(snap, result)
    for job_id in result.waiting:
        job = jobs[job_id]
        fitting = Counter(
            n.gpu_type
            for n in up
            if job.accepts(n.gpu_type)
            and free[n.id][0] >= job.gpus_per_node
            and free[n.id][1] >= job.cpus_per_node
            and free[n.id][2] >= job.memory_mb_per_node
        )
        assert all(c < job.nodes for c in fitting.values()), f"{job_id} waits but fits"


def check_admissions_follow_queue_order(snap: Snapshot, result: Plan) -> None:
    jobs = {j.id: j for j in snap.pending}
    keys = [queue_order(jobs[a.job_id]) for a in result.admissions]
    assert keys == sorted(keys)


INVARIANTS = (
    check_no_device_is_overcommitted,
    check_cpus_and_memory_are_never_exceeded,
    check_gang_is_all_or_nothing_on_one_accepted_type,
    check_every_pending_job_is_admitted_or_waiting_never_both,
    check_waiting_reasons_are_consistent,
    check_admissions_follow_queue_order,
)


@PROPERTY
@given(st.data())
def test_plan_keeps_its_invariants_and_is_deterministic(data: st.DataObject) -> None:
    """One generated snapshot serves every property: generation is the slow part."""
    snap = data.draw(snapshots(), label="snapshot")
    result = plan(snap, NOW)
    for invariant in INVARIANTS:
        invariant(snap, result)

    assert plan(snap, NOW) == result, "same snapshot, different plan"
    shuffled = data.draw(st.permutations(snap.pending), label="pending order")
    again = snapshot(nodes=snap.nodes, running=snap.running, pending=shuffled)
    assert plan(again, NOW) == result, "plan depends on the order of snapshot.pending"


def test_invariants_can_fail() -> None:
    """The checkers are not vacuous: a plan that reuses a held device, splits a gang
    across types, or forgets a job is caught."""
    snap = snapshot(
        nodes=[node("a", "A100", gpus=2), node("h", "H100", gpus=2)],
        running=[RunningJob("r", "prj_a", "usr_a", 0.0, 60, (Allocation("a", (0,), 1, 1024),))],
        pending=[pending("g", gpus=1, nodes=2), pending("x", gpus=1)],
    )
    bad = Plan(
        admissions=(
            Admission(
                "g",
                "A100",
                (Allocation("a", (0,), 1, 1024), Allocation("h", (0,), 1, 1024)),
            ),
        ),
    )
    failures = []
    for invariant in INVARIANTS:
        try:
            invariant(snap, bad)
        except AssertionError:
            failures.append(invariant.__name__)
    assert failures == [
        "check_no_device_is_overcommitted",
        "check_gang_is_all_or_nothing_on_one_accepted_type",
        "check_every_pending_job_is_admitted_or_waiting_never_both",
    ]
