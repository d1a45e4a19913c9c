"""Scheduling policy through the real API: quotas, cohorts, limits, reservations.

The center has ``local-0`` (A100 x2) and ``local-1`` (H100 x4). Policy changes reach the
live scheduler through ``policy_changed``; the tests check that through job outcomes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from axcenter.service.center import Center
from axcenter.store import orm
from tests.api.conftest import Account, Tenants
from tests.api.test_jobs import submit, wait

API = "/api/v1"


def until(
    client: TestClient,
    who: Account,
    job_id: str,
    done: Callable[[dict[str, Any]], bool],
    tries: int = 400,
) -> dict[str, Any]:
    """The job once ``done`` holds, polling with short long-polls (no sleeps)."""
    job = wait(client, who, job_id, timeout=0)
    for _ in range(tries):
        if done(job):
            return job
        job = wait(client, who, job_id, timeout=0.05)
    raise AssertionError(f"job {job_id} never reached the expected state: {job}")


def running(job: dict[str, Any]) -> bool:
    return job["state"] == "running"


def left_pending_or_waits_on(reason: str) -> Callable[[dict[str, Any]], bool]:
    """Until the scheduler has examined the job: before, a pending job shows "priority"
    (or "resources" when a quick cycle was skipped), which says nothing yet."""
    return lambda job: job["state"] != "pending" or job["reason"] == reason


def future(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).isoformat()


def put_quota(client: TestClient, who: Account, project: str, gpu_type: str, **body: Any) -> Any:
    return client.put(f"{API}/quotas/{project}/{gpu_type}", json=body, headers=who.headers)


def reserve(client: TestClient, who: Account, **body: Any) -> Any:
    body.setdefault("ends_at", future(1))
    return client.post(f"{API}/reservations", json=body, headers=who.headers)


def policy_rows(center: Center) -> dict[str, Any]:
    """Everything policy endpoints write, to show that a refusal wrote nothing."""
    with center.store.read() as s:
        counts = {
            table.__tablename__: s.scalar(select(func.count()).select_from(table))
            for table in (orm.ProjectQuota, orm.Cohort, orm.Reservation)
        }
        projects = {
            p.name: (p.cohort_id, p.fair_share_weight, p.max_running_jobs, p.max_gpus)
            for p in s.scalars(select(orm.Project))
        }
    return {"counts": counts, "projects": projects}


def cancel_all(client: TestClient, who: Account, *jobs: dict[str, Any]) -> None:
    for job in jobs:
        client.post(f"{API}/jobs/{job['id']}/cancel", headers=who.headers)


# -- quotas -------------------------------------------------------------------------------


def test_operator_sets_quota_and_list_shows_live_usage(
    client: TestClient, tenants: Tenants
) -> None:
    op, bob, alice = tenants.operator, tenants.bob, tenants.alice
    r = put_quota(client, op, "bolt-llm", "H100", nominal=2, lending_limit=1)
    assert r.status_code == 200, r.text
    assert r.json() | {"project_id": None} == {
        "project": "bolt-llm",
        "project_id": None,
        "gpu_type": "H100",
        "nominal": 2,
        "borrowing_limit": None,
        "lending_limit": 1,
        "in_use": 0,
        "borrowing": False,
        "source": "set",
    }
    # upsert: a second PUT replaces all three values
    r = put_quota(client, op, "bolt-llm", "H100", nominal=2, borrowing_limit=2)
    assert (r.json()["lending_limit"], r.json()["borrowing_limit"]) == (None, 2)

    job = submit(client, bob, command=["sleep", "60"], gpus_per_node=3, gpu_types=["H100"])
    until(client, bob, job["id"], running)
    [row] = client.get(f"{API}/quotas", headers=op.headers).json()["items"]
    assert (row["project"], row["in_use"], row["borrowing"]) == ("bolt-llm", 3, True)

    # readers: the project's member sees it, another tenant sees nothing
    shown = client.get(f"{API}/quotas/bolt-llm/H100", headers=bob.headers)
    assert shown.status_code == 200
    assert shown.json()["in_use"] == 3
    assert client.get(f"{API}/quotas", headers=alice.headers).json()["items"] == []
    assert client.get(f"{API}/quotas/bolt-llm/H100", headers=alice.headers).status_code == 404
    cancel_all(client, bob, job)

    assert client.delete(f"{API}/quotas/bolt-llm/H100", headers=op.headers).status_code == 204
    assert client.get(f"{API}/quotas", headers=op.headers).json()["items"] == []
    assert client.delete(f"{API}/quotas/bolt-llm/H100", headers=op.headers).status_code == 404


def test_members_and_admins_cannot_change_policy(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    op, bob, admin = tenants.operator, tenants.bob, tenants.acme_admin
    assert client.post(f"{API}/cohorts", json={"name": "keep"}, headers=op.headers).is_success
    assert reserve(
        client, op, name="keep", project="bolt-llm", nodes=[{"node": "local-0"}]
    ).is_success
    assert put_quota(client, op, "bolt-llm", "A100", nominal=1).is_success
    before = policy_rows(center)

    own, other = f"{API}/projects/bolt-llm", f"{API}/projects/acme-vision"
    attempts: list[tuple[Account, str, str, Any, int]] = [
        # a visible project: 403; an invisible one: 404, as if it did not exist
        (bob, "PUT", f"{API}/quotas/bolt-llm/H100", {"nominal": 4}, 403),
        (bob, "PUT", f"{API}/quotas/acme-vision/H100", {"nominal": 4}, 404),
        (bob, "DELETE", f"{API}/quotas/bolt-llm/A100", None, 403),
        (admin, "PUT", f"{API}/quotas/acme-vision/H100", {"nominal": 4}, 403),
        (bob, "PUT", f"{own}/limits", {"max_gpus": 99}, 403),
        (bob, "PUT", f"{other}/limits", {"max_gpus": 99}, 404),
        (bob, "PUT", f"{own}/cohort", {"cohort": "keep"}, 403),
        (bob, "POST", f"{API}/cohorts", {"name": "mine"}, 403),
        (bob, "PUT", f"{API}/cohorts/keep/parent", {"parent": None}, 403),
        (bob, "DELETE", f"{API}/cohorts/keep", None, 403),
        (
            bob,
            "POST",
            f"{API}/reservations",
            {
                "name": "x",
                "project": "bolt-llm",
                "ends_at": future(1),
                "nodes": [{"node": "local-1"}],
            },
            403,
        ),
        (
            bob,
            "POST",
            f"{API}/reservations",
            {
                "name": "x",
                "project": "acme-vision",
                "ends_at": future(1),
                "nodes": [{"node": "local-1"}],
            },
            404,
        ),
        (bob, "DELETE", f"{API}/reservations/keep", None, 403),
    ]
    for who, method, url, body, status in attempts:
        r = client.request(method, url, json=body, headers=who.headers)
        assert r.status_code == status, (who.user, method, url, r.text)
    assert policy_rows(center) == before

    # but they may read: limits of their own project, every cohort and reservation
    assert client.get(f"{own}/limits", headers=bob.headers).json()["max_gpus"] is None
    assert client.get(f"{other}/limits", headers=bob.headers).status_code == 404
    [cohort] = client.get(f"{API}/cohorts", headers=bob.headers).json()["items"]
    assert cohort["name"] == "keep"
    [held] = client.get(f"{API}/reservations", headers=bob.headers).json()["items"]
    assert (held["project"], held["active"]) == ("bolt-llm", True)


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/quotas/bolt-llm/V100", {"nominal": 1}, "gpu_type"),
        ("/quotas/bolt-llm/H100", {"nominal": -1}, "nominal"),
        ("/quotas/bolt-llm/H100", {"nominal": 100_001}, "nominal"),
        ("/quotas/bolt-llm/H100", {"nominal": 1, "borrowing_limit": -2}, "borrowing_limit"),
        ("/quotas/bolt-llm/H100", {"nominal": 2, "lending_limit": 3}, "lending_limit"),
        ("/projects/bolt-llm/limits", {"fair_share_weight": 0}, "fair_share_weight"),
        ("/projects/bolt-llm/limits", {"max_running_jobs": 0}, "max_running_jobs"),
        ("/projects/bolt-llm/limits", {"max_gpus": 2, "clear": ["max_gpus"]}, "max_gpus"),
        ("/projects/bolt-llm/limits", {"clear": ["fair_share_weight"]}, "clear"),
        ("/projects/bolt-llm/cohort", {"cohort": "nowhere"}, "cohort"),
    ],
)
def test_invalid_policy_names_the_field_and_writes_nothing(
    client: TestClient,
    tenants: Tenants,
    center: Center,
    path: str,
    body: dict[str, Any],
    field: str,
) -> None:
    before = policy_rows(center)
    r = client.put(API + path, json=body, headers=tenants.operator.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(field), r.text
    assert policy_rows(center) == before


def test_invalid_reservations_are_refused_and_write_nothing(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    op = tenants.operator
    now = datetime.now(UTC)
    r = reserve(
        client,
        op,
        name="demo",
        project="acme-vision",
        nodes=[{"node": "local-1", "devices": [0, 1]}],
    )
    assert r.status_code == 201, r.text
    before = policy_rows(center)
    cases: list[tuple[dict[str, Any], int, str]] = [
        (
            {"starts_at": future(2), "ends_at": future(1), "nodes": [{"node": "local-0"}]},
            422,
            "ends_at",
        ),
        (
            {
                "starts_at": (now - timedelta(hours=2)).isoformat(),
                "ends_at": (now - timedelta(hours=1)).isoformat(),
                "nodes": [{"node": "local-0"}],
            },
            422,
            "ends_at",
        ),
        ({"nodes": [{"node": "gpu-99"}]}, 422, "nodes[0].node"),
        ({"nodes": [{"node": "local-0"}, {"node": "local-0"}]}, 422, "nodes[1].node"),
        ({"nodes": [{"node": "local-0", "devices": [2]}]}, 422, "nodes[0].devices"),
        ({"nodes": [{"node": "local-0", "devices": [-1]}]}, 422, "nodes.0.devices.0"),
        ({"nodes": []}, 422, "nodes"),
        ({"project": "no-such", "nodes": [{"node": "local-0"}]}, 404, "no project"),
        # same window, a device in common: refused, naming the other reservation
        ({"nodes": [{"node": "local-1", "devices": [1, 2]}]}, 409, "overlaps reservation 'demo'"),
        # the name is taken
        ({"name": "demo", "nodes": [{"node": "local-0"}]}, 409, "already exists"),
    ]
    for case, status, detail in cases:
        body = {"name": "other", "project": "bolt-llm", **case}
        r = reserve(client, op, **body)
        assert r.status_code == status, (body, r.text)
        assert detail in r.json()["detail"], r.text
    assert policy_rows(center) == before

    # no overlap: other devices in the same window, or the same devices afterwards
    r = reserve(
        client,
        op,
        name="beside",
        project="bolt-llm",
        nodes=[{"node": "local-1", "devices": [2, 3]}],
    )
    assert r.status_code == 201, r.text
    later = {"starts_at": future(1), "ends_at": future(3)}
    r = reserve(client, op, name="after", project="bolt-llm", nodes=[{"node": "local-1"}], **later)
    assert r.status_code == 201, r.text
    assert r.json()["active"] is False
    names = [
        x["name"] for x in client.get(f"{API}/reservations", headers=op.headers).json()["items"]
    ]
    assert names == ["demo", "beside", "after"]  # earliest start first


# -- the scheduler follows the policy -----------------------------------------------------


def test_reservation_blocks_other_projects_but_not_its_own(
    client: TestClient, tenants: Tenants
) -> None:
    op, alice, bob = tenants.operator, tenants.alice, tenants.bob
    r = reserve(client, op, name="acme-demo", project="acme-vision", nodes=[{"node": "local-0"}])
    assert r.status_code == 201, r.text
    assert r.json()["nodes"] == [{"node": "local-0", "devices": [0, 1]}]
    assert r.json()["active"] is True

    blocked = submit(client, bob, command=["true"], gpus_per_node=1, gpu_types=["A100"])
    shown = until(client, bob, blocked["id"], left_pending_or_waits_on("reservation"))
    assert (shown["state"], shown["reason"]) == ("pending", "reservation")
    allowed = submit(client, alice, command=["true"], gpus_per_node=1, gpu_types=["A100"])
    assert wait(client, alice, allowed["id"])["state"] == "succeeded"

    # bob sees the reservation (when, which devices), not whose it is nor its name
    [seen] = client.get(f"{API}/reservations", headers=bob.headers).json()["items"]
    assert (seen["name"], seen["project"], seen["project_id"]) == (
        "(other tenant)",
        "(other tenant)",
        None,
    )
    assert "acme-demo" not in client.get(f"{API}/reservations", headers=bob.headers).text
    [own] = client.get(f"{API}/reservations", headers=alice.headers).json()["items"]
    assert (own["name"], own["project"]) == ("acme-demo", "acme-vision")
    # deleting it frees the node at once
    assert client.delete(f"{API}/reservations/acme-demo", headers=op.headers).status_code == 204
    assert wait(client, bob, blocked["id"])["state"] == "succeeded"
    assert client.delete(f"{API}/reservations/acme-demo", headers=op.headers).status_code == 404


def test_project_limit_holds_the_second_job_until_cleared(
    client: TestClient, tenants: Tenants
) -> None:
    op, alice = tenants.operator, tenants.alice
    r = client.put(
        f"{API}/projects/acme-vision/limits",
        json={"max_running_jobs": 1, "fair_share_weight": 2.5},
        headers=op.headers,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["max_running_jobs"], r.json()["fair_share_weight"]) == (1, 2.5)

    first = submit(client, alice, command=["sleep", "60"], gpus_per_node=1)
    until(client, alice, first["id"], running)
    second = submit(client, alice, command=["true"], gpus_per_node=1)
    shown = until(client, alice, second["id"], left_pending_or_waits_on("limit"))
    assert (shown["state"], shown["reason"]) == ("pending", "limit")

    # a field left out keeps its value; clear removes the cap
    r = client.put(f"{API}/projects/acme-vision/limits", json={"max_gpus": 8}, headers=op.headers)
    assert (r.json()["max_running_jobs"], r.json()["max_gpus"]) == (1, 8)
    r = client.put(
        f"{API}/projects/acme-vision/limits",
        json={"clear": ["max_running_jobs"]},
        headers=op.headers,
    )
    assert (r.json()["max_running_jobs"], r.json()["max_gpus"]) == (None, 8)
    assert r.json()["fair_share_weight"] == 2.5
    assert wait(client, alice, second["id"])["state"] == "succeeded"
    cancel_all(client, alice, first)


def test_job_beyond_nominal_quota_is_borrowed(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    op, alice = tenants.operator, tenants.alice
    assert put_quota(client, op, "bolt-llm", "H100", nominal=4).status_code == 200
    assert put_quota(client, op, "acme-vision", "H100", nominal=0).status_code == 200

    job = submit(client, alice, command=["sleep", "60"], gpus_per_node=1, gpu_types=["H100"])
    until(client, alice, job["id"], running)
    with center.store.read() as s:
        row = s.get(orm.Job, job["id"])
        assert row is not None
        assert row.borrowed is True
    quotas = {
        q["project"]: q for q in client.get(f"{API}/quotas", headers=op.headers).json()["items"]
    }
    assert (quotas["acme-vision"]["in_use"], quotas["acme-vision"]["borrowing"]) == (1, True)
    assert (quotas["bolt-llm"]["in_use"], quotas["bolt-llm"]["borrowing"]) == (0, False)
    cancel_all(client, alice, job)


# -- cohorts ------------------------------------------------------------------------------


def test_cohort_tree_membership_and_refusals(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    op, alice = tenants.operator, tenants.alice

    def post(name: str, parent: str | None = None) -> Any:
        return client.post(
            f"{API}/cohorts", json={"name": name, "parent": parent}, headers=op.headers
        )

    assert post("program-a").status_code == 201
    r = post("lab-1", parent="program-a")
    assert r.status_code == 201, r.text
    assert r.json()["parent"] == "program-a"
    assert post("lab-1").status_code == 409
    r = post("lab-2", parent="nowhere")
    assert (r.status_code, r.json()["detail"].split(":")[0]) == (422, "parent")
    assert post("center").status_code == 422  # the root's name

    for project in ("acme-vision", "bolt-llm"):
        r = client.put(
            f"{API}/projects/{project}/cohort", json={"cohort": "lab-1"}, headers=op.headers
        )
        assert r.status_code == 200, r.text
        assert r.json()["cohort"] == "lab-1"
    items = {c["name"]: c for c in client.get(f"{API}/cohorts", headers=op.headers).json()["items"]}
    assert items["program-a"]["children"] == ["lab-1"]
    assert items["lab-1"]["projects"] == ["acme-vision", "bolt-llm"]
    # another tenant's project stays hidden
    mine = {
        c["name"]: c for c in client.get(f"{API}/cohorts", headers=alice.headers).json()["items"]
    }
    assert mine["lab-1"]["projects"] == ["acme-vision"]

    # a cycle is refused; a non-empty cohort cannot be deleted
    r = client.put(f"{API}/cohorts/program-a/parent", json={"parent": "lab-1"}, headers=op.headers)
    assert (r.status_code, r.json()["detail"].split(":")[0]) == (422, "parent")
    r = client.put(f"{API}/cohorts/lab-1/parent", json={"parent": "lab-1"}, headers=op.headers)
    assert r.status_code == 422
    assert client.delete(f"{API}/cohorts/program-a", headers=op.headers).status_code == 409
    r = client.delete(f"{API}/cohorts/lab-1", headers=op.headers)
    assert r.status_code == 409
    assert "acme-vision" in r.json()["detail"]

    # emptied, they go; the projects are back under the root
    for project in ("acme-vision", "bolt-llm"):
        r = client.put(
            f"{API}/projects/{project}/cohort", json={"cohort": None}, headers=op.headers
        )
        assert r.json()["cohort"] is None
    r = client.put(f"{API}/cohorts/lab-1/parent", json={"parent": None}, headers=op.headers)
    assert (r.status_code, r.json()["parent"]) == (200, None)
    assert client.delete(f"{API}/cohorts/program-a", headers=op.headers).status_code == 204
    assert client.delete(f"{API}/cohorts/lab-1", headers=op.headers).status_code == 204
    assert client.delete(f"{API}/cohorts/lab-1", headers=op.headers).status_code == 404
    assert policy_rows(center)["counts"]["cohorts"] == 0
