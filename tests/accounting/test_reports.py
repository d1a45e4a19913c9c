"""Usage reports and burn-downs on both databases: hand-checked figures, totals that are
the exact sums of the rows and of the ledger, the API's JSON and CSV, and who sees what."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import combinations, pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from axcenter.accounting.burndown import burndown
from axcenter.accounting.reports import (
    DIMENSIONS,
    gpu_hours,
    month_starts,
    prorated,
    usage_report,
    utilization,
)
from axcenter.cli import main as cli_main
from axcenter.client.http import Client
from axcenter.model.access import Role
from axcenter.service.center import Center
from axcenter.store import orm
from axcenter.store.accounts import create_user, issue_token
from axcenter.store.db import Store
from tests.accounting import allocation, at, charge, job, organization, program, project
from tests.api import conftest as api_fixtures
from tests.api.conftest import Account, Tenants
from tests.cli import HttpxTransport

# the real center behind the API (both databases), its tenants and a TestClient
center = api_fixtures.center
tenants = api_fixtures.tenants
client = api_fixtures.client

API = "/api/v1"
H = 3600


@dataclass(frozen=True)
class World:
    ids: dict[str, str]


def seed(s: Any) -> World:
    """Two programs, two organizations, three projects, three grants, seven charges and
    six jobs in January to March 2025 (figures chosen to be checked by hand)."""
    voucher = program(s, "Voucher", 10_000_000, public_share_bp=8000)
    grand = program(s, "Grand", 5_000_000)
    acme = organization(s, "Acme", "SME", "Seoul")
    bolt = organization(s, "Bolt", "large", "Busan")
    vision = project(s, "acme-vision", acme, voucher, "manufacturing")
    bio = project(s, "acme-bio", acme, grand, "bio")
    llm = project(s, "bolt-llm", bolt, voucher, "finance")
    alice = create_user(s, "alice", acme.id, Role.MEMBER)
    bob = create_user(s, "bob", bolt.id, Role.MEMBER)
    # 900 GPU-hours over 90 days: 310 h in January, 280 in February, 310 in March
    a1 = allocation(
        s, vision, voucher, at("2025-01-01"), at("2025-04-01"), {"H100": (900 * H, 2_700_000)}
    )
    a2 = allocation(
        s,
        llm,
        voucher,
        at("2025-02-01"),
        at("2025-03-01"),
        {"A100": (280 * H, 560_000), "H100": (56 * H, 168_000)},
    )
    # 31 GPU-hours over 31 days from Jan 15: 17 h in January, 14 in February
    a3 = allocation(s, bio, grand, at("2025-01-15"), at("2025-02-15"), {"A100": (31 * H, 62_000)})
    charge(s, a1, "H100", 10 * H, 30_000, at("2025-01-10", "12:00:00"))
    charge(s, a1, "H100", 2 * H, 6_001, at("2025-02-05"))
    charge(s, a1, "H100", 1 * H, 3_000, at("2025-03-31", "23:59:59"))
    charge(s, a2, "A100", 20 * H, 40_000, at("2025-02-10"))
    charge(s, a2, "H100", 1_800, 1_500, at("2025-02-20"))
    charge(s, a3, "A100", 1 * H, 2_000, at("2025-01-20"))
    charge(s, a3, "A100", 1, 1, at("2025-02-01"))
    # holds and releases are not usage: they must not show up anywhere
    for kind in ("hold", "release"):
        s.add(
            orm.LedgerEntry(
                at=at("2025-01-10"),
                kind=kind,
                allocation_id=a1.id,
                program_id=voucher.id,
                project_id=vision.id,
                job_id=None,
                gpu_type="H100",
                gpu_seconds=99 * H,
                amount_won=999_999,
                public_won=0,
                copay_won=0,
            )
        )
    job(s, vision, alice, at("2025-01-10", "11:00:00"), at("2025-01-10", "11:00:10"), alloc=a1)
    job(s, vision, alice, at("2025-02-05"), at("2025-02-05", "01:00:00"), alloc=a1)
    job(s, vision, alice, at("2025-03-31", "23:00:00"), at("2025-03-31", "23:00:30"), alloc=a1)
    job(s, llm, bob, at("2025-02-10"), at("2025-02-10", "00:02:00"), gpu_type="A100", alloc=a2)
    job(s, llm, bob, at("2025-02-11"), state="pending")  # never started: no wait
    job(s, bio, alice, at("2025-01-20"), at("2025-01-20", "00:01:00"), gpu_type="A100")
    s.flush()
    return World({"vision": vision.id, "bio": bio.id, "llm": llm.id, "acme": acme.id})


@pytest.fixture
def world(store: Store) -> tuple[Store, World]:
    with store.write() as s:
        w = seed(s)
    return store, w


LEDGER_WON = 30_000 + 6_001 + 3_000 + 40_000 + 1_500 + 2_000 + 1
LEDGER_SECS = 10 * H + 2 * H + H + 20 * H + 1_800 + H + 1
GRANTED_SECS = (900 + 280 + 56 + 31) * H


# -- the rounding helpers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("secs", "hours"),
    [(0, "0.000"), (1, "0.000"), (2, "0.001"), (9, "0.003"), (1_800, "0.500"), (3_600, "1.000")],
)
def test_gpu_hours_round_half_up_to_a_thousandth(secs: int, hours: str) -> None:
    # 1.8 s is 0.0005 h: 2 s rounds up, 1 s down; 9 s is exactly 0.0025 h, rounded up
    assert gpu_hours(secs) == Decimal(hours)


def test_utilization_and_proration_are_exact() -> None:
    assert utilization(1, 3) == Decimal("0.3333")
    assert utilization(2, 3) == Decimal("0.6667")
    assert utilization(5, 0) is None
    start, end = at("2025-01-15"), at("2025-02-15")
    cuts = [start, *month_starts(start, end)[1:], end]
    parts = [prorated(7, start, end, b) - prorated(7, start, end, a) for a, b in pairwise(cuts)]
    assert sum(parts) == 7 and parts == [4, 3]  # 17/31 of 7 is 3.84: half up gives 4


# -- usage reports ------------------------------------------------------------------------


def test_by_project_matches_the_hand_computed_figures(world: tuple[Store, World]) -> None:
    store, _ = world
    with store.read() as s:
        report = usage_report(s, ["project"])
    rows = {r.keys[0]: r for r in report.rows}
    vision, llm, bio = rows["acme-vision"], rows["bolt-llm"], rows["acme-bio"]
    assert vision.granted_gpu_hours == Decimal("900.000")
    assert vision.used_gpu_seconds == 13 * H and vision.used_gpu_hours == Decimal("13.000")
    assert vision.utilization == Decimal("0.0144")  # 13 / 900
    assert (vision.charged_won, vision.public_won, vision.copay_won) == (39_001, 31_200, 7_801)
    assert (vision.runs, vision.jobs) == (3, 3)
    assert vision.wait_mean_s == Decimal("1213.3")  # (10 + 3600 + 30) / 3
    assert vision.wait_p95_s == Decimal("3600.0")  # nearest rank: the 3rd of 3
    assert (llm.charged_won, llm.public_won, llm.copay_won) == (41_500, 33_200, 8_300)
    assert llm.used_gpu_hours == Decimal("20.500") and llm.jobs == 1
    assert llm.wait_mean_s == Decimal("120.0")
    assert bio.used_gpu_seconds == H + 1 and bio.used_gpu_hours == Decimal("1.000")
    assert (bio.charged_won, bio.public_won, bio.copay_won) == (2_001, 2_001, 0)
    total = report.total
    assert total.keys == (None,)
    assert total.charged_won == LEDGER_WON and total.used_gpu_seconds == LEDGER_SECS
    assert total.granted_gpu_seconds == GRANTED_SECS
    assert total.jobs == 5  # the pending job never waited to a start
    assert total.wait_mean_s == Decimal("764.0")  # (10 + 3600 + 30 + 120 + 60) / 5
    assert total.wait_p95_s == Decimal("3600.0")


def test_without_waits_the_money_is_the_same(world: tuple[Store, World]) -> None:
    store, _ = world
    with store.read() as s:
        full = usage_report(s, ["project", "gpu_type"])
        lean = usage_report(s, ["project", "gpu_type"], waits=False)
    money = ("granted_gpu_seconds", "used_gpu_seconds", "charged_won", "public_won", "copay_won")
    assert [(r.keys, *(getattr(r, f) for f in money)) for r in lean.rows] == [
        (r.keys, *(getattr(r, f) for f in money)) for r in full.rows
    ]
    assert lean.total.charged_won == full.total.charged_won == LEDGER_WON
    assert all(r.jobs == 0 and r.wait_p95_s is None for r in (*lean.rows, lean.total))
    assert full.total.jobs == 5


GROUPINGS = [list(c) for n in (0, 1, 2) for c in combinations(DIMENSIONS, n)] + [list(DIMENSIONS)]


@pytest.mark.parametrize("period", [(None, None), ("2025-02-01", "2025-03-01")])
def test_every_grouping_foots_and_reconciles_with_the_ledger(
    world: tuple[Store, World], period: tuple[str | None, str | None]
) -> None:
    store, _ = world
    since, until = (at(p) if p else None for p in period)
    with store.read() as s:
        reports = [usage_report(s, g, since, until) for g in GROUPINGS]
        clauses = [orm.LedgerEntry.kind == "charge"]
        if since and until:
            clauses += [orm.LedgerEntry.at >= since, orm.LedgerEntry.at < until]
        ledger = s.execute(
            select(
                func.sum(orm.LedgerEntry.amount_won),
                func.sum(orm.LedgerEntry.public_won),
                func.sum(orm.LedgerEntry.copay_won),
                func.sum(orm.LedgerEntry.gpu_seconds),
                func.count(),
            ).where(*clauses)
        ).one()
    granted = {r.total.granted_gpu_seconds for r in reports}
    assert len(granted) == 1, "the grant of a period does not depend on the grouping"
    for report in reports:
        t, rows = report.total, report.rows
        assert (t.charged_won, t.public_won, t.copay_won, t.used_gpu_seconds, t.runs) == tuple(
            int(v) for v in ledger
        ), report.group_by
        for column in (
            "granted_gpu_seconds",
            "used_gpu_seconds",
            "granted_gpu_hours",
            "used_gpu_hours",
            "charged_won",
            "public_won",
            "copay_won",
            "runs",
            "jobs",
        ):
            assert getattr(t, column) == sum(getattr(r, column) for r in rows), column
        assert all(r.public_won + r.copay_won == r.charged_won for r in rows)
        assert len({r.keys for r in rows}) == len(rows)
    if since:  # February: a1's 280 h, all of a2, 14 h of a3
        assert granted == {(280 + 280 + 56 + 14) * H}
        assert reports[0].total.charged_won == 6_001 + 40_000 + 1_500 + 1


def test_months_split_grants_and_charges_by_calendar_month(world: tuple[Store, World]) -> None:
    store, _ = world
    with store.read() as s:
        report = usage_report(s, ["project", "month"])
    rows = {r.keys: r for r in report.rows}
    assert [
        rows["acme-vision", m].granted_gpu_hours for m in ("2025-01", "2025-02", "2025-03")
    ] == [
        Decimal("310.000"),
        Decimal("280.000"),
        Decimal("310.000"),
    ]
    assert rows["acme-bio", "2025-01"].granted_gpu_seconds == 17 * H
    assert rows["acme-bio", "2025-02"].granted_gpu_seconds == 14 * H
    # a charge at the first instant of a month belongs to that month; one at its last, too
    assert rows["acme-bio", "2025-02"].used_gpu_seconds == 1
    assert rows["acme-vision", "2025-03"].charged_won == 3_000
    assert rows["acme-vision", "2025-02"].wait_mean_s == Decimal("3600.0")


def test_scope_restricts_rows_and_totals(world: tuple[Store, World]) -> None:
    store, w = world
    with store.read() as s:
        by_ids = usage_report(s, ["organization", "project"], scope={w.ids["llm"]})
        by_clause = usage_report(s, ["project"], scope=orm.Project.organization_id == w.ids["acme"])
    assert [r.keys for r in by_ids.rows] == [("Bolt", "bolt-llm")]
    assert by_ids.total.charged_won == 41_500 and by_ids.total.jobs == 1
    assert {r.keys[0] for r in by_clause.rows} == {"acme-vision", "acme-bio"}
    assert by_clause.total.charged_won == 39_001 + 2_001


def test_unknown_dimension_is_refused(store: Store) -> None:
    with store.read() as s, pytest.raises(ValueError, match="group_by"):
        usage_report(s, ["colour"])


# -- burn-down ----------------------------------------------------------------------------


def test_burndown_forecast_on_a_hand_computed_example(store: Store) -> None:
    with store.write() as s:
        prog = program(s, "Small", 100_000, 8000, starts_at=at("2025-03-01"))
        org = organization(s, "Org")
        prj = project(s, "p", org, prog)
        a = allocation(s, prj, prog, at("2025-03-01"), at("2025-06-01"), {"H100": (99 * H, 99_000)})
        for day, won in (("2025-03-01", 10_000), ("2025-03-05", 7_000), ("2025-03-09", 7_000)):
            charge(s, a, "H100", H, won, at(day, "10:00:00"))
        charge(s, a, "H100", H, 50_000, at("2025-03-11"))  # after "now": not counted
        prog_id = prog.id
    with store.read() as s:
        b = burndown(s, prog_id, at("2025-03-10", "12:00:00"))
        spent = burndown(s, prog_id, at("2025-03-10", "12:00:00"))
    # the last 7 days hold 14,000 won: 2,000 a day; 76,000 left last 38 days
    assert (b.budget_won, b.granted_won, b.charged_won) == (100_000, 99_000, 24_000)
    assert (b.public_won, b.copay_won, b.remaining_won) == (19_200, 4_800, 76_000)
    assert b.rate_won_per_day == Decimal("2000.00")
    assert b.forecast == date(2025, 4, 17)
    assert [d.day.day for d in b.days] == list(range(1, 11))
    assert [d.cumulative_charged_won for d in b.days][::4] == [10_000, 17_000, 24_000]
    assert b.days[-1].remaining_won == 76_000 and spent == b
    with store.read() as s:
        idle = burndown(s, prog_id, at("2025-04-30"))
    assert idle.rate_won_per_day == 0 and idle.forecast is None


def test_burndown_days_are_the_zones_days(store: Store) -> None:
    """A charge at 20:00 UTC is booked on the next day in Seoul (05:00 KST), and the
    forecast is a Seoul day too."""
    seoul = ZoneInfo("Asia/Seoul")
    with store.write() as s:
        prog = program(s, "Zoned", 100_000, starts_at=at("2025-03-01", "00:00:00"))
        prj = project(s, "p", organization(s, "Org"), prog)
        a = allocation(s, prj, prog, at("2025-03-01"), at("2025-06-01"), {"H100": (99 * H, 99_000)})
        charge(s, a, "H100", H, 7_000, at("2025-03-03", "20:00:00"))
        charge(s, a, "H100", H, 1_000, at("2025-03-03", "14:59:00"))  # 23:59 KST, same day
        prog_id = prog.id
    with store.read() as s:
        utc = burndown(s, prog_id, at("2025-03-05"))
        kst = burndown(s, prog_id, at("2025-03-05"), seoul)
    assert {d.day.day: d.charged_won for d in utc.days if d.charged_won} == {3: 8_000}
    assert {d.day.day: d.charged_won for d in kst.days if d.charged_won} == {3: 1_000, 4: 7_000}
    assert kst.days[0].day == date(2025, 3, 1) and kst.days[-1].day == date(2025, 3, 5)
    assert kst.time_zone == "Asia/Seoul" and kst.charged_won == utc.charged_won == 8_000


def test_burndown_of_a_huge_budget_at_a_trickle_has_no_forecast(store: Store) -> None:
    with store.write() as s:
        prog = program(s, "Huge", 10**15)
        prj = project(s, "p", organization(s, "Org"), prog)
        a = allocation(s, prj, prog, at("2025-03-01"), at("2025-06-01"), {"H100": (H, 1)})
        charge(s, a, "H100", 1, 1, at("2025-03-09"))
        prog_id = prog.id
    with store.read() as s:
        b = burndown(s, prog_id, at("2025-03-10"))
    # 10^15 won at 1 won a week: past the last day a date can name
    assert b.rate_won_per_day == Decimal("0.14") and b.forecast is None


def test_burndown_of_a_spent_budget_names_the_day_it_ran_out(store: Store) -> None:
    with store.write() as s:
        prog = program(s, "Tiny", 20_000)
        prj = project(s, "p", organization(s, "Org"), prog)
        a = allocation(s, prj, prog, at("2025-03-01"), at("2025-06-01"), {"H100": (99 * H, 99_000)})
        for day in ("2025-03-01", "2025-03-05", "2025-03-09"):
            charge(s, a, "H100", H, 7_000, at(day))
        prog_id = prog.id
    with store.read() as s:
        b = burndown(s, prog_id, at("2025-03-10"))
    assert b.remaining_won == -1_000 and b.forecast == date(2025, 3, 9)
    assert b.days[0].day == date(2025, 3, 1)  # no program start: from the first charge


# -- through the API and the CLI ----------------------------------------------------------


def _seed_tenants(center: Center, tenants: Tenants) -> dict[str, Account]:
    """Charges on both tenants' projects, and a program manager and a reviewer."""
    extra: dict[str, Account] = {}
    with center.store.write() as s:
        prog = program(s, "Voucher", 1_000_000, 8000)
        ops = s.scalars(select(orm.User).where(orm.User.name == "operator")).one()
        for name in ("acme-vision", "bolt-llm"):
            prj = s.scalars(select(orm.Project).where(orm.Project.name == name)).one()
            a = allocation(
                s, prj, prog, at("2025-01-01"), at("2025-02-01"), {"H100": (100 * H, 300_000)}
            )
            charge(s, a, "H100", 5 * H, 15_001, at("2025-01-05"))
        for role in (Role.PROGRAM_MANAGER, Role.REVIEWER):
            user = create_user(s, role.value, ops.organization_id, role)
            extra[role.value] = Account(role.value, issue_token(s, user.id), None)
    return extra


def test_api_json_and_csv_for_an_operator(
    center: Center, tenants: Tenants, client: TestClient
) -> None:
    _seed_tenants(center, tenants)
    params = {"group_by": ["project", "month"], "since": "2025-01-01T00:00:00"}
    r = client.get(f"{API}/reports/usage", params=params, headers=tenants.operator.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["group_by"] == ["project", "month"]
    assert [row["keys"] for row in body["rows"]] == [
        {"project": "acme-vision", "month": "2025-01"},
        {"project": "bolt-llm", "month": "2025-01"},
    ]
    assert body["total"]["charged_won"] == 30_002
    assert body["total"]["public_won"] + body["total"]["copay_won"] == 30_002
    assert body["total"]["used_gpu_hours"] == "10.000"  # decimals travel as strings
    assert body["total"]["granted_gpu_hours"] == "200.000"
    r = client.get(
        f"{API}/reports/usage", params={**params, "format": "csv"}, headers=tenants.operator.headers
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(r.text)))
    assert [line["project"] for line in lines] == ["acme-vision", "bolt-llm", "TOTAL"]
    assert sum(int(line["charged_won"]) for line in lines[:-1]) == int(lines[-1]["charged_won"])
    assert lines[-1]["used_gpu_hours"] == "10.000" and lines[-1]["month"] == ""


def test_api_scopes_each_role(center: Center, tenants: Tenants, client: TestClient) -> None:
    extra = _seed_tenants(center, tenants)

    def projects(who: Account) -> list[str]:
        r = client.get(f"{API}/reports/usage?group_by=project", headers=who.headers)
        assert r.status_code == 200, r.text
        return [row["keys"]["project"] for row in r.json()["rows"]]

    assert projects(tenants.alice) == ["acme-vision"]
    assert projects(tenants.acme_admin) == ["acme-vision"]
    assert projects(tenants.bob) == ["bolt-llm"]
    assert projects(extra["program_manager"]) == ["acme-vision", "bolt-llm"]
    r = client.get(f"{API}/reports/usage?group_by=project", headers=tenants.alice.headers)
    assert r.json()["total"]["charged_won"] == 15_001
    reviewer = extra["reviewer"].headers
    assert client.get(f"{API}/reports/usage", headers=reviewer).status_code == 403
    assert client.get(f"{API}/reports/burndown/Voucher", headers=reviewer).status_code == 403
    assert (
        client.get(f"{API}/reports/burndown/Voucher", headers=tenants.alice.headers).status_code
        == 403
    )
    bad = client.get(f"{API}/reports/usage?group_by=colour", headers=tenants.operator.headers)
    assert bad.status_code == 422 and "group_by" in bad.json()["detail"]
    missing = client.get(f"{API}/reports/burndown/Nope", headers=tenants.operator.headers)
    assert missing.status_code == 404


def test_api_burndown_json_and_csv(center: Center, tenants: Tenants, client: TestClient) -> None:
    _seed_tenants(center, tenants)
    r = client.get(f"{API}/reports/burndown/Voucher", headers=tenants.operator.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["budget_won"], body["granted_won"], body["charged_won"]) == (
        1_000_000,
        600_000,
        30_002,
    )
    assert body["days"][0]["day"] == "2025-01-05" and body["forecast"] is None
    assert body["time_zone"] == "Asia/Seoul"  # days of the center's zone (09:00 KST)
    r = client.get(f"{API}/reports/burndown/Voucher?format=csv", headers=tenants.operator.headers)
    lines = list(csv.reader(io.StringIO(r.text)))
    assert lines[0][0] == "day (Asia/Seoul)" and lines[-1][:2] == ["TOTAL", "30002"]
    assert sum(int(line[1]) for line in lines[1:-1]) == 30_002


def test_cli_report_commands(
    center: Center,
    tenants: Tenants,
    client: TestClient,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    _seed_tenants(center, tenants)
    transport = HttpxTransport(client._transport)  # the TestClient's in-process ASGI transport
    monkeypatch.setattr(
        cli_main,
        "client_factory",
        lambda cfg: Client(cfg.url, cfg.token, transport=transport),
    )
    env = {"AXC_URL": "http://testserver", "AXC_TOKEN": tenants.operator.token, "COLUMNS": "200"}
    runner = CliRunner()
    result = runner.invoke(cli_main.app, ["report", "usage", "--by", "project"], env=env)
    assert result.exit_code == 0, result.output
    assert "acme-vision" in result.output and "TOTAL" in result.output
    assert "30,002" in result.output
    out = tmp_path / "usage.csv"
    result = runner.invoke(
        cli_main.app, ["report", "usage", "--by", "project", "--csv", str(out)], env=env
    )
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[-1].startswith("TOTAL,")
    result = runner.invoke(cli_main.app, ["report", "burndown", "Voucher"], env=env)
    assert result.exit_code == 0, result.output
    assert "forecast" in result.output
    result = runner.invoke(cli_main.app, ["report", "burndown", "Voucher", "--json"], env=env)
    assert result.exit_code == 0 and '"charged_won": 30002' in result.output
