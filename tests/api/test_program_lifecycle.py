"""A funding program from call to charges, end to end through the API on both backends.

A program with 80/20 co-funding, a company, its project and the price book; a request,
its review and approval; jobs run under the grant and are charged exactly once each,
split into the public share and the co-pay; then the grant is spent to the last
GPU-second by one running job's hold, so the next job waits for ``budget`` until a
top-up lets it run.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from axcenter.model.money import gpu_seconds, rate
from axcenter.service.center import Center
from axcenter.store import orm
from tests.api.conftest import Account, Tenants
from tests.api.test_allocations import REQUESTS, eventually, file_request, project_id, step
from tests.api.test_jobs import submit, wait
from tests.api.test_policy import left_pending_or_waits_on, running, until
from tests.api.test_programs import API, add_user, create_program, make_staff, ok, set_price

PRICE = 2800
PUBLIC_BP = 8000


def balance(client: TestClient, who: Account, allocation_id: str) -> dict[str, Any]:
    result: dict[str, Any] = ok(
        client.get(f"{API}/allocations/{allocation_id}", headers=who.headers)
    )["balance"]
    return result


def check_ledger(center: Center, allocation_id: str, job_ids: list[str]) -> int:
    """Each finished job: one hold, one release, one charge of its rated usage, split
    80/20 with nothing lost. Returns the won charged."""
    total = 0
    with center.store.read() as s:
        for job_id in job_ids:
            job = s.get(orm.Job, job_id)
            assert job is not None and job.started_at and job.ended_at
            entries = s.scalars(
                select(orm.LedgerEntry).where(orm.LedgerEntry.job_id == job_id)
            ).all()
            kinds = sorted(e.kind for e in entries)
            assert kinds == ["charge", "hold", "release"], (job_id, kinds)
            hold = next(e for e in entries if e.kind == "hold")
            release = next(e for e in entries if e.kind == "release")
            charge = next(e for e in entries if e.kind == "charge")
            assert {e.allocation_id for e in entries} == {allocation_id}
            assert (release.amount_won, release.gpu_seconds) == (hold.amount_won, hold.gpu_seconds)
            used = gpu_seconds(
                job.gpus_per_node * job.nodes, (job.ended_at - job.started_at).total_seconds()
            )
            assert charge.gpu_seconds == min(used, hold.gpu_seconds)
            assert charge.amount_won == rate(charge.gpu_seconds, PRICE)
            assert charge.public_won == charge.amount_won * PUBLIC_BP // 10_000
            assert charge.public_won + charge.copay_won == charge.amount_won
            total += charge.amount_won
    return total


def test_program_from_call_to_charges_and_top_up(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    op = tenants.operator
    staff = make_staff(client, tenants)
    create_program(client, staff.pm, name="AX Mobility 2026", public_share_bp=PUBLIC_BP)
    ok(
        client.post(
            f"{API}/organizations",
            json={"name": "Hanbit Motors", "size_class": "large", "region": "Gwangju"},
            headers=op.headers,
        ),
        201,
    )
    admin = add_user(client, op, "hanbit-admin", "org_admin", "Hanbit Motors")
    engineer = add_user(client, admin, "hanbit-eng")
    engineer = Account(engineer.user, engineer.token, "hanbit-adas")
    set_price(client, op, "A100", PRICE)
    set_price(client, op, "H100", 4500)
    ok(
        client.post(
            f"{API}/projects",
            json={"name": "hanbit-adas", "program": "AX Mobility 2026", "sector": "automotive",
                  "objective": "lane detection", "pi": "hanbit-eng"},
            headers=admin.headers,
        ),
        201,
    )  # fmt: skip

    # the call: one GPU-hour of A100, reviewed and approved
    request = file_request(client, admin, "hanbit-adas", {"A100": 1})
    ok(step(client, staff.pm, request["id"], "assign", reviewers=["rev"]))
    ok(step(client, staff.reviewer, request["id"], "review", score=4, comment="feasible"))
    approved = ok(step(client, staff.pm, request["id"], "approve", comment="granted"))
    alloc = approved["allocation_id"]
    pid = project_id(center, "hanbit-adas")
    eventually(lambda: pid in center.control.state.budgets)

    # jobs under the grant: held at admission, charged once at the end
    jobs = [
        submit(client, engineer, command=["sleep", "0.5"], gpus_per_node=1, time_limit_s=10)
        for _ in range(3)
    ]
    for job in jobs:
        done = wait(client, engineer, job["id"])
        assert (done["state"], done["gpu_type"]) == ("succeeded", "A100"), done
    charged = check_ledger(center, alloc, [j["id"] for j in jobs])
    b = balance(client, engineer, alloc)
    assert (b["charged_won"], b["held_won"], b["warning"]) == (charged, 0, "none")

    # spend what is left on one running job's hold (GPU-seconds and won both)
    grace = center.control.state.hold_grace_s
    assert grace == 7  # ceil(kill_grace_s) + 5
    secs = b["items"][0]["left_gpu_seconds"]
    while rate(secs, PRICE) > b["left_won"]:
        secs -= 1
    hog = submit(
        client, engineer, command=["sleep", "60"], gpus_per_node=1, time_limit_s=secs - grace
    )
    until(client, engineer, hog["id"], running)
    b = balance(client, engineer, alloc)
    assert (b["held_won"], b["warning"]) == (rate(secs, PRICE), "100%")
    project = ok(client.get(f"{API}/projects/hanbit-adas", headers=engineer.headers))
    assert "exhausted" in project["warnings"][0]

    starved = submit(client, engineer, command=["sleep", "0.5"], gpus_per_node=1, time_limit_s=10)
    waiting = until(client, engineer, starved["id"], left_pending_or_waits_on("budget"))
    assert (waiting["state"], waiting["reason"]) == ("pending", "budget")

    # a top-up through the same review path lets it run
    topup = file_request(client, admin, "hanbit-adas", {"A100": 1}, kind="topup", allocation=alloc)
    ok(step(client, staff.pm, topup["id"], "approve", comment="top-up"))
    assert wait(client, engineer, starved["id"])["state"] == "succeeded"
    r = client.post(f"{API}/jobs/{hog['id']}/cancel", headers=engineer.headers)
    assert r.json()["state"] == "cancelled"

    finished = [j["id"] for j in jobs] + [hog["id"], starved["id"]]
    charged = check_ledger(center, alloc, finished)
    b = balance(client, admin, alloc)
    assert (b["granted_won"], b["charged_won"], b["held_won"]) == (2 * PRICE, charged, 0)
    events = ok(client.get(f"{REQUESTS}/{topup['id']}", headers=admin.headers))["events"]
    assert [e["action"] for e in events] == ["submitted", "approved"]

    # the report a ministry receives: its totals reconcile with the ledger, to the won
    report = ok(
        client.get(
            f"{API}/reports/usage",
            params={"group_by": ["program", "project", "month"]},
            headers=staff.pm.headers,
        )
    )
    rows = [r for r in report["rows"] if r["keys"].get("project") == "hanbit-adas"]
    assert sum(r["charged_won"] for r in rows) == charged
    total = report["total"]
    assert total["charged_won"] == sum(r["charged_won"] for r in report["rows"])
    assert total["public_won"] + total["copay_won"] == total["charged_won"]
    csv_text = client.get(
        f"{API}/reports/usage",
        params={"group_by": "program", "format": "csv"},
        headers=staff.pm.headers,
    ).text
    assert csv_text.splitlines()[-1].startswith("TOTAL")
