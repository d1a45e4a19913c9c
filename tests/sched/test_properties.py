"""Properties of ``sched.plan`` over random small clusters and queues.

Clusters have 1-6 nodes of 1-8 GPUs of two types in up to two racks, some drained or
down, with random *valid* running allocations (no device, CPU or memory given twice;
a multi-node job on nodes of one type); queues have 0-30 jobs in up to three projects,
some of them gangs, some without GPUs, with random type preferences and time limits.
Some snapshots give the projects nominal quotas, so that quota, borrowing and
preemption paths run too. Every property here must hold whatever the policy decides.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from axcenter.model.cluster import Allocation, Node, NodeState
from axcenter.model.plan import Admission, Estimate, PendingReason, Plan
from axcenter.model.quota import Quota, QuotaNode
from axcenter.model.snapshot import PendingJob, RunningJob, Snapshot, queue_key
from axcenter.sched import plan
from tests.builders import node, pending, pending_jobs, running, snapshot

TYPES = ("A100", "H100")
PROJECTS = ("p0", "p1", "p2")
LIMITS = (600, 1800, 3600, 7200)
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
            rack=draw(st.sampled_from(["", "r1", "r2"])),
        )
        for i in range(count)
    )
    # What is still free on each node while running jobs are drawn.
    devices_left = {n.id: list(range(n.gpu_count)) for n in nodes}
    cpus_left = {n.id: n.cpus for n in nodes}
    memory_left = {n.id: n.memory_mb for n in nodes}
    jobs: list[RunningJob] = []
    for j in range(draw(st.integers(0, 8))):
        gpu_type = draw(st.sampled_from(sorted({n.gpu_type for n in nodes})))
        same_type = [n.id for n in nodes if n.gpu_type == gpu_type]
        where = draw(st.lists(st.sampled_from(same_type), min_size=1, max_size=2, unique=True))
        gpus = draw(st.integers(0, 8))
        on = []
        for node_id in where:
            free = devices_left[node_id]
            if cpus_left[node_id] < 1 or memory_left[node_id] < 1024 or len(free) < gpus:
                break
            on.append((node_id, tuple(free[:gpus])))
        if len(on) != len(where):
            continue  # a gang runs on all its nodes or not at all
        cpus = draw(st.integers(1, min(cpus_left[n] for n in where)))
        memory = draw(st.integers(1, min(memory_left[n] for n in where) // 1024)) * 1024
        for node_id, devices in on:
            devices_left[node_id] = [d for d in devices_left[node_id] if d not in devices]
            cpus_left[node_id] -= cpus
            memory_left[node_id] -= memory
        jobs.append(
            running(
                f"r{j}",
                on=on,
                cpus=cpus,
                memory_mb=memory,
                started=float(draw(st.integers(0, int(NOW)))),
                time_limit_s=draw(st.sampled_from(LIMITS)),
                priority=draw(st.integers(0, 2)),
                project=draw(st.sampled_from(PROJECTS)),
                gpu_type=gpu_type,
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
            project=draw(st.sampled_from(PROJECTS)),
            time_limit_s=draw(st.sampled_from(LIMITS)),
        )
        for i in range(size)
    )


quota_nodes = st.lists(
    st.builds(
        QuotaNode,
        id=st.sampled_from(PROJECTS),
        quotas=st.dictionaries(
            st.sampled_from(TYPES), st.builds(Quota, nominal=st.integers(0, 8)), max_size=2
        ),
    ),
    max_size=3,
    unique_by=lambda q: q.id,
)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    nodes, jobs = draw(clusters())
    projects = draw(st.one_of(st.just([]), quota_nodes))
    return snapshot(nodes=nodes, running=jobs, pending=draw(queues()), projects=projects)


# --- the invariants ---------------------------------------------------------------


def _allocations(snap: Snapshot, result: Plan) -> Iterable[Allocation]:
    for job in snap.running:
        yield from job.allocations
    for admission in result.admissions:
        yield from admission.placement


def _free_after(snap: Snapshot, result: Plan) -> dict[str, tuple[set[int], int, int]]:
    """(free devices, CPUs, memory) per schedulable node after running + admitted."""
    free = {n.id: (set(range(n.gpu_count)), n.cpus, n.memory_mb) for n in snap.nodes}
    for alloc in _allocations(snap, result):
        devices, cpus, memory = free[alloc.node_id]
        free[alloc.node_id] = (
            devices - set(alloc.devices),
            cpus - alloc.cpus,
            memory - alloc.memory_mb,
        )
    return {n.id: free[n.id] for n in snap.nodes if n.schedulable}


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
    for node_id, (_, cpus, memory) in _free_after(snap, result).items():
        assert cpus >= 0, f"CPUs of {node_id} overcommitted by {-cpus}"
        assert memory >= 0, f"memory of {node_id} overcommitted by {-memory} MB"


def check_gang_is_all_or_nothing_on_one_accepted_type(snap: Snapshot, result: Plan) -> None:
    jobs = {j.id: j for j in pending_jobs(snap)}
    nodes = {n.id: n for n in snap.nodes}
    for admission in result.admissions:
        job = jobs[admission.job_id]
        placed_on = [a.node_id for a in admission.placement]
        assert len(placed_on) == job.nodes, admission
        assert len(set(placed_on)) == job.nodes, f"{job.id} has two allocations on one node"
        for alloc in admission.placement:
            assert len(alloc.devices) == job.gpus_per_node, admission
            assert (alloc.cpus, alloc.memory_mb) == (job.cpus_per_node, job.memory_mb_per_node)
            if job.gpus_per_node:
                assert nodes[alloc.node_id].gpu_type == admission.gpu_type, admission
        if job.gpus_per_node:
            assert job.accepts(admission.gpu_type), admission


def check_every_pending_job_is_admitted_or_waiting_never_both(snap: Snapshot, result: Plan) -> None:
    admitted = [a.job_id for a in result.admissions]
    assert len(admitted) == len(set(admitted)), "a job admitted twice"
    assert not set(admitted) & set(result.waiting), "admitted and waiting"
    # 30 jobs stay far below bf_max_job_test: every job is examined.
    assert set(admitted) | set(result.waiting) == {j.id for j in pending_jobs(snap)}


def check_each_project_is_served_in_queue_order(snap: Snapshot, result: Plan) -> None:
    """Within a project, jobs start in queue order, except that work within the project's
    guaranteed quota may pass work that would borrow (plan.LOOKAHEAD): compare each kind
    (guaranteed GPU work, borrowing GPU work, CPU-only work) separately."""
    jobs = {j.id: j for j in pending_jobs(snap)}
    keys: dict[tuple[str, str], list[tuple[int, float, str]]] = {}
    for admission in result.admissions:
        job = jobs[admission.job_id]
        kind = (
            "cpu-only"
            if not job.gpus_per_node
            else ("borrowing" if admission.borrowed else "guaranteed")
        )
        keys.setdefault((job.project_id, kind), []).append(queue_key(job))
    for (project, kind), order in keys.items():
        assert order == sorted(order), f"{project} admitted {kind} jobs out of queue order"


def check_preemptions_name_running_jobs_for_waiting_ones(snap: Snapshot, result: Plan) -> None:
    running_ids = {r.id for r in snap.running}
    victims = [p.job_id for p in result.preemptions]
    assert len(victims) == len(set(victims)), "a job preempted twice"
    assert set(victims) <= running_ids
    for p in result.preemptions:
        assert result.waiting.get(p.for_job) is PendingReason.PREEMPTING, p


def _held_at(snap: Snapshot, result: Plan, at: float) -> list[Allocation]:
    """Allocations still held at time ``at`` if everything runs to its time limit and
    jobs being preempted (before or by this plan) stop now. Whether reclaimed devices
    may be promised to another job is ``test_reclaimed_devices_are_not_promised_…``."""
    jobs = {j.id: j for j in pending_jobs(snap)}
    stopping = {p.job_id for p in result.preemptions}
    held = [
        a
        for r in snap.running
        if not r.preempting and r.id not in stopping and r.ends_by > at
        for a in r.allocations
    ]
    for admission in result.admissions:
        if NOW + jobs[admission.job_id].time_limit_s > at:
            held.extend(admission.placement)
    return held


def check_backfill_leaves_the_reserved_devices_alone(snap: Snapshot, result: Plan) -> None:
    """At most ``bf_reservations`` reservations; each reserved start finds its devices
    free, whatever was admitted; no two reservations share a device."""
    assert len(result.estimates) <= snap.config.bf_reservations
    reserved: set[tuple[str, int]] = set()
    for estimate in result.estimates:
        check_estimate(snap, result, estimate)
        devices = {(a.node_id, d) for a in estimate.placement for d in a.devices}
        assert not devices & reserved, f"{estimate.job_id} shares reserved devices"
        reserved |= devices


def check_estimate(snap: Snapshot, result: Plan, estimate: Estimate) -> None:
    assert result.waiting.get(estimate.job_id) is PendingReason.RESOURCES, estimate
    assert estimate.at >= NOW
    busy = {(a.node_id, d) for a in _held_at(snap, result, estimate.at) for d in a.devices}
    for alloc in estimate.placement:
        taken = {d for d in alloc.devices if (alloc.node_id, d) in busy}
        assert not taken, f"{alloc.node_id} devices {taken} are still held at {estimate.at}"


INVARIANTS = (
    check_no_device_is_overcommitted,
    check_cpus_and_memory_are_never_exceeded,
    check_gang_is_all_or_nothing_on_one_accepted_type,
    check_every_pending_job_is_admitted_or_waiting_never_both,
    check_each_project_is_served_in_queue_order,
    check_preemptions_name_running_jobs_for_waiting_ones,
    check_backfill_leaves_the_reserved_devices_alone,
)


def _reordered(snap: Snapshot) -> Snapshot:
    """The same snapshot with every collection whose order carries no meaning reversed."""
    return Snapshot(
        nodes=snap.nodes[::-1],
        running=snap.running[::-1],
        queues=dict(reversed(list(snap.queues.items()))),
        projects=dict(reversed(list(snap.projects.items()))),
        cohorts=snap.cohorts,
        usage=snap.usage,
        reservations=snap.reservations[::-1],
        user_limits=snap.user_limits,
        project_limits=snap.project_limits,
        config=snap.config,
    )


def _fits_somewhere(
    job: PendingJob, snap: Snapshot, free: dict[str, tuple[set[int], int, int]]
) -> bool:
    fitting = Counter(
        n.gpu_type
        for n in snap.nodes
        if n.id in free
        and (job.gpus_per_node == 0 or job.accepts(n.gpu_type))
        and len(free[n.id][0]) >= job.gpus_per_node
        and free[n.id][1] >= job.cpus_per_node
        and free[n.id][2] >= job.memory_mb_per_node
    )
    if job.gpus_per_node == 0:
        return sum(fitting.values()) >= job.nodes
    return any(c >= job.nodes for c in fitting.values())


def check_waiting_reasons_tell_the_truth(snap: Snapshot) -> None:
    """Without quotas, a job that waits on ``resources`` did not fit when its turn came;
    capacity only shrinks during a cycle, so it does not fit in what is left at the end
    either. (Jobs on drained or down nodes are left out to keep the check simple.)"""
    up = {n.id for n in snap.nodes if n.schedulable}
    snap = snapshot(
        nodes=snap.nodes,
        running=[r for r in snap.running if all(a.node_id in up for a in r.allocations)],
        pending=pending_jobs(snap),
    )
    result = plan(snap, NOW)
    up_types = {n.gpu_type for n in snap.nodes if n.schedulable}
    for job in pending_jobs(snap):
        if result.waiting.get(job.id) is PendingReason.NODES:
            accepted = set(job.gpu_types or up_types) if job.gpus_per_node else up_types
            assert not (accepted & up_types), f"'nodes' while a node {job.id} accepts is up"
    assert PendingReason.QUOTA not in result.waiting.values(), "no quota is configured"
    free = _free_after(snap, result)
    jobs = {j.id: j for j in pending_jobs(snap)}
    for job_id, reason in result.waiting.items():
        if reason is PendingReason.RESOURCES:
            assert not _fits_somewhere(jobs[job_id], snap, free), f"{job_id} waits but fits"


@PROPERTY
@given(snapshots())
def test_plan_keeps_its_invariants(snap: Snapshot) -> None:
    """One generated snapshot serves every property: generation is the slow part."""
    result = plan(snap, NOW)
    for invariant in INVARIANTS:
        invariant(snap, result)

    assert plan(snap, NOW) == result, "same snapshot, different plan"
    assert plan(_reordered(snap), NOW) == result, "plan depends on the order of a collection"

    check_waiting_reasons_tell_the_truth(snap)


def test_invariants_can_fail() -> None:
    """The checkers are not vacuous: a plan that reuses a held device, splits a gang
    across types, forgets a job or reserves a busy device is caught."""
    snap = snapshot(
        nodes=[node("a", "A100", gpus=2), node("h", "H100", gpus=2)],
        running=[running("r", on=[("a", (0,))])],
        pending=[pending("g", gpus=1, nodes=2), pending("x", gpus=2), pending("y", gpus=1)],
    )
    bad = Plan(
        admissions=(
            Admission(
                "g",
                "A100",
                (Allocation("a", (0,), 1, 1024), Allocation("h", (0,), 1, 1024)),
            ),
        ),
        estimates=(Estimate("x", NOW, (Allocation("a", (0, 1), 1, 1024),)),),
        waiting={"x": PendingReason.RESOURCES},
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
        "check_backfill_leaves_the_reserved_devices_alone",
    ]


@PROPERTY
@given(snapshots())
def test_easy_backfill_keeps_its_invariants(snap: Snapshot) -> None:
    """With one reservation a cycle (EASY backfill, ``bf_reservations=1``) as with the
    default depth: the same invariants hold."""
    snap = replace(snap, config=replace(snap.config, bf_reservations=1))
    result = plan(snap, NOW)
    assert len(result.estimates) <= 1
    for invariant in INVARIANTS:
        invariant(snap, result)
