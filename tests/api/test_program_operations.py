"""Running a program through the API on both stores: rules with a regional discount, a
youth-startup discount and a self-paid share that every charge shows; a concentration
cap refused by name at approval; a grant released in two tranches, the second only after
its progress report is accepted; outcome surveys with answers kept with their history;
what each grant owes, and reminders of what is overdue."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from axcenter.cli import main as cli_main
from axcenter.client.http import Client
from axcenter.model.access import Principal, Role
from axcenter.model.money import rate
from axcenter.service import obligations
from axcenter.service.center import Center
from axcenter.service.notifications import notifications
from axcenter.store import orm
from axcenter.store.types import utcnow
from tests.api.conftest import Tenants
from tests.api.test_allocations import REQUESTS, file_request, setup, step
from tests.api.test_jobs import submit, wait
from tests.api.test_programs import API, audit, create_program, ok
from tests.cli import HttpxTransport
from tests.conftest import PG_URL
from tests.web.test_pages import browser

PG_DSN = PG_URL.replace("postgresql+psycopg://", "postgresql://")
H100 = 4500  # won per GPU-hour (tests.api.test_allocations.setup)
RULES = {
    "self_paid_bp": 2000,
    "modifiers": [
        {"kind": "region", "match": "Gwangju", "discount_bp": 5000},
        {"kind": "startup", "discount_bp": 3000},
    ],
    "caps": {"org_gpu_hours": 150},
    "tranches_bp": [5000, 5000],
}


def principal(center: Center, name: str) -> Principal:
    with center.store.read() as s:
        user = s.scalars(select(orm.User).where(orm.User.name == name)).one()
        return Principal(user.id, user.name, user.organization_id, Role(user.role))


def approve_new(client: TestClient, tenants: Tenants, staff: Any, hours: int) -> Any:
    req = file_request(client, tenants.acme_admin, "acme-vision", {"H100": hours})
    return step(client, staff.pm, req["id"], "approve")


def test_rules_tranches_reports_and_caps(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    staff = setup(client, tenants)
    with center.store.write() as s:
        acme = s.scalars(select(orm.Organization).where(orm.Organization.name == "Acme")).one()
        acme.region = "gwangju"  # matched case-insensitively
        acme.youth_startup = True  # 30% < 50%: the larger discount counts, they do not stack
    rules_url = f"{API}/programs/AX 2026/rules"
    # rules are the program's: not an organization's to set; never retroactive
    assert client.post(rules_url, json=RULES, headers=tenants.acme_admin.headers).status_code == 403
    past = {**RULES, "effective_from": (utcnow() - timedelta(days=1)).isoformat()}
    refused = client.post(rules_url, json=past, headers=staff.pm.headers)
    assert refused.status_code == 422 and "retroactive" in refused.text
    bad = {**RULES, "tranches_bp": [5000, 4000]}
    assert client.post(rules_url, json=bad, headers=staff.pm.headers).status_code == 422
    no_match = {**RULES, "modifiers": [{"kind": "region", "discount_bp": 5000}]}
    refused = client.post(rules_url, json=no_match, headers=staff.pm.headers)
    assert refused.status_code == 422 and "modifiers[0].match" in refused.text
    ok(client.post(rules_url, json=RULES, headers=staff.pm.headers), 201)
    listed = ok(client.get(rules_url, headers=tenants.alice.headers))["items"]
    assert [r["in_force"] for r in listed] == [True]
    assert listed[0]["caps"] == {"org_gpu_hours": 150, "org_won": None}
    [change] = audit(client, tenants, action="program.rules")
    assert change["details"]["after"]["self_paid_bp"] == 2000

    # a grant of 100 GPU-hours: 50 now, 50 after the progress report
    request = ok(approve_new(client, tenants, staff, 100))
    alloc_id = request["allocation_id"]
    alloc = ok(client.get(f"{API}/allocations/{alloc_id}", headers=tenants.alice.headers))
    assert alloc["balance"]["items"][0]["granted_gpu_seconds"] == 50 * 3600
    full = rate(100 * 3600, H100)
    program = ok(client.get(f"{API}/programs/AX 2026", headers=staff.pm.headers))
    assert program["allocated_won"] == full  # the pending half stays committed
    tranches = ok(
        client.get(f"{API}/allocations/{alloc_id}/tranches", headers=tenants.alice.headers)
    )
    assert [(t["seq"], t["status"], t["gpu_seconds"]) for t in tranches["tranches"]] == [
        (1, "released", 50 * 3600),
        (2, "pending", 50 * 3600),
    ]
    assert sum(t["won"] for t in tranches["tranches"]) == full

    # the cap: 100 held, 60 more would be 160 > 150 GPU-hours; refused by name, nothing changes
    refused = approve_new(client, tenants, staff, 60)
    assert refused.status_code == 409, refused.text
    assert "concentration cap of AX 2026" in refused.text and "150 GPU-hours" in refused.text
    assert (
        ok(client.get(f"{API}/programs/AX 2026", headers=staff.pm.headers))["allocated_won"] == full
    )

    # obligations: the report for tranche 2 is due at the window's middle
    owed = ok(client.get(f"{API}/programs/AX 2026/obligations", headers=staff.pm.headers))
    [grant] = owed["items"]
    assert (grant["tranches_released"], grant["tranches_total"], grant["report_seq"]) == (1, 2, 2)
    assert grant["report_state"] in ("due", "not_due")
    # a member reads, an org admin reports, a program manager decides
    reports_url = f"{API}/allocations/{alloc_id}/reports"
    body = {"summary": "model v1 trained; pilot with 2 hospitals"}
    assert client.post(reports_url, json=body, headers=tenants.alice.headers).status_code == 403
    assert client.post(reports_url, json=body, headers=tenants.bob.headers).status_code == 404
    first = ok(client.post(reports_url, json=body, headers=tenants.acme_admin.headers), 201)
    again = client.post(reports_url, json=body, headers=tenants.acme_admin.headers)
    assert again.status_code == 409 and "awaits a decision" in again.text
    decide = f"{API}/progress-reports/{first['id']}"
    assert (
        client.post(f"{decide}/accept", json={}, headers=tenants.acme_admin.headers).status_code
        == 403
    )
    assert client.post(f"{decide}/return", json={}, headers=staff.pm.headers).status_code == 422
    ok(
        client.post(
            f"{decide}/return", json={"comment": "add usage figures"}, headers=staff.pm.headers
        )
    )
    owed = ok(client.get(f"{API}/programs/AX 2026/obligations", headers=staff.pm.headers))
    assert owed["items"][0]["report_state"] != "submitted"
    second = ok(client.post(reports_url, json=body, headers=tenants.acme_admin.headers), 201)
    owed = ok(client.get(f"{API}/programs/AX 2026/obligations", headers=staff.pm.headers))
    assert owed["items"][0]["report_state"] == "submitted"
    accepted = ok(
        client.post(
            f"{API}/progress-reports/{second['id']}/accept",
            json={"comment": "fine"},
            headers=staff.pm.headers,
        )
    )
    assert accepted["status"] == "accepted" and accepted["decided_by"] == "pm"
    alloc = ok(client.get(f"{API}/allocations/{alloc_id}", headers=tenants.alice.headers))
    assert alloc["balance"]["items"][0]["granted_gpu_seconds"] == 100 * 3600
    assert alloc["balance"]["granted_won"] == full
    assert (
        ok(client.get(f"{API}/programs/AX 2026", headers=staff.pm.headers))["allocated_won"] == full
    )
    again = client.post(
        f"{API}/progress-reports/{second['id']}/accept", json={}, headers=staff.pm.headers
    )
    assert again.status_code == 409
    assert (
        client.post(reports_url, json=body, headers=tenants.acme_admin.headers).status_code == 409
    )
    [released] = audit(client, tenants, action="grant.tranche")
    assert released["details"]["tranche"] == 2
    history = ok(
        client.get(f"{API}/allocations/{alloc_id}/tranches", headers=tenants.alice.headers)
    )
    assert [r["status"] for r in history["reports"]] == ["returned", "accepted"]

    # a run is charged under the terms: 50% off (Gwangju), 20% self-paid, and says so
    job = submit(
        client, tenants.alice, gpus_per_node=1, gpu_types=["H100"], command=["sleep", "1.2"]
    )
    wait(client, tenants.alice, job["id"])
    charges = ok(client.get(f"{API}/jobs/{job['id']}/charges", headers=tenants.alice.headers))
    [charge] = [c for c in charges["items"] if c["kind"] == "charge"]
    assert charge["list_won"] == rate(charge["gpu_seconds"], H100)
    assert charge["amount_won"] == charge["list_won"] - charge["list_won"] * 5000 // 10_000
    assert charge["public_won"] == charge["amount_won"] * 8000 // 10_000
    assert charge["public_won"] + charge["copay_won"] == charge["amount_won"]
    assert charge["terms"] == "region Gwangju -50%; self-paid 20%"


def test_surveys_obligations_and_reminders(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    staff = setup(client, tenants)
    ok(
        client.post(
            f"{API}/programs/AX 2026/rules",
            json={"tranches_bp": [6000, 4000]},
            headers=staff.pm.headers,
        ),
        201,
    )
    alloc_id = ok(approve_new(client, tenants, staff, 10))["allocation_id"]
    due = (utcnow() + timedelta(days=3)).date().isoformat()
    form = {
        "name": "Outcomes 2026",
        "fields": [
            {"key": "papers", "label_en": "Papers", "label_ko": "논문", "kind": "count"},
            {"key": "revenue", "label_en": "Revenue", "label_ko": "매출", "kind": "won"},
            {"key": "launched", "label_en": "Launched", "label_ko": "출시", "kind": "yes_no"},
            {
                "key": "notes",
                "label_en": "Notes",
                "label_ko": "비고",
                "kind": "text",
                "required": False,
            },
        ],
        "due_dates": [due],
        "at_end": True,
    }
    url = f"{API}/programs/AX 2026/surveys"
    assert client.post(url, json=form, headers=tenants.acme_admin.headers).status_code == 403
    dup = {**form, "fields": [form["fields"][0], form["fields"][0]]}
    assert client.post(url, json=dup, headers=staff.pm.headers).status_code == 422
    created = ok(client.post(url, json=form, headers=staff.pm.headers), 201)
    assert client.post(url, json=form, headers=staff.pm.headers).status_code == 409
    answers = f"{API}/surveys/{created['id']}/answers"

    def answer(who: Any, **values: Any) -> Any:
        body = {"project": "acme-vision", "round": due, "answers": values}
        return client.post(answers, json=body, headers=who.headers)

    refused = answer(tenants.acme_admin, papers=-1, revenue=0, launched=False)
    assert refused.status_code == 422 and "answers.papers" in refused.text
    refused = answer(tenants.acme_admin, papers=1, launched=False)
    assert refused.status_code == 422 and "answers.revenue" in refused.text
    refused = answer(tenants.acme_admin, papers=1, revenue=5, launched="yes")
    assert refused.status_code == 422 and "answers.launched" in refused.text
    refused = answer(tenants.acme_admin, papers=1, revenue=5, launched=True, patents=2)
    assert refused.status_code == 422 and "answers.patents" in refused.text
    bad_round = client.post(
        answers,
        json={"project": "acme-vision", "round": "2001-01-01", "answers": {}},
        headers=tenants.acme_admin.headers,
    )
    assert bad_round.status_code == 422 and "final" in bad_round.text
    assert answer(tenants.bob, papers=1, revenue=5, launched=True).status_code == 404
    assert answer(tenants.alice, papers=1, revenue=5, launched=True).status_code == 403

    # before answering: the dated round is due within days, the final round later
    at_now = obligations.obligations(center, principal(center, "pm"), "AX 2026")
    [grant] = at_now.items
    states = {s.round: s.state for s in grant.surveys}
    assert states == {due: "due", "final": "not_due"}
    # a week later it is overdue: a reminder is written once, and the company hears of it
    later = utcnow() + timedelta(days=7)
    pm = principal(center, "pm")
    [grant] = obligations.obligations(center, pm, "AX 2026", at=later).items
    assert {s.round: s.state for s in grant.surveys}[due] == "overdue"
    sent = obligations.remind(center, pm, "AX 2026", at=later)
    assert [n.subject for n in sent] == [f"survey:Outcomes 2026:{due}"]
    assert obligations.remind(center, pm, "AX 2026", at=later + timedelta(hours=1)) == []
    # the center's own hourly pass sends the same, once a week per obligation
    assert center.reminders.run_once(later + timedelta(days=2)) == 0
    assert center.reminders.run_once(later + timedelta(days=8)) == 1
    feed = notifications(center, principal(center, "acme-admin"))
    assert any(n.kind == "notice.reminder" and n.ref == alloc_id for n in feed)
    assert not any(
        n.kind.startswith("notice.") for n in notifications(center, principal(center, "bob"))
    )
    notices = ok(client.get(f"{API}/allocations/{alloc_id}/notices", headers=tenants.alice.headers))
    assert notices["items"][0]["evidence"]["days_late"] >= 3
    assert (
        client.get(f"{API}/allocations/{alloc_id}/notices", headers=tenants.bob.headers).status_code
        == 404
    )

    # the dashboard: the program page lists what each grant owes, the grant page the rest
    pm_page = browser(center, staff.pm.token).get("/ui/programs/AX 2026")
    assert pm_page.status_code == 200 and f'data-allocation="{alloc_id}"' in pm_page.text
    grant_page = browser(center, tenants.alice.token, "ko").get(f"/ui/grants/{alloc_id}")
    assert grant_page.status_code == 200
    assert "독촉" in grant_page.text and "보고 후 지급" in grant_page.text  # reminder; pending
    assert browser(center, tenants.bob.token).get(f"/ui/grants/{alloc_id}").status_code == 404
    bob_page = browser(center, tenants.bob.token).get("/ui/programs/AX 2026")
    assert bob_page.status_code == 200 and alloc_id not in bob_page.text

    # answered, then corrected: both kept, the latest counts
    ok(answer(tenants.acme_admin, papers=1, revenue=1_000_000, launched=False), 201)
    ok(answer(tenants.acme_admin, papers=2, revenue=1_200_000, launched=True, notes="fix"), 201)
    history = ok(client.get(f"{answers}/acme-vision", headers=tenants.alice.headers))["items"]
    assert [(a["answers"]["papers"], a["current"]) for a in history] == [(1, False), (2, True)]
    assert client.get(f"{answers}/acme-vision", headers=tenants.bob.headers).status_code == 404
    [grant] = obligations.obligations(center, pm, "AX 2026", at=later).items
    assert {s.round: s.state for s in grant.surveys}[due] == "done"
    # the report for tranche 2 falls due at 60% of the window: overdue after the end
    [grant] = obligations.obligations(center, pm, "AX 2026", at=utcnow() + timedelta(days=29)).items
    assert grant.report_state == "overdue" and grant.report_seq == 2
    # a termination withdraws the pending tranche: its won go back to the budget
    before = ok(client.get(f"{API}/programs/AX 2026", headers=staff.pm.headers))["allocated_won"]
    end = file_request(
        client, tenants.acme_admin, "acme-vision", {}, kind="termination", allocation=alloc_id
    )
    ok(step(client, staff.pm, end["id"], "approve"))
    after = ok(client.get(f"{API}/programs/AX 2026", headers=staff.pm.headers))["allocated_won"]
    tranches = ok(
        client.get(f"{API}/allocations/{alloc_id}/tranches", headers=tenants.alice.headers)
    )
    pending = tranches["tranches"][1]
    assert pending["status"] == "withdrawn" and before - after == pending["won"]
    assert REQUESTS  # the requests API is the one of tests.api.test_allocations


def test_the_cli_runs_a_program(
    client: TestClient, tenants: Tenants, center: Center, monkeypatch: Any, tmp_path: Any
) -> None:
    """``axc program set-rules|rules|add-survey|obligations|remind``, ``axc grant
    tranches|report|accept|return|notices`` and ``axc survey answer|answers`` against the
    real center."""
    staff = setup(client, tenants)
    transport = HttpxTransport(client._transport)  # the TestClient's in-process ASGI transport
    monkeypatch.setattr(
        cli_main, "client_factory", lambda cfg: Client(cfg.url, cfg.token, transport=transport)
    )
    runner = CliRunner()

    def axc(who: Any, *args: str) -> Any:
        env = {"AXC_URL": "http://testserver", "AXC_TOKEN": who.token, "COLUMNS": "220"}
        return runner.invoke(cli_main.app, list(args), env=env)

    done = axc(
        staff.pm,
        "program",
        "set-rules",
        "AX 2026",
        "--self-paid",
        "20",
        "--discount",
        "region=Gwangju:50",
        "--discount",
        "startup:30",
        "--cap-gpu-hours",
        "500",
        "--tranches",
        "50,50",
    )
    assert done.exit_code == 0, done.output
    assert "region Gwangju -50%" in done.output and "tranches 50/50" in done.output
    bad = axc(staff.pm, "program", "set-rules", "AX 2026", "--discount", "planet=Mars:50")
    assert bad.exit_code != 0 and "a region, a size or startups" in bad.output
    bad = axc(staff.pm, "program", "set-rules", "AX 2026", "--tranches", "50,40")
    assert bad.exit_code != 0 and "10000" in bad.output
    listed = axc(tenants.alice, "program", "rules", "AX 2026")
    assert listed.exit_code == 0 and "cap 500 GPU-hours" in listed.output
    form = tmp_path / "form.yaml"
    form.write_text(
        "name: Outcomes\n"
        "fields:\n"
        "  - {key: papers, label_en: Papers, label_ko: 논문, kind: count}\n"
        "  - {key: launched, label_en: Launched, label_ko: 출시, kind: yes_no}\n"
        "at_end: true\n",
        encoding="utf-8",
    )
    created = axc(staff.pm, "program", "add-survey", "AX 2026", str(form), "--json")
    assert created.exit_code == 0, created.output
    form_id = json.loads(created.output)["id"]
    alloc_id = ok(approve_new(client, tenants, staff, 100))["allocation_id"]

    owed = axc(staff.pm, "program", "obligations", "AX 2026")
    assert owed.exit_code == 0 and alloc_id in owed.output and "1/2" in owed.output
    filed = axc(tenants.acme_admin, "grant", "report", alloc_id, "-m", "pilot done", "--json")
    assert filed.exit_code == 0, filed.output
    report_id = json.loads(filed.output)["id"]
    refused = axc(tenants.acme_admin, "grant", "accept", report_id)
    assert refused.exit_code != 0 and "may not" in refused.output
    no_reason = axc(staff.pm, "grant", "return", report_id, "-m", " ")
    assert no_reason.exit_code != 0 and "say why" in no_reason.output
    accepted = axc(staff.pm, "grant", "accept", report_id, "-m", "good")
    assert accepted.exit_code == 0 and "accepted (tranche 2)" in accepted.output
    shown = axc(tenants.alice, "grant", "tranches", alloc_id)
    assert shown.exit_code == 0 and "released" in shown.output and "pending" not in shown.output
    answered = axc(
        tenants.acme_admin,
        "survey",
        "answer",
        form_id,
        "papers=3",
        "launched=yes",
        "-p",
        "acme-vision",
        "-r",
        "final",
    )
    assert answered.exit_code == 0, answered.output
    wrong = axc(
        tenants.acme_admin, "survey", "answer", form_id, "papers=many", "launched=no",
        "-p", "acme-vision", "-r", "final",
    )  # fmt: skip
    assert wrong.exit_code != 0 and "answers.papers" in wrong.output
    history = axc(tenants.alice, "survey", "answers", form_id, "acme-vision")
    assert history.exit_code == 0 and "papers=3" in history.output and "*" in history.output
    reminded = axc(staff.pm, "program", "remind", "AX 2026")
    assert reminded.exit_code == 0 and "0 reminders sent" in reminded.output
    notices = axc(tenants.alice, "grant", "notices", alloc_id)
    assert notices.exit_code == 0 and "no notices" in notices.output


def test_two_programs_cannot_both_use_an_organizations_headroom(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    """Program A caps an organization at 150 GPU-hours across programs; program B has no
    cap. While B's approval of 100 hours is uncommitted, A's approval of 100 waits for the
    organization's lock, then sees B's grant and refuses, naming the cap. (SQLite: one
    writer at a time makes this so by construction.)"""
    if center.store.engine.dialect.name != "postgresql":
        pytest.skip("SQLite serializes every write transaction")
    import threading

    from axcenter.service import allocations
    from axcenter.service.errors import Conflict
    from axcenter.service.schemas import ApproveIn

    staff = setup(client, tenants)
    create_program(client, staff.pm, name="B")
    ok(
        client.post(
            f"{API}/programs/AX 2026/rules",
            json={"caps": {"org_gpu_hours": 150}},
            headers=staff.pm.headers,
        ),
        201,
    )
    in_a = file_request(client, tenants.acme_admin, "acme-vision", {"H100": 100})
    in_b = file_request(client, tenants.acme_admin, "acme-vision", {"H100": 100}, program="B")
    pm = principal(center, "pm")
    outcome: list[BaseException | str] = []

    def approve_a() -> None:
        try:
            allocations.approve(center, pm, in_a["id"], ApproveIn())
            outcome.append("approved")
        except Conflict as exc:
            outcome.append(exc)

    with center.store.write() as s:
        allocations.approve_tx(s, pm, in_b["id"], ApproveIn(), utcnow())
        racer = threading.Thread(target=approve_a)
        racer.start()
        with psycopg.connect(PG_DSN, autocommit=True) as watch:  # until A waits on a lock
            for _ in range(2000):
                waiting = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query ILIKE '%organizations%'"
                ).fetchone()
                if waiting and waiting[0]:
                    break
                watch.execute("SELECT pg_sleep(0.005)")
            else:
                raise AssertionError("program A's approval never waited for the organization")
    racer.join(timeout=30)
    [result] = outcome
    assert isinstance(result, Conflict) and "concentration cap of AX 2026" in result.message


def test_the_cli_registers_a_youth_startup(
    client: TestClient, tenants: Tenants, monkeypatch: Any
) -> None:
    transport = HttpxTransport(client._transport)
    monkeypatch.setattr(
        cli_main, "client_factory", lambda cfg: Client(cfg.url, cfg.token, transport=transport)
    )
    env = {"AXC_URL": "http://testserver", "AXC_TOKEN": tenants.operator.token, "COLUMNS": "200"}
    runner = CliRunner()
    args = [
        "org",
        "create",
        "Saessak AI",
        "--size",
        "SME",
        "--region",
        "Gwangju",
        "--youth-startup",
    ]
    assert runner.invoke(cli_main.app, args, env=env).exit_code == 0
    shown = ok(client.get(f"{API}/organizations/Saessak AI", headers=tenants.operator.headers))
    assert shown["youth_startup"] is True
    listed = runner.invoke(cli_main.app, ["org", "list"], env=env)
    line = next(x for x in listed.output.splitlines() if "Saessak AI" in x)
    assert line.rstrip().endswith("yes")


def test_rules_are_withdrawn_only_before_they_take_effect(
    client: TestClient, tenants: Tenants, center: Center, monkeypatch: Any
) -> None:
    """A future rule set can be withdrawn (audited, with what stays in force instead);
    one in force cannot (409 naming why), through the API and ``axc program
    remove-rules``."""
    staff = setup(client, tenants)
    rules_url = f"{API}/programs/AX 2026/rules"
    now_rules = ok(client.post(rules_url, json=RULES, headers=staff.pm.headers), 201)
    later = {**RULES, "self_paid_bp": 5000, "accrual_period": "day"}
    later["effective_from"] = (utcnow() + timedelta(days=30)).isoformat()
    future = ok(client.post(rules_url, json=later, headers=staff.pm.headers), 201)
    assert future["accrual_period"] == "day" and not future["in_force"]
    # not the company's to withdraw
    url = f"{rules_url}/{future['id']}"
    assert client.delete(url, headers=tenants.acme_admin.headers).status_code == 403
    gone = ok(client.delete(url, headers=staff.pm.headers))
    assert gone["id"] == future["id"] and gone["self_paid_bp"] == 5000
    listed = ok(client.get(rules_url, headers=staff.pm.headers))["items"]
    assert [r["id"] for r in listed] == [now_rules["id"]]
    [entry] = audit(client, tenants, action="program.rules_remove")
    assert entry["details"]["withdrawn"]["self_paid_bp"] == 5000
    assert entry["details"]["in_force_instead"]["self_paid_bp"] == 2000
    assert client.delete(url, headers=staff.pm.headers).status_code == 404
    # rules in force priced charges and grants: they stay
    refused = client.delete(f"{rules_url}/{now_rules['id']}", headers=staff.pm.headers)
    assert refused.status_code == 409
    assert "in force since" in refused.text and "set new rules" in refused.text
    assert len(ok(client.get(rules_url, headers=staff.pm.headers))["items"]) == 1

    transport = HttpxTransport(client._transport)
    monkeypatch.setattr(
        cli_main, "client_factory", lambda cfg: Client(cfg.url, cfg.token, transport=transport)
    )
    env = {"AXC_URL": "http://testserver", "AXC_TOKEN": staff.pm.token, "COLUMNS": "220"}
    runner = CliRunner()
    done = runner.invoke(
        cli_main.app,
        ["program", "set-rules", "AX 2026", "--from", "2099-01-01T00:00:00Z", "--accrual", "off"],
        env=env,
    )
    assert done.exit_code == 0, done.output
    assert "accrual off" in done.output
    [queued] = [
        r for r in ok(client.get(rules_url, headers=staff.pm.headers))["items"] if not r["in_force"]
    ]
    done = runner.invoke(
        cli_main.app, ["program", "remove-rules", "AX 2026", queued["id"]], env=env
    )
    assert done.exit_code == 0 and "withdrew" in done.output, done.output
    done = runner.invoke(
        cli_main.app, ["program", "remove-rules", "AX 2026", now_rules["id"]], env=env
    )
    assert done.exit_code != 0 and "cannot be withdrawn" in done.output
