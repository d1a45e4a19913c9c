"""Cluster history (utilization, queue length, waits from job events), the pending queue
in scheduling order, and a job's charges."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from axcenter.api.app import create_app
from axcenter.model.access import Principal, Role
from axcenter.service.center import Center
from axcenter.service.history import Interval, cluster_history, intervals, percentile
from axcenter.store import orm
from tests.accounting import allocation, charge, job, program
from tests.api.conftest import Tenants

OPERATOR = Principal(user_id="usr_x", name="op", role=Role.OPERATOR, organization_id="org_x")


@pytest.mark.parametrize(
    ("events", "before", "expected"),
    [
        # entered and left inside the window
        ([("a", 10.0, None, "pending"), ("a", 30.0, "pending", "running")], [], [("a", 10, 30)]),
        # in the state when the window opened: the stay starts at the window's start
        ([("a", 30.0, "pending", "running")], [], [("a", 0, 30)]),
        # still in it when the window closes
        ([("a", 40.0, None, "pending")], [], [("a", 40, 100)]),
        # no event in the window: the whole window
        ([], ["a"], [("a", 0, 100)]),
        # two stays (requeued after preemption)
        (
            [
                ("a", 10.0, None, "pending"),
                ("a", 20.0, "pending", "running"),
                ("a", 50.0, "running", "pending"),
                ("a", 70.0, "pending", "running"),
            ],
            [],
            [("a", 10, 20), ("a", 50, 70)],
        ),
        # other states do not count
        ([("a", 10.0, "admitted", "running")], [], []),
    ],
)
def test_intervals(
    events: list[tuple[str, float, str | None, str]],
    before: list[str],
    expected: list[tuple[str, int, int]],
) -> None:
    got = sorted(intervals(events, before, "pending", 0.0, 100.0), key=lambda i: i.start)
    assert got == [Interval(j, float(a), float(b)) for j, a, b in expected]


def test_percentile_is_nearest_rank() -> None:
    assert percentile([5.0], 50) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 90) == 4.0
    assert percentile(list(map(float, range(1, 11))), 90) == 9.0


def _event(s: orm.Session, job_id: str, at: datetime, before: str | None, after: str) -> None:
    s.add(orm.JobEvent(job_id=job_id, at=at, from_state=before, to_state=after, reason=""))


def test_history_from_hand_checked_events(center: Center, tenants: Tenants) -> None:
    """Two one-hour buckets: every figure below is worked out by hand."""
    until = datetime(2026, 1, 1, 12, tzinfo=UTC)
    t0 = until - timedelta(hours=2)
    with center.store.write() as s:
        prj = s.query(orm.Project).filter_by(name="acme-vision").one()
        user = s.query(orm.User).filter_by(name="alice").one()
        # A: 2 x H100, queued 10 min before the window, runs t0+30m .. t0+90m
        a_start, a_end = t0 + timedelta(minutes=30), t0 + timedelta(minutes=90)
        a = job(s, prj, user, t0 - timedelta(minutes=10), a_start, a_end, gpus=2)
        _event(s, a.id, t0 - timedelta(minutes=10), None, "pending")
        _event(s, a.id, t0 + timedelta(minutes=30), "pending", "admitted")
        _event(s, a.id, t0 + timedelta(minutes=30), "admitted", "running")
        _event(s, a.id, t0 + timedelta(minutes=90), "running", "succeeded")
        # B: 1 x A100 running since before the window, no event inside it
        b_at = t0 - timedelta(hours=3)
        b = job(s, prj, user, b_at, b_at, gpu_type="A100", state="running")
        _event(s, b.id, t0 - timedelta(hours=3), None, "pending")
        # C: pending all along; D: submitted at t0+60m, starts at once (zero wait)
        job(s, prj, user, t0 - timedelta(hours=1), state="pending")
        d_at = t0 + timedelta(minutes=60)
        d = job(s, prj, user, d_at, d_at, d_at + timedelta(minutes=15))
        _event(s, d.id, t0 + timedelta(minutes=60), None, "pending")
        _event(s, d.id, t0 + timedelta(minutes=60), "pending", "running")
        _event(s, d.id, t0 + timedelta(minutes=75), "running", "succeeded")
    out = cluster_history(center, OPERATOR, hours=2, buckets=2, until=until)
    assert out.capacity == {"A100": 2, "H100": 4}
    first, second = out.points
    assert first.at == t0 and second.at == t0 + timedelta(hours=1)
    assert first.gpus_used == {"A100": 1.0, "H100": 1.0}  # A: 2 GPUs x 30 of 60 min
    assert second.gpus_used == {"A100": 1.0, "H100": 1.25}  # A 1.0 + D 15 of 60 min
    assert first.utilization == {"A100": 0.5, "H100": 0.25}
    assert first.pending_jobs == 1.5  # C all along, A for half the bucket
    assert second.pending_jobs == 1.0
    assert (first.starts, first.wait_p50_s, first.wait_p90_s) == (1, 2400.0, 2400.0)
    assert (second.starts, second.wait_p50_s) == (1, 0.0)


def test_history_starts_when_the_center_does(center: Center, tenants: Tenants) -> None:
    """No zeros before the first event; its bucket is averaged over the time after it."""
    until = datetime(2026, 1, 1, 12, tzinfo=UTC)
    born = until - timedelta(minutes=30)
    with center.store.write() as s:
        prj = s.query(orm.Project).filter_by(name="acme-vision").one()
        user = s.query(orm.User).filter_by(name="alice").one()
        a = job(s, prj, user, born, born, gpus=2, state="running")
        _event(s, a.id, born, None, "pending")
        _event(s, a.id, born, "pending", "running")
    out = cluster_history(center, OPERATOR, hours=2, buckets=2, until=until)
    [only] = out.points  # the first hour had no center yet
    assert only.at == until - timedelta(hours=1)
    assert only.gpus_used["H100"] == 2.0  # busy all the 30 minutes there were, not 1.0
    assert only.utilization["H100"] == 0.5
    empty = cluster_history(center, OPERATOR, hours=1, buckets=2, until=born)
    assert empty.points == []  # before anything happened


def test_history_refuses_bad_windows(center: Center, tenants: Tenants) -> None:
    client = TestClient(create_app(center))
    for query, field in (("hours=0", "hours"), ("buckets=100000", "buckets")):
        r = client.get(f"/api/v1/cluster/history?{query}", headers=tenants.alice.headers)
        assert r.status_code == 422 and field in r.json()["detail"]


def _until_state(client: TestClient, headers: dict[str, str], job_id: str, state: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()["state"] == state:
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {state}")


def test_queue_follows_scheduling_order_and_scope(center: Center, tenants: Tenants) -> None:
    client = TestClient(create_app(center))
    h = tenants.alice.headers
    base = {"project": "acme-vision", "gpu_types": ["A100"], "gpus_per_node": 2}
    hog = client.post("/api/v1/jobs", json={**base, "command": ["sleep", "60"]}, headers=h)
    _until_state(client, h, hog.json()["id"], "running")
    low = client.post("/api/v1/jobs", json={**base, "command": ["true"], "priority": 1}, headers=h)
    high = client.post("/api/v1/jobs", json={**base, "command": ["true"], "priority": 9}, headers=h)
    try:
        got = client.get("/api/v1/queue", headers=h).json()
        assert got["total"] == 2
        assert [i["id"] for i in got["items"]] == [high.json()["id"], low.json()["id"]]
        assert [i["position"] for i in got["items"]] == [1, 2]
        assert all(i["reason"] for i in got["items"])
        second = client.get("/api/v1/queue?offset=1&limit=1", headers=h).json()
        assert [i["id"] for i in second["items"]] == [low.json()["id"]]
        # another tenant sees neither the jobs nor their number
        other = client.get("/api/v1/queue", headers=tenants.bob.headers).json()
        assert other["items"] == [] and other["total"] == 0
        assert other["queue_length"] == 2  # their number only, as the cluster page shows it
    finally:
        for r in (high, low, hog):
            client.post(f"/api/v1/jobs/{r.json()['id']}/cancel", headers=h)


def test_queue_positions_count_the_whole_queue(center: Center, tenants: Tenants) -> None:
    """A member reads her jobs' places in the whole queue (not among her own), the same
    numbers the operator sees, and her job's page says the same."""
    client = TestClient(create_app(center))
    a, b = tenants.alice.headers, tenants.bob.headers
    hog = client.post(
        "/api/v1/jobs",
        json={
            "project": "acme-vision",
            "gpu_types": ["A100"],
            "gpus_per_node": 2,
            "command": ["sleep", "60"],
        },
        headers=a,
    )
    _until_state(client, a, hog.json()["id"], "running")
    made = []
    for headers, project in (
        (b, "bolt-llm"),
        (a, "acme-vision"),
        (b, "bolt-llm"),
        (a, "acme-vision"),
    ):
        r = client.post(
            "/api/v1/jobs",
            json={
                "project": project,
                "gpu_types": ["A100"],
                "gpus_per_node": 2,
                "command": ["true"],
            },
            headers=headers,
        )
        made.append((headers, r.json()["id"]))
    try:
        whole = client.get("/api/v1/queue", headers=tenants.operator.headers).json()
        assert whole["queue_length"] == whole["total"] == 4
        truth = {i["id"]: i["position"] for i in whole["items"]}
        assert sorted(truth.values()) == [1, 2, 3, 4]
        seen: dict[str, int] = {}
        for headers in (a, b):
            mine = client.get("/api/v1/queue", headers=headers).json()
            assert mine["total"] == 2 and mine["queue_length"] == 4
            seen |= {i["id"]: i["position"] for i in mine["items"]}
        assert seen == truth  # the same places as in the whole queue, for both tenants
        for headers, job_id in made:
            page = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
            assert (page["queue_position"], page["queue_length"]) == (truth[job_id], 4)
        running = client.get(f"/api/v1/jobs/{hog.json()['id']}", headers=a).json()
        assert running["queue_position"] is None
    finally:
        for headers, job_id in [(a, hog.json()["id"]), *made]:
            client.post(f"/api/v1/jobs/{job_id}/cancel", headers=headers)


def test_a_jobs_counted_place_equals_its_place_in_the_sorted_queue(
    center: Center, tenants: Tenants
) -> None:
    """``queue_position`` counts in SQL what ``queue`` sorts: the same place for every
    job, with ties in priority and submission time (jobs the scheduler has not reached)."""
    import random

    from axcenter.service.queue import _order, queue, queue_position

    rng = random.Random(7)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    with center.store.write() as s:
        projects = [
            s.query(orm.Project).filter_by(name=n).one() for n in ("acme-vision", "bolt-llm")
        ]
        user = s.query(orm.User).filter_by(name="alice").one()
        for _ in range(40):
            row = job(
                s,
                rng.choice(projects),
                user,
                t0 + timedelta(seconds=rng.choice([0, 1, 2])),
                state="pending",
            )
            row.priority = rng.choice([0, 1, 2])
    with center.store.read() as s:
        order = _order(center, s)
        assert len(order) == 40
        for place, job_id in enumerate(order, start=1):
            assert queue_position(center, s, job_id) == (place, 40), job_id
    listed = queue(center, OPERATOR, limit=500)
    assert [(i.position, i.id) for i in listed.items] == list(enumerate(order, start=1))
    second_page = queue(center, OPERATOR, offset=10, limit=5)
    assert [i.id for i in second_page.items] == order[10:15]


def test_charges_sum_a_jobs_ledger_rows(center: Center, tenants: Tenants) -> None:
    now = datetime.now(UTC)
    with center.store.write() as s:
        prj = s.query(orm.Project).filter_by(name="acme-vision").one()
        user = s.query(orm.User).filter_by(name="alice").one()
        prog = program(s, "Voucher", 10**9)
        alloc = allocation(
            s, prj, prog, now - timedelta(days=1), now + timedelta(days=1), {"H100": (10**6, 10**6)}
        )
        j = job(s, prj, user, now - timedelta(hours=1), now - timedelta(hours=1), now, alloc=alloc)
        charge(s, alloc, "H100", 3600, 3_000, now, job_id=j.id)
        charge(s, alloc, "H100", 1800, 1_500, now, job_id=j.id)
        job_id = j.id
    client = TestClient(create_app(center))
    mine = client.get(f"/api/v1/jobs/{job_id}/charges", headers=tenants.alice.headers)
    assert mine.status_code == 200
    body = mine.json()
    assert body["charged_won"] == 4_500 and body["held_won"] == 0
    assert [i["kind"] for i in body["items"]] == ["charge", "charge"]
    hidden = client.get(f"/api/v1/jobs/{job_id}/charges", headers=tenants.bob.headers)
    assert hidden.status_code == 404


def test_listing_several_states_is_newest_first_and_pages(center: Center, tenants: Tenants) -> None:
    now = datetime.now(UTC)
    with center.store.write() as s:
        prj = s.query(orm.Project).filter_by(name="acme-vision").one()
        user = s.query(orm.User).filter_by(name="alice").one()
        made = [
            job(s, prj, user, now - timedelta(minutes=10 - i), state=state).id
            for i, state in enumerate(
                ["succeeded", "failed", "cancelled", "succeeded", "timed_out"]
            )
        ]
        job(s, prj, user, now, state="pending")  # not in the view
    client = TestClient(create_app(center))
    query = "state=succeeded&state=failed&state=cancelled&state=timed_out&limit=2"
    seen, cursor = [], ""
    for _ in range(4):
        page = client.get(f"/api/v1/jobs?{query}{cursor}", headers=tenants.alice.headers).json()
        seen += [j["id"] for j in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == sorted(made, reverse=True)
