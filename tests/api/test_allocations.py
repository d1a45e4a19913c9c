"""Allocation requests through review to grants, and grant changes, through the real API.

Acme's admin files for ``acme-vision``; the program manager assigns reviewers and
decides; every step must be in the request's history with who, when and why, and every
grant change in the audit log. The scheduler's view (quotas and budgets derived from the
grant) is read from the control loop once it has processed ``policy_changed``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from axcenter.model.money import rate, split
from axcenter.service.center import Center
from axcenter.store import orm
from axcenter.store.types import utcnow
from tests.api.conftest import Account, Tenants
from tests.api.test_programs import (
    API,
    Staff,
    audit,
    create_program,
    iso,
    make_staff,
    ok,
    set_price,
)

REQUESTS = f"{API}/allocation-requests"


def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait (bounded) until the control loop has acted on what the test changed."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the control loop never caught up"
        threading.Event().wait(0.02)


def file_request(
    client: TestClient, who: Account, project: str, items: dict[str, int], **body: Any
) -> dict[str, Any]:
    body = {"project": project, "items": items, "justification": "detector training"} | body
    if body.get("kind", "new") == "new":
        body.setdefault("ends_at", iso(30))
    result: dict[str, Any] = ok(client.post(REQUESTS, json=body, headers=who.headers), 201)
    return result


def step(client: TestClient, who: Account, request_id: str, action: str, **body: Any) -> Any:
    return client.post(f"{REQUESTS}/{request_id}/{action}", json=body, headers=who.headers)


def setup(client: TestClient, tenants: Tenants, **program: Any) -> Staff:
    """Staff, A100/H100 prices, and acme-vision under program "AX 2026"."""
    staff = make_staff(client, tenants)
    create_program(client, staff.pm, **program)
    set_price(client, tenants.operator, "A100", 2800)
    set_price(client, tenants.operator, "H100", 4500)
    ok(
        client.patch(
            f"{API}/projects/acme-vision",
            json={"program": "AX 2026"},
            headers=tenants.acme_admin.headers,
        )
    )
    return staff


def grant(
    client: TestClient, tenants: Tenants, staff: Staff, items: dict[str, int], **approve: Any
) -> dict[str, Any]:
    """File for acme-vision and approve at once (no review needed); the allocation."""
    request = file_request(client, tenants.acme_admin, "acme-vision", items)
    approved = ok(step(client, staff.pm, request["id"], "approve", **approve))
    allocation: dict[str, Any] = ok(
        client.get(
            f"{API}/allocations/{approved['allocation_id']}", headers=tenants.operator.headers
        )
    )
    return allocation


def project_id(center: Center, name: str) -> str:
    with center.store.read() as s:
        pid = s.scalar(select(orm.Project.id).where(orm.Project.name == name))
    assert pid is not None
    return pid


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_review_path_reduced_approval_and_the_grant_reaches_the_scheduler(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    admin, alice, bob = tenants.acme_admin, tenants.alice, tenants.bob
    staff = setup(client, tenants)
    pm, rev, rev2 = staff.pm, staff.reviewer, staff.reviewer2
    req = file_request(client, admin, "acme-vision", {"A100": 1500, "H100": 50})
    rid = req["id"]
    assert (req["status"], req["program"], req["created_by"]) == (
        "submitted",
        "AX 2026",
        "acme-admin",
    )

    # the project's member may not read it (same organization), another tenant never hears of it
    assert client.get(f"{REQUESTS}/{rid}", headers=alice.headers).status_code == 403
    assert client.get(f"{REQUESTS}/{rid}", headers=bob.headers).json() == {
        "detail": f"no request '{rid}'"
    }
    assert step(client, rev, rid, "review", score=3).status_code == 404  # not assigned yet

    for bad in (["alice"], ["acme-admin"], ["nobody"]):
        assert step(client, pm, rid, "assign", reviewers=bad).status_code == 422
    assigned = ok(step(client, pm, rid, "assign", reviewers=["rev", "rev2"]))
    assert (assigned["status"], assigned["reviewers"]) == ("in_review", ["rev", "rev2"])
    assert ok(client.get(f"{REQUESTS}/{rid}", headers=rev.headers))["id"] == rid
    # each reader is told which steps it may take now, by the rules the steps enforce
    for who, actions in ((rev, ["review"]), (pm, ["decide"]), (admin, ["withdraw"]),
                         (tenants.operator, ["review", "decide", "withdraw"])):  # fmt: skip
        assert ok(client.get(f"{REQUESTS}/{rid}", headers=who.headers))["actions"] == actions
    assert all(r["actions"] is None for r in ok(client.get(REQUESTS, headers=pm.headers))["items"])

    ok(step(client, rev, rid, "review", score=4, comment="solid plan"))
    ok(step(client, rev2, rid, "review", score=2, comment="H100 not justified"))
    assert step(client, rev2, rid, "review", score=6).status_code == 422
    reviewed = ok(step(client, rev, rid, "review", score=5, comment="on reflection, strong"))
    assert reviewed["mean_score"] == 3.5  # each reviewer's latest score
    assert step(client, rev, rid, "approve").status_code == 403  # reviewers do not decide
    assert step(client, admin, rid, "approve").status_code == 403

    # never more than asked, nor a type not asked for
    for items in ({"A100": 1501}, {"B200": 1}, {}):
        r = step(client, pm, rid, "approve", items=items)
        assert r.status_code == 422, r.text
    approved = ok(
        step(
            client,
            pm,
            rid,
            "approve",
            items={"A100": 1000},
            on_exhaustion="preemptible",
            comment="reduced: H100 not justified",
        )
    )
    assert approved["status"] == "approved"
    assert step(client, pm, rid, "approve").status_code == 409
    assert ok(client.get(f"{REQUESTS}/{rid}", headers=pm.headers))["actions"] == []

    allocation = ok(
        client.get(f"{API}/allocations/{approved['allocation_id']}", headers=alice.headers)
    )
    secs = 1000 * 3600
    assert allocation["on_exhaustion"] == "preemptible"
    assert allocation["balance"]["granted_won"] == rate(secs, 2800) == 2_800_000
    assert [(i["gpu_type"], i["granted_gpu_seconds"]) for i in allocation["balance"]["items"]] == [
        ("A100", secs)
    ]
    assert allocation["balance"]["warning"] == "none"

    # the applicant reads the reviews once decided, without the reviewers' names
    history = ok(client.get(f"{REQUESTS}/{rid}", headers=admin.headers))["events"]
    assert [(e["action"], e["actor"], e["score"]) for e in history] == [
        ("submitted", "acme-admin", None),
        ("assigned", "pm", None),
        ("reviewed", "reviewer 1", 4),
        ("reviewed", "reviewer 2", 2),
        ("reviewed", "reviewer 1", 5),
        ("approved", "pm", None),
    ]
    assert history[0]["items"] == {"A100": 1500, "H100": 50}
    assert (history[-1]["items"], history[-1]["comment"]) == (
        {"A100": 1000},
        "reduced: H100 not justified",
    )
    times = [moment(e["at"]) for e in history]
    assert times == sorted(times)
    [created] = audit(client, tenants, action="grant.", object_id=approved["allocation_id"])
    assert (created["action"], created["actor"]) == ("grant.create", "pm")
    assert created["details"]["items"] == {"A100": {"gpu_seconds": secs, "won": 2_800_000}}

    # the scheduler: a guaranteed quota spreading the GPU-hours over the window, and a budget
    pid = project_id(center, "acme-vision")
    window = (moment(allocation["ends_at"]) - moment(allocation["starts_at"])).total_seconds()
    expected = math.ceil(secs / int(window))
    assert expected == 2

    def scheduler_knows() -> bool:
        quotas = center.control.state.policy.projects[pid].quotas
        return "A100" in quotas and pid in center.control.state.budgets

    eventually(scheduler_knows)
    assert center.control.state.policy.projects[pid].quotas["A100"].nominal == expected
    assert "H100" not in center.control.state.policy.projects[pid].quotas
    budget = center.control.state.budgets[pid]
    assert (budget.won_left, budget.unfunded_ok) == (2_800_000, True)


def test_return_resubmit_reject_and_withdraw(client: TestClient, tenants: Tenants) -> None:
    admin, alice = tenants.acme_admin, tenants.alice
    staff = setup(client, tenants)
    pm = staff.pm
    rid = file_request(client, admin, "acme-vision", {"A100": 100, "H100": 100})["id"]

    assert step(client, pm, rid, "return", comment="").status_code == 422
    returned = ok(step(client, pm, rid, "return", comment="justify the H100 hours"))
    assert returned["status"] == "returned"
    assert step(client, pm, rid, "approve").status_code == 409
    assert step(client, alice, rid, "resubmit").status_code == 403
    resubmitted = ok(
        step(
            client,
            admin,
            rid,
            "resubmit",
            items={"A100": 120},
            justification="A100 only, more of it",
            comment="dropped H100",
        )
    )
    assert (resubmitted["status"], resubmitted["items"]) == ("submitted", {"A100": 120})
    assert resubmitted["justification"] == "A100 only, more of it"
    assert step(client, admin, rid, "resubmit").status_code == 409  # not returned now

    rejected = ok(step(client, pm, rid, "reject", comment="program budget is committed"))
    assert rejected["status"] == "rejected"
    for action, who in (("approve", pm), ("withdraw", admin), ("return", pm)):
        body = {"comment": "x"} if action == "return" else {}
        assert step(client, who, rid, action, **body).status_code == 409, action
    events = ok(client.get(f"{REQUESTS}/{rid}", headers=admin.headers))["events"]
    assert [(e["action"], e["actor"], e["comment"]) for e in events] == [
        ("submitted", "acme-admin", ""),
        ("returned", "pm", "justify the H100 hours"),
        ("resubmitted", "acme-admin", "dropped H100"),
        ("rejected", "pm", "program budget is committed"),
    ]
    assert events[2]["items"] == {"A100": 120}

    other = file_request(client, admin, "acme-vision", {"A100": 1})["id"]
    assert step(client, alice, other, "withdraw").status_code == 403
    assert ok(step(client, admin, other, "withdraw", comment="not needed"))["status"] == "withdrawn"
    statuses = {
        r["id"]: r["status"]
        for r in ok(client.get(REQUESTS, params={"project": "acme-vision"}, headers=pm.headers))[
            "items"
        ]
    }
    assert statuses == {rid: "rejected", other: "withdrawn"}
    assert ok(client.get(f"{API}/allocations", headers=tenants.operator.headers))["items"] == []


def test_topup_extension_and_termination(client: TestClient, tenants: Tenants) -> None:
    admin = tenants.acme_admin
    staff = setup(client, tenants)
    pm = staff.pm
    allocation = grant(client, tenants, staff, {"A100": 100})
    aid = allocation["id"]
    set_price(client, tenants.operator, "A100", 3000)  # top-ups are rated at today's price

    topup = file_request(
        client, admin, "acme-vision", {"A100": 10, "H100": 5}, kind="topup", allocation=aid
    )
    assert (topup["program"], topup["allocation_id"]) == ("AX 2026", aid)
    ok(step(client, pm, topup["id"], "approve", items={"A100": 10}))
    after = ok(client.get(f"{API}/allocations/{aid}", headers=admin.headers))
    assert after["balance"]["granted_won"] == rate(100 * 3600, 2800) + rate(10 * 3600, 3000)
    assert [(i["gpu_type"], i["granted_gpu_seconds"]) for i in after["balance"]["items"]] == [
        ("A100", 110 * 3600)
    ]

    old_end = moment(allocation["ends_at"])
    r = client.post(
        REQUESTS,
        json={"project": "acme-vision", "kind": "extension", "allocation": aid,
              "ends_at": iso(1), "justification": "shorter?"},
        headers=admin.headers,
    )  # fmt: skip
    assert r.status_code == 422
    extension = file_request(
        client, admin, "acme-vision", {}, kind="extension", allocation=aid, ends_at=iso(60)
    )
    assert step(client, pm, extension["id"], "approve", ends_at=iso(61)).status_code == 422
    ok(step(client, pm, extension["id"], "approve", ends_at=iso(45)))
    extended = ok(client.get(f"{API}/allocations/{aid}", headers=admin.headers))
    assert 14 < (moment(extended["ends_at"]) - old_end).total_seconds() / 86400 < 16

    assert client.post(
        REQUESTS,
        json={"project": "acme-vision", "kind": "termination", "allocation": aid,
              "items": {"A100": 1}, "justification": "done"},
        headers=admin.headers,
    ).status_code == 422  # fmt: skip
    termination = file_request(client, admin, "acme-vision", {}, kind="termination", allocation=aid)
    before = utcnow()
    ok(step(client, pm, termination["id"], "approve", comment="project finished early"))
    ended = ok(client.get(f"{API}/allocations/{aid}", headers=admin.headers))
    assert ended["status"] == "terminated"
    assert before <= moment(ended["ends_at"]) <= utcnow()
    r = client.post(
        REQUESTS,
        json={"project": "acme-vision", "kind": "topup", "allocation": aid,
              "items": {"A100": 1}, "justification": "more"},
        headers=admin.headers,
    )  # fmt: skip
    assert r.status_code == 409

    changes = audit(client, tenants, object_id=aid)
    assert [(a["action"], a["actor"]) for a in changes] == [
        ("grant.terminate", "pm"),
        ("grant.extend", "pm"),
        ("grant.topup", "pm"),
        ("grant.create", "pm"),
    ]
    assert changes[2]["details"]["items"] == {
        "A100": {"gpu_seconds": 36000, "won": rate(36000, 3000)}
    }


def test_budget_overrun_and_missing_price_are_refused_and_change_nothing(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    admin = tenants.acme_admin
    staff = make_staff(client, tenants)
    create_program(client, staff.pm, budget_won=100_000)
    set_price(client, tenants.operator, "A100", 2800)
    ok(
        client.patch(
            f"{API}/projects/acme-vision", json={"program": "AX 2026"}, headers=admin.headers
        )
    )

    big = file_request(client, admin, "acme-vision", {"A100": 100})["id"]
    r = step(client, staff.pm, big, "approve")
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "100,000 won" in detail and "this grant 280,000" in detail, detail
    unpriced = file_request(client, admin, "acme-vision", {"H100": 10})["id"]
    r = step(client, staff.pm, unpriced, "approve")
    assert r.status_code == 409
    assert "no price for H100" in r.json()["detail"]
    with center.store.read() as s:
        assert s.scalar(select(func.count()).select_from(orm.Allocation)) == 0
    for rid in (big, unpriced):
        shown = ok(client.get(f"{REQUESTS}/{rid}", headers=admin.headers))
        assert (shown["status"], shown["allocation_id"]) == ("submitted", None)
        assert [e["action"] for e in shown["events"]] == ["submitted"]
    assert audit(client, tenants, action="grant.") == []

    fits = file_request(client, admin, "acme-vision", {"A100": 30})["id"]
    ok(step(client, staff.pm, fits, "approve"))  # 84,000 won
    program = ok(client.get(f"{API}/programs/AX 2026", headers=admin.headers))
    assert program["allocated_won"] == 84_000
    more = file_request(client, admin, "acme-vision", {"A100": 10})["id"]
    r = step(client, staff.pm, more, "approve")
    assert r.status_code == 409
    assert "84,000 already granted" in r.json()["detail"]
    r = client.patch(
        f"{API}/programs/AX 2026", json={"budget_won": 50_000}, headers=staff.pm.headers
    )
    assert r.status_code == 409


def test_balances_and_warnings_at_80_and_100_percent(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    alice, bob = tenants.alice, tenants.bob
    staff = setup(client, tenants)
    allocation = grant(client, tenants, staff, {"A100": 10})  # 36,000 GPU-s, 28,000 won

    def charge(secs: int) -> None:
        won = rate(secs, 2800)
        public, copay = split(won, 8000)
        with center.store.write() as s:
            s.add(
                orm.LedgerEntry(
                    at=utcnow(),
                    kind="charge",
                    allocation_id=allocation["id"],
                    program_id=allocation["program_id"],
                    project_id=allocation["project_id"],
                    gpu_type="A100",
                    gpu_seconds=secs,
                    amount_won=won,
                    public_won=public,
                    copay_won=copay,
                )
            )

    def shown(who: Account) -> dict[str, Any]:
        [only] = ok(client.get(f"{API}/allocations", headers=who.headers))["items"]
        result: dict[str, Any] = only
        return result

    charge(28_000)  # 77.8%
    assert shown(alice)["balance"]["warning"] == "none"
    charge(1_000)  # 80.6%
    balance = shown(alice)["balance"]
    assert (balance["warning"], balance["used_fraction"]) == ("80%", 0.8056)
    assert balance["left_won"] == 28_000 - rate(28_000, 2800) - rate(1_000, 2800)
    assert balance["items"][0]["left_gpu_seconds"] == 7_000
    project = ok(client.get(f"{API}/projects/acme-vision", headers=alice.headers))
    [line] = project["warnings"]
    assert "81% used" in line and allocation["id"] in line
    filtered = client.get(f"{API}/allocations", params={"warning": "80%"}, headers=alice.headers)
    assert [a["id"] for a in ok(filtered)["items"]] == [allocation["id"]]

    charge(7_000)
    assert shown(tenants.acme_admin)["balance"]["warning"] == "100%"
    project = ok(client.get(f"{API}/projects/acme-vision", headers=alice.headers))
    assert "exhausted" in project["warnings"][0]

    # other tenants and unrelated reviewers see no allocation at all
    for who in (bob, staff.reviewer):
        assert ok(client.get(f"{API}/allocations", headers=who.headers))["items"] == []
        r = client.get(f"{API}/allocations/{allocation['id']}", headers=who.headers)
        assert r.status_code == 404
