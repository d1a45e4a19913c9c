"""The control loop against the fake engine, for every ordering of events that matters:
a run is running, and charged, from the start the engine reports to the end it reports;
each end is recorded exactly once; a run that never started costs nothing; a restart
adopts what runs and records what ended meanwhile. Both stores."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from axcenter.api.app import create_app
from axcenter.executors.base import EventCallback, NodeInventory, run_id_of
from axcenter.executors.fake import FakeEngine
from axcenter.model.access import Role
from axcenter.service.center import Center
from axcenter.settings import Settings
from axcenter.store import orm
from axcenter.store.accounts import create_user, issue_token
from tests.accounting import allocation, organization, price, program, project

NODES = [
    NodeInventory("n-0", "H100", 4, 32, 256_000, logical=True),
    NodeInventory("n-1", "H100", 4, 32, 256_000, logical=True),
]
#: 3,600 won per GPU-hour: one won per GPU-second, so charges read as seconds
WON_PER_GPU_HOUR = 3600


@dataclass
class World:
    settings: Settings
    engine: FakeEngine
    token: str
    tokens: dict[str, str] = field(default_factory=dict)  # project -> its member's token
    center: Center | None = None
    client: TestClient | None = None

    def start(self) -> None:
        def factory(on_event: EventCallback) -> FakeEngine:
            self.engine.on_event = on_event  # the same engine, seen by a new service
            self.engine.closed_with = None
            return self.engine

        self.center = Center(self.settings, engine_factory=factory)
        self.center.start()
        self.client = TestClient(create_app(self.center))
        self.client.headers["Authorization"] = f"Bearer {self.token}"

    def stop(self) -> None:
        assert self.center is not None
        self.center.stop()
        self.center = self.client = None

    def api(self) -> TestClient:
        assert self.client is not None
        return self.client

    def submit(self, gpus: int = 1, time_limit_s: int = 600) -> str:
        body = {"project": "p", "command": ["train"], "gpus_per_node": gpus}
        r = self.api().post("/api/v1/jobs", json={**body, "time_limit_s": time_limit_s})
        assert r.status_code == 201, r.text
        job_id: str = r.json()["id"]
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.api().get(f"/api/v1/jobs/{job_id}").json()
        return found

    def charges(self, job_id: str) -> tuple[int, int]:
        c = self.api().get(f"/api/v1/jobs/{job_id}/charges").json()
        return c["charged_won"], c["held_won"]

    def events(self, job_id: str) -> list[str]:
        return [e["to_state"] for e in self.job(job_id)["events"]]

    def dispatched(self, job_id: str, attempt: int = 1) -> str:
        """Wait until the engine was handed the job's run; its run id."""
        run_id = run_id_of(job_id, attempt)
        until(lambda: run_id in self.engine.runs or None, f"{run_id} handed to the engine")
        return run_id

    def state(self, job_id: str, state: str) -> dict[str, Any]:
        return until(
            lambda: ((j := self.job(job_id))["state"] == state and j) or None,
            f"{job_id} {state}",
        )


def until(check: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def build_world(
    db: tuple[str, str | None],
    tmp_path: Path,
    engine: FakeEngine,
    *,
    quotas: Mapping[str, int] | None = None,
    **settings: Any,
) -> World:
    """A started center on ``engine``: project ``p`` of Acme with alice as its member and
    a grant paying for H100s; with ``quotas``, each project named there (of an
    organization of its own, with a member ``user-NAME``) with that guaranteed H100
    quota. Every member's token is in ``World.tokens``."""
    url, schema = db
    config = Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        database_schema=schema,
        kill_grace_s=1.0,
        sched_min_runtime_s=0.0,
        **settings,
    )
    center = Center(config, engine_factory=lambda on_event: engine)
    center.store.migrate()
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    tokens: dict[str, str] = {}
    with center.store.write() as s:
        prog = program(s, "AX", 10**12)
        price(s, "H100", WON_PER_GPU_HOUR, long_ago)
        for name in {"p": None, **(quotas or {})}:
            org = organization(s, "Acme" if name == "p" else f"org-{name}")
            prj = project(s, name, org, prog)
            allocation(
                s, prj, prog, long_ago, long_ago + timedelta(days=36500), {"H100": (10**9, 10**9)}
            )
            if quotas is not None and name in quotas:
                s.add(orm.ProjectQuota(project_id=prj.id, gpu_type="H100", nominal=quotas[name]))
            user = create_user(s, "alice" if name == "p" else f"user-{name}", org.id, Role.MEMBER)
            s.add(orm.ProjectMember(project_id=prj.id, user_id=user.id))
            tokens[name] = issue_token(s, user.id)
    center.store.dispose()
    w = World(config, engine, tokens["p"], tokens)
    w.start()
    return w


@pytest.fixture
def world(db: tuple[str, str | None], tmp_path: Path) -> Iterator[World]:
    w = build_world(db, tmp_path, FakeEngine(NODES, lambda event: None, auto_start=False))
    yield w
    if w.center is not None:
        w.stop()


def test_a_run_is_charged_from_the_start_the_engine_reports_to_its_end(world: World) -> None:
    job = world.submit()
    run = world.dispatched(job)
    assert world.job(job)["state"] == "admitted", "queued in the engine: not running yet"
    t0 = time.time()
    world.engine.start(run, at=t0)
    assert world.state(job, "running")["started_at"] == _iso(t0)
    assert world.charges(job)[0] == 0
    world.engine.end(run, 0, at=t0 + 100)
    done = world.state(job, "succeeded")
    assert (done["started_at"], done["ended_at"]) == (_iso(t0), _iso(t0 + 100))
    assert world.charges(job) == (100, 0)


def test_an_end_that_arrives_before_its_start_records_both(world: World) -> None:
    job = world.submit(gpus=2)
    run = world.dispatched(job)
    world.engine.hold_events = True
    t0 = time.time()
    world.engine.start(run, at=t0)
    world.engine.end(run, 3, at=t0 + 30)
    world.engine.release(order=[1, 0])  # the end first, then a late start
    failed = world.state(job, "failed")
    assert (failed["exit_code"], failed["started_at"]) == (3, _iso(t0))
    assert world.events(job) == ["pending", "admitted", "running", "failed"]
    assert world.charges(job) == (60, 0)


def test_a_duplicated_end_is_recorded_and_charged_once(world: World) -> None:
    job = world.submit()
    run = world.dispatched(job)
    t0 = time.time()
    world.engine.start(run, at=t0)
    world.engine.end(run, 0, at=t0 + 10)
    world.engine.duplicate_last()
    world.state(job, "succeeded")
    world.engine.duplicate_last()  # once more, after it was recorded
    second = world.submit()  # a cycle after the duplicates
    world.dispatched(second)
    assert world.events(job) == ["pending", "admitted", "running", "succeeded"]
    assert world.charges(job) == (10, 0)


def test_a_run_that_never_started_costs_nothing(world: World) -> None:
    world.engine.fail_next("partition gpu is down")
    refused = world.submit()
    failed = world.state(refused, "failed")
    assert failed["reason"] == "launch failed: partition gpu is down"
    assert failed["started_at"] is None
    assert world.charges(refused) == (0, 0)

    lost = world.submit()
    run = world.dispatched(lost)
    world.engine.lose(run, "lost: the engine dropped it before it started")
    again = world.dispatched(lost, attempt=2)  # requeued and handed over anew
    assert world.job(lost)["attempts"] == 2
    assert world.charges(lost) == (0, world.charges(lost)[1])  # nothing charged for run 1
    world.engine.start(again)
    world.state(lost, "running")


def test_a_cancel_that_loses_the_race_with_the_exit(world: World) -> None:
    world.engine.auto_stop = False
    job = world.submit()
    run = world.dispatched(job)
    world.engine.start(run)
    world.state(job, "running")
    assert world.api().post(f"/api/v1/jobs/{job}/cancel").status_code == 200
    until(lambda: world.engine.runs[run].stops, "the stop to reach the engine")
    world.engine.end(run, 0)  # it had just finished: the engine reports what happened
    assert world.state(job, "succeeded")["exit_code"] == 0

    cancelled = world.submit()
    run = world.dispatched(cancelled)
    world.engine.start(run)
    world.state(cancelled, "running")
    world.api().post(f"/api/v1/jobs/{cancelled}/cancel")
    until(lambda: world.engine.runs[run].stops, "the stop to reach the engine")
    world.engine.end(run, -15, cause="cancel")
    world.state(cancelled, "cancelled")


def test_a_cancel_while_the_engine_still_queues_the_run(world: World) -> None:
    job = world.submit()
    run = world.dispatched(job)
    world.api().post(f"/api/v1/jobs/{job}/cancel")
    done = world.state(job, "cancelled")  # the fake ends a stopped run at once
    assert done["started_at"] is None
    assert world.charges(job) == (0, 0)
    assert world.engine.runs[run].stops[0][0].value == "cancel"


def test_a_node_lost_while_running_requeues_its_run_elsewhere(world: World) -> None:
    job = world.submit(gpus=4)
    run = world.dispatched(job)
    world.engine.start(run)
    node = world.state(job, "running")["placement"][0]["node"]
    world.engine.set_nodes([n for n in NODES if n.name != node])
    world.engine.lose(run, "lost: node went down")
    again = world.dispatched(job, attempt=2)
    assert world.engine.runs[again].spec.node_devices[0][0] != node
    assert "preempted" in world.events(job)
    nodes = {n["name"]: n["state"] for n in world.api().get("/api/v1/cluster").json()["nodes"]}
    assert nodes[node] == "down"


def test_a_restart_adopts_what_runs_and_records_what_ended_meanwhile(world: World) -> None:
    running, ending = world.submit(), world.submit()
    t0 = time.time()
    for job in (running, ending):
        world.engine.start(world.dispatched(job), at=t0)
        world.state(job, "running")
    world.stop()  # detached: the engine keeps both runs
    assert world.engine.closed_with is False
    world.engine.end(run_id_of(ending, 1), 7, at=t0 + 40)  # nobody listens
    world.start()
    adopted, ended = world.job(running), world.job(ending)
    assert (adopted["state"], adopted["attempts"], adopted["started_at"]) == (
        "running",
        1,
        _iso(t0),
    )
    assert (ended["state"], ended["exit_code"], ended["ended_at"]) == ("failed", 7, _iso(t0 + 40))
    assert world.charges(ending) == (40, 0)
    assert world.engine.runs[run_id_of(ending, 1)].acknowledged
    world.engine.end(run_id_of(running, 1), 0, at=t0 + 50)
    world.state(running, "succeeded")
    assert world.charges(running) == (50, 0)


def test_an_admitted_job_the_engine_never_received_is_requeued_with_the_reason(
    world: World,
) -> None:
    queued = world.submit()
    world.dispatched(queued)  # queued in the engine: adopted as it is
    job = world.submit()
    run = world.dispatched(job)
    world.stop()
    del world.engine.runs[run]  # as if the service died before handing it over
    world.start()
    world.dispatched(job, attempt=2)
    events = world.job(job)["events"]
    assert any(e["reason"] == "requeued: run 1 never reached the engine" for e in events)
    assert (world.job(queued)["state"], world.job(queued)["attempts"]) == ("admitted", 1)


def test_the_engine_nodes_changed_event_updates_the_cluster(world: World) -> None:
    bigger = [*NODES, NodeInventory("n-2", "A100", 8, 32, 256_000, logical=True)]
    world.engine.set_nodes(bigger)  # emits NodesChanged
    until(
        lambda: "n-2" in {n["name"] for n in world.api().get("/api/v1/cluster").json()["nodes"]},
        "the new node",
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def test_a_cycle_that_fails_while_recording_an_end_loses_no_end(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write of an end fails (the database went away for a moment): the engine keeps
    the end until it is acknowledged, and the rebuilt state records it once."""
    from sqlalchemy.exc import OperationalError

    from axcenter.control import loop

    job = world.submit()
    run = world.dispatched(job)
    t0 = time.time()
    world.engine.start(run, at=t0)
    world.state(job, "running")
    real = loop.record_runs
    failures = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(1)
            raise OperationalError("UPDATE jobs", {}, Exception("server closed the connection"))
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "record_runs", failing)
    world.engine.end(run, 4, at=t0 + 20)
    done = world.state(job, "failed")
    assert failures == [1]
    assert (done["exit_code"], done["ended_at"]) == (4, _iso(t0 + 20))
    assert world.charges(job) == (20, 0)
    assert world.events(job) == ["pending", "admitted", "running", "failed"]


def test_a_failed_launch_after_a_requeue_costs_nothing_more(world: World) -> None:
    job = world.submit()
    run = world.dispatched(job)
    t0 = time.time()
    world.engine.start(run, at=t0)
    world.state(job, "running")
    world.engine.fail_next("node n-0: no such directory")
    world.engine.lose(run)  # lost after 0 s... at the engine's clock: now
    failed = world.state(job, "failed")
    assert failed["attempts"] == 2 and failed["started_at"] is None
    charged, held = world.charges(job)
    ran = world.engine.runs[run].ended.ended_at - t0  # type: ignore[union-attr]
    assert (charged, held) == (int(ran + 0.5), 0), "run 1 only, from its own start"


def test_the_loop_heals_after_failing_rebuilds_and_keeps_a_cancel_it_took(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cycle fails while the store is away, and so do the first rebuilds: the loop
    retries until the store answers, and the cancel the failed cycle took still lands."""
    from sqlalchemy.exc import OperationalError

    from axcenter.control import loop

    job = world.submit()
    run = world.dispatched(job)
    world.engine.start(run)
    world.state(job, "running")
    outage = {"cycles": 1, "rebuilds": 2}
    real_stop, real_reconcile = loop.ControlLoop._stop, loop.reconcile

    def down(what: str) -> None:
        if outage[what]:
            outage[what] -= 1
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    def stop(self: Any, *args: Any) -> Any:
        down("cycles")  # the cycle fails as it takes the cancel, before it reaches the engine
        return real_stop(self, *args)

    def reconcile(*args: Any) -> Any:
        down("rebuilds")
        return real_reconcile(*args)

    monkeypatch.setattr(loop.ControlLoop, "_stop", stop)
    monkeypatch.setattr(loop, "reconcile", reconcile)
    monkeypatch.setattr(loop, "HEAL_FIRST_S", 0.01)
    world.api().post(f"/api/v1/jobs/{job}/cancel")
    world.state(job, "cancelled")
    assert outage == {"cycles": 0, "rebuilds": 0}
    assert world.engine.runs[run].stops[0][0].value == "cancel"
    other = world.submit()  # the loop cycles on
    world.dispatched(other)


def test_a_long_run_is_charged_as_it_runs_and_settled_exactly(world: World) -> None:
    """The center's accrual thread charges a run that started 3 h 20 m ago for its whole
    hours (one won per GPU-second here), its hold shrinking as much; the end settles the
    rest, and a restart in between posts nothing twice."""
    job = world.submit(gpus=2, time_limit_s=6 * 3600)
    run = world.dispatched(job)
    t0 = time.time() - 3 * 3600 - 20 * 60
    world.engine.start(run, at=t0)
    world.state(job, "running")
    assert world.center is not None
    _, held = world.charges(job)
    now = time.time()
    posted = world.center.accruer.run_once()
    # the whole hours that ended since the start, at least a minute (the lag) ago
    hours = int((now - 60) // 3600) - int(t0 // 3600)
    assert posted == hours and hours in (3, 4)
    charged, still_held = world.charges(job)
    through = (int(t0 // 3600) + hours) * 3600
    accrued = 2 * round(through - t0)
    assert charged == accrued and still_held == held - accrued
    world.stop()
    world.start()  # a restarted controller: the watermark is in the ledger
    assert world.center.accruer.run_once() == 0
    world.engine.end(run, 0, at=t0 + 3 * 3600 + 20 * 60 + 0.4)
    world.state(job, "succeeded")
    items = world.api().get(f"/api/v1/jobs/{job}/charges").json()["items"]
    kinds = [i["kind"] for i in items]
    assert kinds == ["hold", *["accrual"] * hours, "release", "charge"]
    assert world.charges(job) == (2 * (3 * 3600 + 20 * 60), 0)


def test_a_runs_gpu_use_is_stored_once_and_shown(world: World) -> None:
    from axcenter.executors.base import GpuUsage
    from axcenter.service.monitoring import grant_use

    job = world.submit()
    run = world.dispatched(job)
    world.engine.gpu_usage[job] = GpuUsage(
        samples=120,
        util_mean_pct=1,
        util_max_pct=4,
        memory_max_mib=700,
        idle_samples=120,
        sample_s=10,
    )
    world.engine.start(run)
    world.engine.end(run, 0)
    world.engine.duplicate_last()
    world.state(job, "succeeded")
    [usage] = world.job(job)["gpu_usage"]
    assert (usage["attempt"], usage["util_mean_pct"], usage["idle_bp"]) == (1, 1, 10_000)
    assert world.center is not None
    with world.center.store.read() as s:
        alloc = s.scalars(select(orm.Allocation)).one()
        use = grant_use(s, alloc, datetime.now(UTC))
    assert "gpus_idle" in use.flags
    assert (use.sampled_runs, use.gpu_util_mean_pct, use.gpu_idle_bp) == (1, 1, 10_000)
    assert use.idle_jobs == [job] and use.idle_gpu_hours == round(1200 / 3600, 3)


def test_succeeded_runs_teach_estimates_live_and_after_a_restart(world: World) -> None:
    """Three 100-second successes of 600-second jobs: the user's next such job is
    expected to run 2 minutes (p90, rounded up to the minute), for ordering and backfill;
    a restart rebuilds the same history from the store. Failures teach nothing."""
    t0 = time.time()
    for _ in range(3):
        job = world.submit()
        run = world.dispatched(job)
        world.engine.start(run, at=t0)
        world.engine.end(run, 0, at=t0 + 100)
        world.state(job, "succeeded")
    failed = world.submit()
    run = world.dispatched(failed)
    world.engine.start(run, at=t0)
    world.engine.end(run, 1, at=t0 + 590)
    world.state(failed, "failed")
    assert world.center is not None
    state = world.center.control.state
    for _ in range(2):  # two 4-GPU runs hold the two nodes
        world.dispatched(world.submit(gpus=4))
    wide = world.submit(gpus=4)  # it waits; no 4-GPU run yet: like runs of any size
    until(lambda: wide in state.specs or None, "the waiting job in the cache")
    assert state.specs[wide].estimate_s == 120  # like kind (user, project, limit)
    assert state.specs[wide].expected_s == 120
    assert state.specs[wide].time_limit_s == 600  # what ends its run is untouched
    assert state.usage.weights == {"H100": 1.0}  # the price book's one type
    world.stop()
    world.start()
    assert world.center is not None
    again = world.center.control.state
    until(lambda: wide in again.specs or None, "the waiting job back in the cache")
    assert again.specs[wide].estimate_s == 120
