"""The incremental structures behind a fast cycle: what the running index keeps for the
backfill bound and the preemption order, and that reading them gives what recomputing
from the running jobs gives."""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from axcenter.model.cluster import Allocation, Node, NodeState
from axcenter.model.index import RunningIndex
from axcenter.model.plan import Estimate
from axcenter.model.snapshot import PendingJob, RunningJob, SchedulerConfig, Snapshot
from axcenter.sched import plan, preempt
from axcenter.sched.backfill import _ready_at, earliest_start
from axcenter.sched.free import FreeCapacity
from axcenter.sched.plan import _Cycle
from axcenter.sched.preempt import preemptible
from tests.builders import node, pending, running, snapshot
from tests.sched.test_properties import NOW, queues, snapshots

LATER = 10_000.0  # the clock of the preemption-order cases


def _job(
    job_id: str,
    node: str,
    devices: tuple[int, ...],
    *,
    started: float = 0.0,
    limit: int = 3600,
    priority: int = 0,
    gpu_type: str = "H100",
    preempting: bool = False,
) -> RunningJob:
    return running(
        job_id,
        on=[(node, devices)],
        started=started,
        time_limit_s=limit,
        priority=priority,
        gpu_type=gpu_type,
        preempting=preempting,
    )


def _sorted_the_old_way(jobs: list[RunningJob], gpu_type: str, min_runtime_s: float) -> list[str]:
    """The order a full sort of the running jobs gives (what the cycle used to compute)."""
    chosen = [
        r
        for r in jobs
        if r.gpu_type == gpu_type and not r.preempting and LATER - r.started_at >= min_runtime_s
    ]
    chosen.sort(key=lambda r: (r.priority, r.loss(LATER), r.id))
    return [r.id for r in chosen]


# -- RunningIndex.device_ends --------------------------------------------------------


@dataclass(frozen=True)
class EndsCase:
    name: str
    jobs: tuple[RunningJob, ...]
    removed: tuple[str, ...]
    expected: dict[str, list[float]]  # node id -> device_ends


ENDS_CASES = [
    EndsCase(
        "one entry per device, ascending",
        (
            _job("a", "n1", (0, 1), started=0, limit=300),
            _job("b", "n1", (2,), started=0, limit=100),
            _job("c", "n2", (0,), started=50, limit=100),
        ),
        (),
        {"n1": [100.0, 300.0, 300.0], "n2": [150.0]},
    ),
    EndsCase(
        "removing a job takes its devices' entries only",
        (
            _job("a", "n1", (0, 1), started=0, limit=300),
            _job("b", "n1", (2,), started=200, limit=100),  # also ends at 300
        ),
        ("a",),
        {"n1": [300.0]},
    ),
    EndsCase(
        "a CPU-only job adds no entry",
        (_job("a", "n1", (), gpu_type=""), _job("b", "n1", (3,), limit=60)),
        (),
        {"n1": [60.0]},
    ),
    EndsCase(
        "everything removed leaves nothing",
        (_job("a", "n1", (0,)), _job("b", "n1", (1,))),
        ("b", "a"),
        {"n1": []},
    ),
]


@pytest.mark.parametrize("case", ENDS_CASES, ids=lambda c: c.name)
def test_device_ends(case: EndsCase) -> None:
    index = RunningIndex(case.jobs)
    for job_id in case.removed:
        index.remove(job_id)
    assert {n: held.device_ends for n, held in index.nodes.items()} == case.expected


def test_device_ends_follow_a_replaced_job() -> None:
    index = RunningIndex([_job("a", "n1", (0, 1), limit=300)])
    index.replace(replace(_job("a", "n1", (0,), limit=500), preempting=True))
    assert index.nodes["n1"].device_ends == [500.0]


# -- RunningIndex.by_start --------------------------------------------------------------


def test_by_start_groups_by_type_priority_and_gpus_newest_first() -> None:
    index = RunningIndex(
        [
            _job("old", "n1", (0,), started=10),
            _job("new", "n1", (1,), started=20),
            _job("big", "n1", (2, 3), started=5),
            _job("urgent", "n1", (4,), started=1, priority=10),
            _job("other", "n2", (0,), started=3, gpu_type="A100"),
        ]
    )
    assert index.by_start == {
        "H100": {
            (0, 1): [(-20.0, "new"), (-10.0, "old")],
            (0, 2): [(-5.0, "big")],
            (10, 1): [(-1.0, "urgent")],
        },
        "A100": {(0, 1): [(-3.0, "other")]},
    }
    index.remove("big")
    index.remove("other")
    assert index.by_start == {
        "H100": {(0, 1): [(-20.0, "new"), (-10.0, "old")], (10, 1): [(-1.0, "urgent")]}
    }


def test_index_updated_in_any_order_equals_one_built_at_once() -> None:
    rng = random.Random(7)
    jobs = [
        _job(
            f"r{i:03d}",
            f"n{rng.randrange(5)}",
            tuple(range(rng.choice([0, 1, 2, 4]))),
            started=float(rng.randrange(100)),
            limit=rng.choice([60, 600]),
            priority=rng.choice([0, 1]),
        )
        for i in range(200)
    ]
    jobs = [replace(j, user_id=f"u{i % 7}", project_id=f"p{i % 3}") for i, j in enumerate(jobs)]
    churned = RunningIndex()
    for job in rng.sample(jobs, len(jobs)):
        churned.add(job)
    for job in rng.sample(jobs, 60):
        churned.remove(job.id)
    for job in jobs:
        if job.id not in churned.jobs:
            churned.add(job)
    fresh = RunningIndex(jobs)
    assert churned.by_start == fresh.by_start
    assert {n: h.device_ends for n, h in churned.nodes.items()} == {
        n: h.device_ends for n, h in fresh.nodes.items()
    }
    for table in ("usage", "counts", "gpus"):
        assert getattr(churned, table) == getattr(fresh, table), table
    emptied = RunningIndex(jobs)
    for job in jobs:
        emptied.remove(job.id)
    assert (emptied.usage, emptied.counts, emptied.gpus) == ({}, {}, {})
    assert emptied.by_start == {}


# -- Preemptible: the lazy merge equals the full sort ---------------------------------


@dataclass(frozen=True)
class OrderCase:
    name: str
    jobs: tuple[RunningJob, ...]
    min_runtime_s: float = 0.0


ORDER_CASES = [
    OrderCase(
        "priority first, then GPU-seconds run, then id",
        (
            _job("a", "n1", (0,), started=LATER - 100),
            _job("b", "n1", (1, 2), started=LATER - 60),  # 120 GPU-s: after a
            _job("c", "n1", (3,), started=LATER - 500, priority=-1),  # lower priority: first
            _job("d", "n1", (4,), started=LATER - 100),  # ties with a: by id
            _job("e", "n1", (5, 6, 7), started=LATER - 10),  # 30 GPU-s: first of class 0
        ),
    ),
    OrderCase(
        "young and stopping jobs, and other types, are left out",
        (
            _job("young", "n1", (0,), started=LATER - 5),
            _job("stopping", "n1", (1,), started=LATER - 500, preempting=True),
            _job("a100", "n2", (0,), started=LATER - 500, gpu_type="A100"),
            _job("kept", "n1", (2,), started=LATER - 500),
        ),
        min_runtime_s=60,
    ),
    OrderCase(
        # different start times whose GPU-seconds round to the same float: the full sort
        # orders them by id, not by start time
        "equal GPU-seconds from different start times go by id",
        (
            _job("z", "n1", (0,), started=1e-13),
            _job("a", "n1", (1,), started=0.0),
            _job("m", "n1", (2,), started=2e-13),
        ),
    ),
]


@pytest.mark.parametrize("case", ORDER_CASES, ids=lambda c: c.name)
def test_preemption_order(case: OrderCase) -> None:
    config = SchedulerConfig(min_runtime_s=case.min_runtime_s)
    found = preemptible(RunningIndex(case.jobs), "H100", LATER, config)
    expected = _sorted_the_old_way(list(case.jobs), "H100", case.min_runtime_s)
    assert [r.id for r in found] == expected
    assert found.rank == {job_id: i for i, job_id in enumerate(expected)}


def test_rounding_case_is_really_a_tie() -> None:
    """Guard for the case above: the three GPU-seconds must be equal floats."""
    assert len({(LATER - s) * 1 for s in (0.0, 1e-13, 2e-13)}) == 1


@pytest.mark.parametrize("limit", [0, 3, 10_000])
def test_preemption_order_past_the_merge_limit(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ``_MERGE_LIMIT`` the rest is sorted at once: the order does not change, and
    readers that started earlier go on where they were."""
    monkeypatch.setattr(preempt, "_MERGE_LIMIT", limit)
    rng = random.Random(limit)
    jobs = [
        _job(
            f"r{i:03d}",
            f"n{i % 9}",
            tuple(range(rng.choice([1, 2, 4]))),
            started=LATER - rng.choice([100, 200, 300, rng.uniform(0, 5000)]),
            priority=rng.choice([0, 0, 5]),
            preempting=rng.random() < 0.05,
        )
        for i in range(300)
    ]
    found = preemptible(RunningIndex(jobs), "H100", LATER, SchedulerConfig(min_runtime_s=150))
    first = iter(found)
    head = [next(first).id for _ in range(5)]
    assert [r.id for r in found] == _sorted_the_old_way(jobs, "H100", 150)
    assert head + [r.id for r in first] == [r.id for r in found.jobs]


# -- backfill: the pruned best-first search equals looking at every node ---------------


def _earliest_everywhere(cycle: _Cycle, job: PendingJob) -> Estimate | None:
    """The earliest start computed on every node, no bound, no pruning."""
    best: tuple[float, list[tuple[float, str, str, tuple[int, ...]]]] | None = None
    for gpu_type in cycle.types(job):
        ready = []
        for nf in cycle.free.candidates(gpu_type, 0):
            found = _ready_at(job, nf, cycle.node_releases(nf.node.id), NOW, None)
            if found is not None:
                ready.append((found[0], nf.node.name, nf.node.id, found[1]))
        chosen = sorted(ready)[: job.nodes]
        if len(chosen) == job.nodes and (best is None or chosen[-1][0] < best[0]):
            best = (chosen[-1][0], chosen)
    if best is None:
        return None
    return Estimate(
        job.id,
        best[0],
        tuple(
            Allocation(node_id, devices, job.cpus_per_node, job.memory_mb_per_node)
            for _, _, node_id, devices in best[1]
        ),
    )


@settings(max_examples=150, deadline=None)
@given(snapshots(), queues(), st.booleans())
def test_earliest_start_equals_a_search_of_every_node(
    snap: Snapshot, probes: tuple[PendingJob, ...], after_run: bool
) -> None:
    """Whatever this cycle admitted or preempted before (``after_run``), the bound the
    search ranks nodes by never hides a node that would be ready sooner."""
    cycle = _Cycle(snap, NOW)
    if after_run:
        cycle.run()
    for job in probes:
        if not job.gpus_per_node:
            continue
        types = cycle.types(job)
        found = earliest_start(
            job, cycle.free, cycle.node_releases, cycle.first_release, types, NOW, None
        )
        assert found == _earliest_everywhere(cycle, job)


@st.composite
def busy_clusters(draw: st.DrawFn) -> Snapshot:
    """Nodes of 4 devices, most held by one-device jobs ending at different times, so
    that the order in which nodes become ready differs from the order of first ends."""
    nodes = [node(f"n{i}", "H100", gpus=4) for i in range(draw(st.integers(2, 8)))]
    jobs = []
    for n in nodes:
        for d in range(draw(st.integers(0, 4))):
            jobs.append(
                running(
                    f"{n.id}-{d}",
                    on=[(n.id, (d,))],
                    started=NOW - 100,
                    time_limit_s=draw(st.sampled_from([50, 200, 400, 800, 1600])),
                    gpu_type="H100",
                    preempting=draw(st.integers(0, 19)) == 0,
                )
            )
    return snapshot(nodes=nodes, running=jobs)


@settings(max_examples=150, deadline=None)
@given(busy_clusters(), st.integers(1, 4), st.integers(1, 3))
def test_earliest_start_on_busy_nodes(snap: Snapshot, gpus: int, count: int) -> None:
    cycle = _Cycle(snap, NOW)
    job = pending("probe", gpus=gpus, nodes=count)
    found = earliest_start(
        job, cycle.free, cycle.node_releases, cycle.first_release, ["H100"], NOW, None
    )
    assert found == _earliest_everywhere(cycle, job)


# -- the cycle leaves no garbage for the collector ----------------------------------------


@settings(max_examples=60, deadline=None)
@given(snapshots())
def test_plan_leaves_no_reference_cycles(snap: Snapshot) -> None:
    """``plan`` pauses the cyclic garbage collector while it runs; that is only free if
    everything it allocates is freed by reference counting (no cycles left behind)."""
    was = gc.isenabled()
    gc.disable()
    try:
        gc.collect(0)  # what is young now is not the plan's
        result = plan(snap, NOW)
        assert gc.collect(0) == 0  # the plan's objects are all young
    finally:
        if was:
            gc.enable()
    assert gc.isenabled() == was, "plan must restore the collector's state"
    assert result == plan(snap, NOW)


def test_plan_leaves_the_collector_as_it_found_it() -> None:
    snap = snapshot(nodes=[node("n1")], pending=[pending("j1")])
    was = gc.isenabled()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            plan(snap, NOW)
            assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


# -- FreeNodes and the FreeCapacity overlay: what rebuilding every cycle would give ------


class _Rebuilt:
    """The free capacity as a cycle used to build it from the nodes (the reference)."""

    def __init__(self, nodes: tuple[Node, ...], index: RunningIndex) -> None:
        self.by_id: dict[str, list[Any]] = {}  # node id -> [node, devices, cpus, memory]
        self.buckets: dict[str, list[dict[str, None]]] = {}
        self.free_gpus = 0
        for n in sorted(nodes, key=lambda n: n.name):
            if n.state is not NodeState.UP:
                continue
            held = index.nodes.get(n.id)
            devices = [d for d in range(n.gpu_count) if not held or d not in held.devices]
            used_cpus, used_memory = (held.cpus, held.memory_mb) if held else (0, 0)
            self.by_id[n.id] = [n, devices, n.cpus - used_cpus, n.memory_mb - used_memory]
            buckets = self.buckets.setdefault(n.gpu_type, [])
            buckets += [{} for _ in range(n.gpu_count + 1 - len(buckets))]
            buckets[len(devices)][n.id] = None
            self.free_gpus += len(devices)

    def candidates(self, gpu_type: str, at_least: int) -> list[str]:
        return [i for b in self.buckets.get(gpu_type, [])[at_least:] for i in b]

    def change(self, node_id: str, devices: list[int], cpus: int, memory: int) -> None:
        n, old, _, _ = entry = self.by_id[node_id]
        del self.buckets[n.gpu_type][len(old)][node_id]
        self.buckets[n.gpu_type][len(devices)][node_id] = None
        self.free_gpus += len(devices) - len(old)
        entry[1:] = [devices, entry[2] + cpus, entry[3] + memory]


def _same(free: FreeCapacity, ref: _Rebuilt) -> None:
    assert free.free_gpus == ref.free_gpus
    assert free.gpu_types == sorted(ref.buckets)
    assert [nf.node.id for nf in free.all_nodes()] == list(ref.by_id)
    for node_id, (_, devices, cpus, memory) in ref.by_id.items():
        nf = free.by_id[node_id]
        assert (nf.devices, nf.cpus, nf.memory_mb) == (devices, cpus, memory), node_id
    for gpu_type in ("A100", "H100"):
        for at_least in range(0, 9):
            expected = ref.candidates(gpu_type, at_least)
            assert [nf.node.id for nf in free.candidates(gpu_type, at_least)] == expected
            assert free.count_at_least(gpu_type, at_least) == len(expected)


@settings(max_examples=100, deadline=None)
@given(st.randoms(use_true_random=False))
def test_free_capacity_matches_a_rebuild(rng: random.Random) -> None:
    """Jobs start and end between cycles (the index keeps ``FreeNodes``); within a cycle
    devices are taken and given back (the overlay). At every step the view equals the
    capacity rebuilt from the nodes and changed the way the cycle used to change it: the
    same free devices, and the same candidate order (a changed node goes to the end of
    its new bucket). The index's own values never change during a cycle."""
    nodes = tuple(
        node(
            f"n{rng.randrange(100):02d}-{i}",
            rng.choice(["A100", "H100"]),
            gpus=rng.choice([2, 4, 8]),
            cpus=64,
            memory_mb=1 << 20,
            state=rng.choice([NodeState.UP] * 5 + [NodeState.DRAIN]),
        )
        for i in range(rng.randrange(1, 12))
    )
    index = RunningIndex()
    live: dict[str, RunningJob] = {}
    for cycle in range(4):
        # between cycles: jobs start on free devices and end
        for j in range(rng.randrange(6)):
            n = rng.choice(nodes)
            held = index.nodes.get(n.id)
            free_now = [d for d in range(n.gpu_count) if not held or d not in held.devices]
            devices = tuple(rng.sample(free_now, min(len(free_now), rng.randrange(4))))
            job = _job(f"c{cycle}j{j}", n.id, devices, gpu_type=n.gpu_type)
            index.add(job)
            live[job.id] = job
        for job_id in rng.sample(sorted(live), len(live) // 3):
            index.remove(job_id)
            del live[job_id]
        if rng.random() < 0.2:  # a node changes: the node list differs, FreeNodes is rebuilt
            i = rng.randrange(len(nodes))
            state = NodeState.DOWN if nodes[i].state is NodeState.UP else NodeState.UP
            nodes = (*nodes[:i], replace(nodes[i], state=state), *nodes[i + 1 :])
        base = index.free_nodes(nodes)
        before = {i: (list(nf.devices), nf.cpus, nf.memory_mb) for i, nf in base.by_id.items()}
        free = FreeCapacity(nodes, index)
        ref = _Rebuilt(nodes, index)
        _same(free, ref)
        taken: list[Allocation] = []
        for _ in range(rng.randrange(12)):
            if taken and rng.random() < 0.4:
                alloc = taken.pop(rng.randrange(len(taken)))
                free.release(alloc)
                _, devices, _, _ = ref.by_id[alloc.node_id]
                ref.change(
                    alloc.node_id,
                    sorted({*devices, *alloc.devices}),
                    alloc.cpus,
                    alloc.memory_mb,
                )
            elif ref.by_id:
                node_id = rng.choice(sorted(ref.by_id))
                _, devices, _, _ = ref.by_id[node_id]
                chosen = rng.sample(devices, rng.randrange(len(devices) + 1))
                taken.append(free.take(free.by_id[node_id], chosen, 1, 1024))
                rest = [d for d in devices if d not in chosen]
                ref.change(node_id, rest, -1, -1024)
            _same(free, ref)
        after = {i: (list(nf.devices), nf.cpus, nf.memory_mb) for i, nf in base.by_id.items()}
        assert after == before, "a cycle changed the index's free capacity"


def test_taking_a_busy_device_changes_nothing() -> None:
    nodes = (node("a", gpus=2), node("b", gpus=2))
    index = RunningIndex([_job("r", "a", (0,))])
    free = FreeCapacity(nodes, index)
    order = [nf.node.id for nf in free.candidates("H100", 0)]
    with pytest.raises(ValueError):
        free.take(free.by_id["a"], [0], 1, 1)
    assert [nf.node.id for nf in free.candidates("H100", 0)] == order == ["a", "b"]
    assert free.by_id["a"].devices == [1]
