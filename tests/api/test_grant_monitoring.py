"""Use monitoring and take-back through the API and the CLI, on both stores: a grant two
thirds through its window with nothing used is flagged with its evidence; a warning
reaches the company; a suspended grant pays for no new run (the job waits for budget)
until it is resumed; a take-back never touches what is charged or held, withdraws the
pending tranche on request, and returns both to the program's budget and settlement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from axcenter.cli import main as cli_main
from axcenter.client.http import Client
from axcenter.model.money import rate
from axcenter.service.center import Center
from axcenter.service.notifications import notifications
from tests.api.conftest import Tenants
from tests.api.test_allocations import file_request, step
from tests.api.test_jobs import submit
from tests.api.test_policy import left_pending_or_waits_on, running, until
from tests.api.test_program_operations import principal
from tests.api.test_programs import API, audit, ok
from tests.cli import HttpxTransport
from tests.web.test_pages import browser

H100 = 4500


def days(n: float) -> str:
    return (datetime.now(UTC) + timedelta(days=n)).isoformat()


def test_idle_grant_warned_suspended_resumed_and_taken_back(
    client: TestClient, tenants: Tenants, center: Center, monkeypatch: Any
) -> None:
    from tests.api.test_allocations import setup

    staff = setup(client, tenants)
    ok(
        client.post(
            f"{API}/programs/AX 2026/rules",
            json={"tranches_bp": [8000, 2000]},
            headers=staff.pm.headers,
        ),
        201,
    )
    req = file_request(
        client,
        tenants.acme_admin,
        "acme-vision",
        {"H100": 100},
        starts_at=days(-20),
        ends_at=days(10),
    )
    alloc_id = ok(step(client, staff.pm, req["id"], "approve"))["allocation_id"]
    use = ok(client.get(f"{API}/programs/AX 2026/use", headers=staff.pm.headers))
    [g] = use["items"]
    assert g["allocation_id"] == alloc_id and set(g["flags"]) == {"under_used", "idle"}
    assert 6500 <= g["elapsed_bp"] <= 6700 and g["used_gpu_seconds"] == 0 and g["use_bp"] == 0
    assert g["idle_days"] == 20 and g["granted_gpu_seconds"] == 80 * 3600
    assert g["suggested_reclaim_gpu_hours"] == {"H100": 80}
    assert (
        client.get(f"{API}/programs/AX 2026/use", headers=staff.reviewer.headers).status_code == 403
    )
    bob_view = ok(client.get(f"{API}/programs/AX 2026/use", headers=tenants.bob.headers))
    assert bob_view["items"] == []

    # a warning: the company hears of it, with the evidence kept
    assert (
        client.post(
            f"{API}/allocations/{alloc_id}/warn",
            json={"reason": "unused"},
            headers=tenants.acme_admin.headers,
        ).status_code
        == 403
    )
    warned = ok(
        client.post(
            f"{API}/allocations/{alloc_id}/warn",
            json={"reason": "no use in 20 days"},
            headers=staff.pm.headers,
        )
    )
    assert warned["kind"] == "warning" and warned["evidence"]["idle_days"] == 20
    feed = notifications(center, principal(center, "acme-admin"))
    assert any(n.kind == "notice.warning" and n.ref == alloc_id for n in feed)
    page = browser(center, tenants.alice.token, "ko").get(f"/ui/grants/{alloc_id}")
    assert page.status_code == 200 and "저조 사용" in page.text and "경고" in page.text

    # suspended: the grant pays for no new run
    ok(
        client.post(
            f"{API}/allocations/{alloc_id}/suspend",
            json={"reason": "idle"},
            headers=staff.pm.headers,
        )
    )
    again = client.post(
        f"{API}/allocations/{alloc_id}/suspend", json={"reason": "x"}, headers=staff.pm.headers
    )
    assert again.status_code == 409
    job = submit(
        client, tenants.alice, gpus_per_node=1, gpu_types=["H100"], command=["sleep", "30"]
    )
    waiting = until(client, tenants.alice, job["id"], left_pending_or_waits_on("budget"))
    assert (waiting["state"], waiting["reason"]) == ("pending", "budget")
    ok(
        client.post(
            f"{API}/allocations/{alloc_id}/resume",
            json={"reason": "plan received"},
            headers=staff.pm.headers,
        )
    )
    until(client, tenants.alice, job["id"], running)

    # take back 60 of the 80 released GPU-hours and the pending tranche; the running
    # job's hold (one GPU-hour and its grace) cannot be taken
    before = ok(client.get(f"{API}/programs/AX 2026", headers=staff.pm.headers))["allocated_won"]
    too_much = client.post(
        f"{API}/allocations/{alloc_id}/reclaim",
        json={"reason": "idle", "gpu_hours": {"H100": 80}},
        headers=staff.pm.headers,
    )
    assert too_much.status_code == 409, too_much.text
    assert "78 H100 GPU-hours left" in too_much.text and "cannot be taken back" in too_much.text
    wrong_type = client.post(
        f"{API}/allocations/{alloc_id}/reclaim",
        json={"reason": "idle", "gpu_hours": {"A100": 1}},
        headers=staff.pm.headers,
    )
    assert wrong_type.status_code == 422 and "gpu_hours.A100" in wrong_type.text
    taken = ok(
        client.post(
            f"{API}/allocations/{alloc_id}/reclaim",
            json={
                "reason": "idle for 20 days",
                "gpu_hours": {"H100": 60},
                "withdraw_pending": True,
            },
            headers=staff.pm.headers,
        )
    )
    assert taken["gpu_seconds"] == 60 * 3600
    item_won = rate(80 * 3600, H100)
    assert taken["won"] == item_won * 60 * 3600 // (80 * 3600)
    pending_won = taken["evidence"]["tranches_withdrawn_won"]
    assert pending_won == rate(100 * 3600, H100) - item_won
    assert taken["evidence"]["running_jobs"] == 1
    ok(client.post(f"{API}/jobs/{job['id']}/cancel", headers=tenants.alice.headers))
    after = ok(client.get(f"{API}/programs/AX 2026", headers=staff.pm.headers))["allocated_won"]
    assert before - after == taken["won"] + pending_won
    alloc = ok(client.get(f"{API}/allocations/{alloc_id}", headers=tenants.alice.headers))
    assert alloc["balance"]["items"][0]["granted_gpu_seconds"] == 20 * 3600
    assert alloc["balance"]["left_won"] >= 0
    [entry] = audit(client, tenants, action="grant.reclaim")
    assert entry["details"]["won"] == taken["won"]
    settled = ok(client.get(f"{API}/programs/AX 2026/settlement", headers=staff.pm.headers))
    [row] = settled["rows"]
    assert row["withdrawn_won"] == taken["won"] + pending_won
    assert row["granted_won"] == rate(100 * 3600, H100)
    kinds = [
        n["kind"]
        for n in ok(
            client.get(f"{API}/allocations/{alloc_id}/notices", headers=tenants.alice.headers)
        )["items"]
    ]
    assert kinds == ["warning", "suspension", "resumption", "reclaim"]

    # the CLI: the list and an action
    transport = HttpxTransport(client._transport)
    monkeypatch.setattr(
        cli_main, "client_factory", lambda cfg: Client(cfg.url, cfg.token, transport=transport)
    )
    env = {"AXC_URL": "http://testserver", "AXC_TOKEN": staff.pm.token, "COLUMNS": "250"}
    runner = CliRunner()
    listed = runner.invoke(cli_main.app, ["grant", "use", "AX 2026", "--all"], env=env)
    assert listed.exit_code == 0 and alloc_id in listed.output, listed.output
    warned = runner.invoke(cli_main.app, ["grant", "warn", alloc_id, "-m", "still idle"], env=env)
    assert warned.exit_code == 0 and "warning sent to acme-vision" in warned.output
    bad = runner.invoke(
        cli_main.app, ["grant", "reclaim", alloc_id, "-m", "x", "-g", "H100=0"], env=env
    )
    assert bad.exit_code != 0 and "TYPE=HOURS" in bad.output
    taken_cli = runner.invoke(
        cli_main.app, ["grant", "reclaim", alloc_id, "-m", "idle", "-g", "H100=1"], env=env
    )
    assert taken_cli.exit_code == 0 and "won taken back" in taken_cli.output, taken_cli.output


def test_runs_outside_a_grants_terms_are_listed_with_evidence(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    """A grant of H100s whose project also runs on A100s: runs paid by another grant are
    listed with their payer (for the officer to judge), a run no grant paid flags the
    grant ``off_purpose``; the grant's page shows the list."""
    from sqlalchemy import select

    from axcenter.model.ids import new_id
    from axcenter.store import orm
    from tests.api.test_allocations import setup
    from tests.api.test_policy import until as job_until

    staff = setup(client, tenants)
    grants = {}
    # the A100 grant ends first: it is the project's current one (the scheduler's budget)
    for gpu_type, ends in (("H100", 40), ("A100", 30)):
        req = file_request(
            client,
            tenants.acme_admin,
            "acme-vision",
            {gpu_type: 100},
            starts_at=days(-1),
            ends_at=days(ends),
        )
        grants[gpu_type] = ok(step(client, staff.pm, req["id"], "approve"))["allocation_id"]
    alloc_id = grants["H100"]
    every = f"{API}/programs/AX 2026/use?all=true"

    def use() -> dict[str, Any]:
        items = ok(client.get(every, headers=staff.pm.headers))["items"]
        [found] = [i for i in items if i["allocation_id"] == alloc_id]
        return found

    assert use()["off_purpose"] == []
    job = submit(client, tenants.alice, gpus_per_node=1, gpu_types=["A100"], command=["true"])
    job_until(client, tenants.alice, job["id"], lambda j: j["state"] == "succeeded")
    g = use()
    [o] = g["off_purpose"]
    assert (o["job_id"], o["gpu_type"], o["funded_by"]) == (job["id"], "A100", grants["A100"])
    assert "A100 is not among the grant's GPU types (H100)" in o["why"]
    assert "off_purpose" not in g["flags"]  # another grant's terms cover it

    # a run no grant paid for (free of charge on the center's idle A100s)
    with center.store.write() as s:
        row = s.scalars(select(orm.Job).where(orm.Job.id == job["id"])).one()
        columns = {c.key: getattr(row, c.key) for c in orm.Job.__table__.columns}
        free = orm.Job(**{**columns, "id": new_id("job"), "allocation_id": None})
        s.add(free)
        free_id = free.id
    g = use()
    assert "off_purpose" in g["flags"]
    [unfunded] = [o for o in g["off_purpose"] if o["job_id"] == free_id]
    assert unfunded["funded_by"] is None and "run free of charge" in unfunded["why"]
    page = browser(center, staff.pm.token, "ko").get(f"/ui/grants/{alloc_id}")
    assert page.status_code == 200 and "목적 외 사용" in page.text and free_id in page.text
