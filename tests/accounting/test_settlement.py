"""Settlement of a program and monthly statements on both databases: hand-checked figures,
TOTAL rows that are the sums of the rows and of the ledger, the month of the center's zone,
the CSV and XLSX layouts through the API, and who sees what."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axcenter.model.ids import new_id
from axcenter.service.center import Center
from axcenter.store import orm
from tests.accounting import allocation, at, organization, program, project
from tests.api import conftest as api_fixtures
from tests.api.conftest import Tenants
from tests.cli import HttpxTransport

center = api_fixtures.center
tenants = api_fixtures.tenants
client = api_fixtures.client

API = "/api/v1"


def book(
    s: Session,
    alloc: orm.Allocation,
    when: Any,
    list_won: int,
    won: int,
    public: int,
    secs: int = 3600,
    terms: str | None = "region Gwangju -50%; self-paid 20%",
) -> None:
    s.add(
        orm.LedgerEntry(
            at=when,
            kind="charge",
            allocation_id=alloc.id,
            program_id=alloc.program_id,
            project_id=alloc.project_id,
            job_id=None,
            gpu_type="H100",
            gpu_seconds=secs,
            amount_won=won,
            public_won=public,
            copay_won=won - public,
            list_won=list_won,
            terms=terms,
        )
    )


def seed(s: Session) -> dict[str, str]:
    prog = program(s, "Gwangju AI", 10**9, starts_at=at("2025-01-01"))
    other = program(s, "Other", 10**9)
    hanbit = organization(s, "Hanbit", "SME", "Gwangju")
    daon = organization(s, "Daon", "large", "Seoul")
    h1 = project(s, "h1", hanbit, prog)
    b1 = project(s, "b1", daon, prog)
    a1 = allocation(s, h1, prog, at("2025-01-10"), at("2025-06-30"), {"H100": (10**6, 1_000_000)})
    a1.created_at = at("2025-01-10")
    s.add(
        orm.GrantTranche(
            allocation_id=a1.id, seq=2, items={"H100": [5 * 10**5, 500_000]},
            gpu_seconds=5 * 10**5, won=500_000, status="pending",
        )
    )  # fmt: skip
    b = allocation(s, b1, prog, at("2025-01-10"), at("2025-02-20"), {"H100": (10**6, 200_000)})
    b.created_at = at("2025-01-10")
    b.status = "terminated"
    s.add(
        orm.GrantTranche(
            allocation_id=b.id, seq=2, items={"H100": [10**5, 100_000]},
            gpu_seconds=10**5, won=100_000, status="withdrawn",
        )
    )  # fmt: skip
    s.add(
        orm.GrantNotice(
            allocation_id=b.id, kind="reclaim", reason="idle", evidence={},
            gpu_seconds=0, won=50_000, at=at("2025-02-01"),
        )
    )  # fmt: skip
    # a grant of another program: never in this settlement
    x = allocation(s, h1, other, at("2025-01-10"), at("2025-06-30"), {"H100": (10**6, 9_999)})
    book(s, x, at("2025-03-05"), 9_999, 9_999, 9_999, terms=None)
    book(s, a1, at("2025-03-02"), 10_000, 5_000, 4_000)
    book(s, a1, at("2025-03-31", "20:00:00"), 3_001, 1_501, 1_200)  # April 1st in Seoul
    book(s, a1, at("2025-02-10"), 8_000, 4_000, 3_200)  # before the period
    book(s, b, at("2025-02-15"), 20_000, 20_000, 16_000, terms="self-paid 20%")
    s.flush()
    return {"a1": a1.id, "b": b.id, "hanbit": hanbit.id}


def test_settlement_figures_reconcile_with_the_ledger(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    with center.store.write() as s:
        ids = seed(s)
    op = tenants.operator.headers
    params = {"since": "2025-03-01T00:00:00Z", "until": "2025-04-01T00:00:00Z"}
    r = client.get(f"{API}/programs/Gwangju AI/settlement", params=params, headers=op)
    assert r.status_code == 200, r.text
    out = r.json()
    rows = {row["organization"]: row for row in out["rows"]}
    assert set(rows) == {"Daon", "Hanbit"}
    h, b = rows["Hanbit"], rows["Daon"]
    # Hanbit: 1,000,000 released + 500,000 pending; March charges 5,000 + 1,501
    assert (h["granted_won"], h["released_won"], h["pending_won"], h["withdrawn_won"]) == (
        1_500_000, 1_000_000, 500_000, 0,
    )  # fmt: skip
    assert (h["list_won"], h["charged_won"], h["discount_won"]) == (13_001, 6_501, 6_500)
    assert (h["public_won"], h["self_paid_won"], h["runs"]) == (5_200, 1_301, 2)
    # its grant runs to June: what is left is open, not unused
    assert (h["unused_won"], h["open_won"]) == (0, 1_000_000 - 4_000 - 5_000 - 1_501)
    # Daon: ended in February; a withdrawn tranche and a take-back went back to the budget
    assert (b["granted_won"], b["released_won"], b["withdrawn_won"]) == (350_000, 200_000, 150_000)
    assert (b["charged_won"], b["unused_won"], b["open_won"]) == (0, 180_000, 0)
    total = out["total"]
    assert total["organization"] == "TOTAL"
    for column in out["columns"]:
        if isinstance(total[column], int):
            assert total[column] == sum(row[column] for row in out["rows"]), column
    with center.store.read() as s:
        e = orm.LedgerEntry
        charged, public, company = s.execute(
            select(func.sum(e.amount_won), func.sum(e.public_won), func.sum(e.copay_won)).where(
                e.kind == "charge",
                e.program_id
                == s.scalar(select(orm.Program.id).where(orm.Program.name == "Gwangju AI")),
                e.at >= at("2025-03-01"),
                e.at < at("2025-04-01"),
            )
        ).one()
    assert (total["charged_won"], total["public_won"], total["self_paid_won"]) == (
        charged, public, company,
    )  # fmt: skip
    assert total["public_won"] + total["self_paid_won"] == total["charged_won"]
    assert total["list_won"] - total["discount_won"] == total["charged_won"]

    # the CSV layout: two title lines, header, rows, TOTAL
    text = client.get(
        f"{API}/programs/Gwangju AI/settlement", params={**params, "format": "csv"}, headers=op
    ).text
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0][0].startswith("# Settlement of Gwangju AI") and lines[2] == out["columns"]
    assert lines[-1][0] == "TOTAL" and int(lines[-1][lines[2].index("charged_won")]) == charged
    # the XLSX layout: Korean header, English header, rows, TOTAL; the columns defined
    r = client.get(
        f"{API}/programs/Gwangju AI/settlement", params={**params, "format": "xlsx"}, headers=op
    )
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    book_ = load_workbook(io.BytesIO(r.content))
    sheet = book_["settlement"]
    values = [[c.value for c in row] for row in sheet.iter_rows()]
    assert values[2][0] == "기관" and values[3] == out["columns"]
    assert values[-1][0] == "TOTAL" and values[-1][out["columns"].index("charged_won")] == charged
    assert [row[0] for row in book_["columns"].iter_rows(min_row=2, values_only=True)] == out[
        "columns"
    ]

    # who sees what: an organization admin sees only its own; reviewers nothing
    admin = _admin(center, client, "Hanbit")
    mine = client.get(f"{API}/programs/Gwangju AI/settlement", params=params, headers=admin)
    assert [row["organization"] for row in mine.json()["rows"]] == ["Hanbit"]
    assert (
        client.get(
            f"{API}/programs/Gwangju AI/settlement",
            params={"since": "2025-04-01", "until": "2025-03-01"},
            headers=op,
        ).status_code
        == 422
    )
    # the monthly statement: March of Seoul time, per program, project, type and terms
    r = client.get(f"{API}/organizations/Hanbit/statements/2025-03", headers=admin)
    assert r.status_code == 200, r.text
    st = r.json()
    assert st["time_zone"] == "Asia/Seoul"
    assert [(x["program"], x["charged_won"], x["self_paid_won"]) for x in st["rows"]] == [
        ("Gwangju AI", 5_000, 1_000),
        ("Other", 9_999, 0),
    ]
    april = client.get(f"{API}/organizations/Hanbit/statements/2025-04", headers=admin).json()
    assert [x["charged_won"] for x in april["rows"]] == [1_501]  # 20:00 UTC is April in Seoul
    assert st["total"]["charged_won"] == 14_999
    assert (
        client.get(f"{API}/organizations/Daon/statements/2025-03", headers=admin).status_code == 404
    )
    bad = client.get(f"{API}/organizations/Hanbit/statements/2025-13", headers=admin)
    assert bad.status_code == 422 and "month" in bad.text
    # the dashboard offers the same file (the settlement up to now, the caller's scope)
    from tests.web.test_pages import browser

    page = browser(center, tenants.operator.token).get("/ui/programs/Gwangju AI/settlement.xlsx")
    assert page.status_code == 200
    assert load_workbook(io.BytesIO(page.content))["settlement"]["A5"].value == "Daon"
    xlsx = client.get(
        f"{API}/organizations/Hanbit/statements/2025-03", params={"format": "xlsx"}, headers=admin
    )
    sheet = load_workbook(io.BytesIO(xlsx.content))["statement"]
    assert sheet.cell(sheet.max_row, 1).value == "TOTAL"
    assert ids


def _admin(center: Center, client: TestClient, org_name: str) -> dict[str, str]:
    from axcenter.model.access import Role
    from axcenter.store.accounts import create_user, issue_token

    with center.store.write() as s:
        org = s.scalars(select(orm.Organization).where(orm.Organization.name == org_name)).one()
        user = create_user(
            s, f"{org_name.lower()}-admin-{new_id('usr')[-4:]}", org.id, Role.ORG_ADMIN
        )
        return {"Authorization": f"Bearer {issue_token(s, user.id)}"}


def test_an_empty_settlement_has_a_zero_total(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    with center.store.write() as s:
        program(s, "Empty", 10**6, starts_at=at("2025-01-01"))
    r = client.get(f"{API}/programs/Empty/settlement", headers=tenants.operator.headers)
    assert r.status_code == 200
    assert r.json()["rows"] == [] and r.json()["total"]["charged_won"] == 0
    assert timedelta


def test_the_cli_saves_settlements_and_statements(
    client: TestClient, tenants: Tenants, center: Center, monkeypatch: Any, tmp_path: Any
) -> None:
    from typer.testing import CliRunner

    from axcenter.cli import main as cli_main
    from axcenter.client.http import Client

    with center.store.write() as s:
        seed(s)
    transport = HttpxTransport(client._transport)
    monkeypatch.setattr(
        cli_main, "client_factory", lambda cfg: Client(cfg.url, cfg.token, transport=transport)
    )
    env = {"AXC_URL": "http://testserver", "AXC_TOKEN": tenants.operator.token, "COLUMNS": "250"}
    runner = CliRunner()
    args = ["report", "settlement", "Gwangju AI", "--since", "2025-03", "--until", "2025-04"]
    shown = runner.invoke(cli_main.app, args, env=env)
    assert shown.exit_code == 0, shown.output
    assert "Hanbit" in shown.output and "TOTAL" in shown.output and "6,501" in shown.output
    out = tmp_path / "settlement.xlsx"
    saved = runner.invoke(cli_main.app, [*args, "--out", str(out)], env=env)
    assert saved.exit_code == 0, saved.output
    sheet = load_workbook(out)["settlement"]
    assert sheet.cell(sheet.max_row, 1).value == "TOTAL"
    wrong = runner.invoke(cli_main.app, [*args, "--out", str(tmp_path / "x.pdf")], env=env)
    assert wrong.exit_code != 0 and ".csv or .xlsx" in wrong.output
    st = runner.invoke(cli_main.app, ["report", "statement", "Hanbit", "2025-03"], env=env)
    assert st.exit_code == 0 and "region Gwangju -50%" in st.output and "14,999" in st.output
    csv_out = tmp_path / "statement.csv"
    saved = runner.invoke(
        cli_main.app, ["report", "statement", "Hanbit", "2025-03", "-o", str(csv_out)], env=env
    )
    assert saved.exit_code == 0 and csv_out.read_text().splitlines()[-1].startswith("TOTAL,")
