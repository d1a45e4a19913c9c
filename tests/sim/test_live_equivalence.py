"""The simulator and the live control loop make the same decisions for the same arrivals.

A real center (SQLite store, local executor, two logical nodes of four H100s) runs eight
``sleep`` jobs submitted in one batch; then the simulator replays the same jobs (same
ids, shapes, priorities and time limits, and the run times the live jobs measured) on a
cluster spec with the same nodes. Both must start the jobs in the same order, on the same
nodes and devices, at the same times give or take the live loop's latency.

The scenario exercises EASY backfill (short-limit jobs pass a blocked gang), the gang
itself (two nodes at once, only when both have room) and best fit. Its run times are
chosen so that no two exits fall within 0.2 s of each other: the live loop coalesces
events that arrive during a cycle, and a tie would make the order a race.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from axcenter.control.convert import allocations_from_json, epoch
from axcenter.model.access import Principal, Role
from axcenter.model.ids import new_id
from axcenter.model.jobs import JobState
from axcenter.service.center import Center, scheduler_config
from axcenter.service.jobs import submit
from axcenter.service.schemas import JobIn
from axcenter.settings import Settings
from axcenter.sim.cluster import ClusterSpec, NodeGroup
from axcenter.sim.engine import SimOptions, simulate
from axcenter.sim.limits import LimitRule
from axcenter.sim.workload import TraceJob, Workload
from axcenter.store import orm
from axcenter.store.accounts import create_organization, create_user

#: (name, GPUs per node, nodes, sleep seconds, time limit); listed in priority order
SCENARIO = [
    ("j1", 2, 1, 1.2, 10),
    ("j2", 1, 1, 0.5, 4),
    ("gang", 2, 2, 0.8, 10),
    ("j4", 2, 1, 2.2, 3),
    ("j5", 2, 1, 0.9, 30),
    ("j6", 1, 1, 0.3, 30),
    ("j7", 4, 1, 1.0, 10),
    ("j8", 1, 1, 0.2, 2),
]
TOLERANCE_S = 0.5

Placed = tuple[tuple[str, tuple[int, ...]], ...]


def _sim_name(live_name: str) -> str:
    """Logical node ``local-K`` is the spec's ``local-0000K`` (group ``local``)."""
    return f"local-{int(live_name.removeprefix('local-')):05d}"


async def _wait_all(center: Center, job_ids: list[str], timeout: float) -> None:
    def ended(job_id: str) -> bool:
        with center.store.read() as s:
            row = s.get(orm.Job, job_id)
            return row is not None and JobState(row.state).terminal

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for job_id in job_ids:

        async def is_done(job_id: str = job_id) -> bool:
            return ended(job_id)

        await center.watch.wait(job_id, max(0.0, deadline - loop.time()), is_done)


def test_simulator_decides_as_the_live_loop(tmp_path: Path) -> None:
    settings = Settings(
        stop_jobs_on_shutdown=True,  # a test leaves no job behind
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{tmp_path / 'axcenter.db'}",
        local_gpus="H100:4x2",
        kill_grace_s=1.0,
        sched_min_runtime_s=0.0,
    )
    center = Center(settings)
    center.start()
    try:
        with center.store.write() as s:
            org = create_organization(s, "Acme")
            project = orm.Project(
                id=new_id("prj"), name="vision", organization_id=org.id, sector="manufacturing"
            )
            s.add(project)
            s.flush()
            user = create_user(s, "alice", org.id, Role.MEMBER)
            s.add(orm.ProjectMember(project_id=project.id, user_id=user.id))
            who = Principal(user.id, "alice", org.id, Role.MEMBER)
            project_id = project.id
        requests = [
            JobIn(
                project="vision",
                name=name,
                command=["sleep", str(seconds)],
                gpus_per_node=gpus,
                nodes=nodes,
                time_limit_s=limit,
                priority=len(SCENARIO) - rank,  # fixes the queue order
            )
            for rank, (name, gpus, nodes, seconds, limit) in enumerate(SCENARIO)
        ]
        ids = [r.job.id for r in submit(center, who, requests)]
        asyncio.run(_wait_all(center, ids, timeout=20.0))
        with center.store.read() as s:
            names = {n.id: n.name for n in s.scalars(select(orm.Node))}
            rows = {r.id: r for r in s.scalars(select(orm.Job).where(orm.Job.id.in_(ids)))}
            # jobs admitted in one cycle are launched side by side, so their start times
            # race; the order of their admitted events (one transaction) does not
            admitted = {
                job_id: event_id
                for event_id, job_id in s.execute(
                    select(orm.JobEvent.id, orm.JobEvent.job_id).where(
                        orm.JobEvent.job_id.in_(ids), orm.JobEvent.to_state == "admitted"
                    )
                )
            }
            s.expunge_all()
    finally:
        center.stop()

    assert {r.state for r in rows.values()} == {"succeeded"}, {
        r.name: r.state for r in rows.values()
    }
    assert all(r.attempts == 1 for r in rows.values())
    t0 = min(epoch(r.submitted_at) for r in rows.values())
    live: list[tuple[float, str, Placed]] = []
    trace: list[TraceJob] = []
    for job_id in ids:
        row = rows[job_id]
        assert row.started_at is not None and row.ended_at is not None
        start, end = epoch(row.started_at), epoch(row.ended_at)
        placed = tuple(
            (_sim_name(names[a.node_id]), a.devices)
            for a in allocations_from_json(row.placement or [])
        )
        live.append((start - t0, job_id, placed))
        trace.append(
            TraceJob(
                id=job_id,
                submit=epoch(row.submitted_at) - t0,
                duration=end - start,  # what the live job measured
                gpus_per_node=row.gpus_per_node,
                nodes=row.nodes,
                user=row.user_id,
                tenant=project_id,
                time_limit=row.time_limit_s,
                priority=row.priority,
                cpus_per_node=row.cpus_per_node,
                memory_mb_per_node=row.memory_mb_per_node,
            )
        )
    spec = ClusterSpec(
        node_groups=[
            NodeGroup(
                name="local",
                gpu_type="H100",
                gpus_per_node=4,
                count=2,
                cpus=4 * 8,  # logical nodes get 8 CPUs and 64 GiB per GPU (service.center)
                memory_mb=4 * 64 * 1024,
            )
        ]
    )
    options = SimOptions(
        interval_s=0.0,
        grace_s=settings.kill_grace_s,
        config=scheduler_config(settings),
        record_starts=True,
        limits=LimitRule("trace"),  # the limits the live jobs had
    )
    result = simulate(Workload("live", trace), spec, "axcenter", options)
    simulated = [(t, job_id, where) for t, job_id, _, where in result.starts]

    live.sort(key=lambda x: admitted[x[1]])
    label = {job_id: name for job_id, (name, *_) in zip(ids, SCENARIO, strict=True)}
    assert [label[j] for _, j, _ in simulated] == [label[j] for _, j, _ in live]
    assert [(label[j], p) for _, j, p in simulated] == [(label[j], p) for _, j, p in live]
    for (sim_t, job_id, _), (live_t, _, _) in zip(simulated, live, strict=True):
        assert abs(sim_t - live_t) < TOLERANCE_S, (label[job_id], sim_t, live_t)
    # the scenario did exercise backfill and the gang: some started later than others
    starts = {label[j]: t for t, j, _ in simulated}
    assert starts["j8"] < 0.1 < starts["gang"] < starts["j6"]
