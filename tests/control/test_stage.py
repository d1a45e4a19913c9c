"""Staged runs (``control/stage.py``) against the fake engine taking them as Slurm does:
a waiting job is handed over behind a job about to end and starts when that one ends;
it holds no device the index or the store gives to another; it is withdrawn when the job
it follows overruns, cancelled as any job, and withdrawn or adopted across a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from axcenter.executors.base import NodeInventory, StopReason, run_id_of
from axcenter.executors.fake import FakeEngine
from axcenter.store import orm
from tests.control.test_engine_events import NODES, World, build_world, until

#: all 8 GPUs busy with 8 one-GPU jobs
GPUS = sum(n.gpu_count for n in NODES)


def make_world(
    db: tuple[str, str | None], tmp_path: Path, nodes: list[NodeInventory] = NODES, **settings: Any
) -> World:
    """A center on a fake engine that takes staged runs, with frequent full cycles (those
    that stage)."""
    engine = FakeEngine(nodes, lambda event: None, staging=True)
    return build_world(db, tmp_path, engine, safety_cycle_s=0.2, **settings)


@pytest.fixture
def world(db: tuple[str, str | None], tmp_path: Path) -> Iterator[World]:
    w = make_world(db, tmp_path, stage_ahead_s=120.0)
    yield w
    if w.center is not None:
        w.stop()


def leases(world: World) -> dict[tuple[str, int], str]:
    assert world.center is not None
    with world.center.store.read() as s:
        rows = s.execute(
            select(orm.DeviceLease.node_id, orm.DeviceLease.device_index, orm.DeviceLease.job_id)
        ).all()
    return {(node, device): job for node, device, job in rows}


def fill(world: World, limit_s: int = 60) -> list[str]:
    """Every GPU busy with a one-GPU job that has started."""
    jobs = [world.submit(time_limit_s=limit_s) for _ in range(GPUS)]
    for job in jobs:
        world.state(job, "running")
    return jobs


def staged_run(world: World, job_id: str) -> str:
    """The job's run once it is handed over staged (behind another run)."""
    run_id = world.dispatched(job_id)
    assert world.engine.runs[run_id].spec.after, "handed over without a run to follow"
    return run_id


def test_a_waiting_job_is_staged_behind_a_job_about_to_end_and_starts_when_it_ends(
    world: World,
) -> None:
    busy = fill(world)
    waiting = world.submit(time_limit_s=60)
    run_id = staged_run(world, waiting)
    fake = world.engine.runs[run_id]
    (before,) = fake.spec.after
    assert fake.started_at is None
    job = world.state(waiting, "admitted")
    assert "to start when" in job["events"][-1]["reason"]
    # staged, it holds no lease: the devices are still the running job's
    held = leases(world)
    assert waiting not in held.values()
    assert set(held.values()) == set(busy)
    devices = {k for k, v in held.items() if v == before.rpartition(".")[0]}
    assert world.charges(waiting)[1] > 0  # its hold is taken with the admission

    world.engine.end(before)  # the engine starts the staged run at once
    world.state(waiting, "running")
    assert fake.started_at is not None
    pred = world.engine.runs[before]
    assert pred.ended is not None and fake.started_at >= pred.ended.ended_at
    # it holds exactly the devices the ended job held
    held = until(lambda: waiting in (h := leases(world)).values() and h, "its leases")
    assert {k for k, v in held.items() if v == waiting} == devices
    world.engine.end(run_id)
    world.state(waiting, "succeeded")
    charged, held_won = world.charges(waiting)
    assert held_won == 0 and charged >= 0


def test_a_staged_job_is_withdrawn_when_the_job_it_follows_overruns(
    db: tuple[str, str | None], tmp_path: Path
) -> None:
    """The running jobs ask for 2 s and run on (the fake engine enforces no limit): 1 s
    past that, the staged job is stopped before it starts and waits again, uncharged."""
    world = make_world(db, tmp_path, stage_ahead_s=1.0)
    try:
        busy = fill(world, limit_s=2)
        waiting = world.submit(time_limit_s=60)
        run_id = staged_run(world, waiting)
        world.state(waiting, "pending")
        fake = world.engine.runs[run_id]
        assert fake.started_at is None and fake.stops[0][0] is StopReason.PREEMPT
        # once every running job has overrun, it is staged behind none and waits
        last = max(world.engine.runs[run_id_of(job, 1)].started_at or 0.0 for job in busy)
        until(lambda: time.time() > last + 2 + 1, "every running job overran", timeout=30)
        job = until(
            lambda: (
                (j := world.job(waiting))["state"] == "pending"
                and world.charges(waiting) == (0, 0)
                and j
            ),
            "waiting, uncharged",
        )
        assert "withdrawn" in job["events"][-1]["reason"]
        assert all(
            world.engine.runs[r].started_at is None
            for r in world.engine.runs
            if r.startswith(waiting)
        )
    finally:
        world.stop()


def test_cancelling_a_staged_job_stops_its_run_before_it_starts(world: World) -> None:
    fill(world)
    waiting = world.submit(time_limit_s=60)
    run_id = staged_run(world, waiting)
    (before,) = world.engine.runs[run_id].spec.after
    r = world.api().post(f"/api/v1/jobs/{waiting}/cancel")
    assert r.status_code in (200, 202), r.text
    world.state(waiting, "cancelled")
    assert world.charges(waiting) == (0, 0)
    world.engine.end(before)
    # the freed device is free for the next job, not held by the cancelled one
    nxt = world.submit(time_limit_s=60)
    world.state(nxt, "running")
    assert world.engine.runs[run_id].started_at is None


def test_a_restart_withdraws_a_staged_run_that_has_not_started(world: World) -> None:
    fill(world)
    waiting = world.submit(time_limit_s=60)
    run_id = staged_run(world, waiting)
    (before,) = world.engine.runs[run_id].spec.after
    world.stop()
    world.start()
    job = world.state(waiting, "pending")
    assert "withdrawn at a restart" in job["events"][-1]["reason"]
    fake = world.engine.runs[run_id]
    assert fake.started_at is None and fake.stops[0][0] is StopReason.PREEMPT
    world.engine.end(before)  # its devices free: it runs again, as its next attempt
    second = run_id_of(waiting, 2)
    until(lambda: second in world.engine.runs or None, "the next attempt")
    world.state(waiting, "running")


def test_a_staged_run_that_started_while_the_service_was_away_is_adopted(world: World) -> None:
    busy = fill(world)
    waiting = world.submit(time_limit_s=60)
    run_id = staged_run(world, waiting)
    (before,) = world.engine.runs[run_id].spec.after
    world.stop()
    world.engine.end(before)  # while nobody listens: the engine starts the staged run
    assert world.engine.runs[run_id].started_at is not None
    world.start()
    world.state(waiting, "running")
    held = leases(world)
    assert waiting in held.values()
    assert len(held) == GPUS  # the ended job's device is the staged job's, and no more
    assert set(held.values()) == (set(busy) - {before.rpartition(".")[0]}) | {waiting}


def test_a_reclaim_withdraws_the_job_staged_behind_its_victim(
    db: tuple[str, str | None], tmp_path: Path
) -> None:
    """One GPU: project p borrows it (no quota) and has a job staged behind; project q,
    whose quota the GPU is, submits. The reclaim preempts p's running job and withdraws
    the staged one, so the device goes to q's job, not to p's follower."""
    node = NodeInventory("n-0", "H100", 1, 32, 256_000, logical=True)
    world = make_world(db, tmp_path, [node], stage_ahead_s=120.0, quotas={"p": 0, "q": 1})
    tokens = world.tokens
    try:
        running = world.submit(time_limit_s=60)
        world.state(running, "running")
        follower = world.submit(time_limit_s=60)
        run_id = staged_run(world, follower)
        assert world.engine.runs[run_id].spec.after == (run_id_of(running, 1),)
        body = {"project": "q", "command": ["train"], "gpus_per_node": 1, "time_limit_s": 60}
        r = world.api().post(
            "/api/v1/jobs", json=body, headers={"Authorization": f"Bearer {tokens['q']}"}
        )
        assert r.status_code == 201, r.text
        owner = r.json()["id"]
        world.state(running, "pending")  # preempted, requeued
        job = world.state(follower, "pending")  # withdrawn before it started
        assert "withdrawn: the job it was to follow is preempted" in job["events"][-1]["reason"]
        assert world.engine.runs[run_id].started_at is None
        until(
            lambda: (j := world.api().get(
                f"/api/v1/jobs/{owner}", headers={"Authorization": f"Bearer {tokens['q']}"}
            ).json())["state"] == "running" and j,
            "q's job running on the reclaimed GPU",
        )  # fmt: skip
        assert set(leases(world).values()) == {owner}
    finally:
        world.stop()
