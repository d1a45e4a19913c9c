"""The evidence report of a synthetic program year (``benchmarks/program_year.py``, small),
on both databases: every figure the report marks (``data-check``) equals what the ledger,
the grants, the jobs and the survey answers say when summed here independently; the
breakdowns add up to the totals; the what-if replays run on the live center's own
cluster; the CLI writes the page and its PDF."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from benchmarks.program_year import PROGRAM, generate
from sqlalchemy import func, select
from typer.testing import CliRunner

from axcenter.cli import main as cli_main
from axcenter.cli.evidence import render_evidence, scenarios_for, what_ifs
from axcenter.client.http import Client
from axcenter.model.access import Principal, Role
from axcenter.service.center import Center
from axcenter.service.evidence import evidence
from axcenter.store import orm
from axcenter.store.accounts import issue_token
from tests.api import conftest as api_fixtures
from tests.cli import HttpxTransport

center = api_fixtures.center
client = api_fixtures.client

PM = Principal("usr_x", "pm", "org_x", Role.PROGRAM_MANAGER)


def checks(page: str) -> dict[str, int]:
    found = re.findall(r"data-check='([^']+)' data-value='(-?\d+)'", page)
    assert found, "the report marks no figure: the test would pass vacuously"
    return {key: int(value) for key, value in found}


def _ledger(center: Center, program_id: str, since: Any, until: Any) -> dict[str, Any]:
    e = orm.LedgerEntry
    where = [e.kind == "charge", e.program_id == program_id, e.at >= since, e.at < until]
    with center.store.read() as s:
        won, public, company, listed, secs, runs = s.execute(
            select(
                func.coalesce(func.sum(e.amount_won), 0),
                func.coalesce(func.sum(e.public_won), 0),
                func.coalesce(func.sum(e.copay_won), 0),
                func.coalesce(func.sum(func.coalesce(e.list_won, e.amount_won)), 0),
                func.coalesce(func.sum(e.gpu_seconds), 0),
                func.count(),
            ).where(*where)
        ).one()
        by_sector: dict[str, int] = defaultdict(int)
        for sector, amount in s.execute(
            select(orm.Project.sector, e.amount_won)
            .join(orm.Project, orm.Project.id == e.project_id)
            .where(*where)
        ):
            by_sector[sector] += int(amount)
        allocs = [
            a.id
            for a in s.scalars(
                select(orm.Allocation).where(orm.Allocation.program_id == program_id)
            )
        ]
        items = s.scalar(
            select(func.coalesce(func.sum(orm.AllocationItem.won), 0)).where(
                orm.AllocationItem.allocation_id.in_(allocs)
            )
        )
        tranches = s.scalar(
            select(func.coalesce(func.sum(orm.GrantTranche.won), 0)).where(
                orm.GrantTranche.allocation_id.in_(allocs), orm.GrantTranche.status != "released"
            )
        )
        reclaimed = s.scalar(
            select(func.coalesce(func.sum(orm.GrantNotice.won), 0)).where(
                orm.GrantNotice.allocation_id.in_(allocs), orm.GrantNotice.kind == "reclaim"
            )
        )
        orgs = s.scalar(
            select(func.count(func.distinct(orm.Project.organization_id)))
            .join(orm.Allocation, orm.Allocation.project_id == orm.Project.id)
            .where(orm.Allocation.program_id == program_id)
        )
        waits = [
            (started - submitted).total_seconds()
            for submitted, started in s.execute(
                select(orm.Job.submitted_at, orm.Job.started_at).where(
                    orm.Job.allocation_id.in_(allocs),
                    orm.Job.started_at >= since,
                    orm.Job.started_at < until,
                )
            )
        ]
        latest: dict[str, dict[str, Any]] = {}
        for project_id, answers in s.execute(
            select(orm.SurveyAnswer.project_id, orm.SurveyAnswer.answers).order_by(
                orm.SurveyAnswer.id
            )
        ):
            latest[project_id] = answers
    return {
        "totals.charged_won": int(won),
        "totals.public_won": int(public),
        "totals.self_paid_won": int(company),
        "totals.discount_won": int(listed) - int(won),
        "totals.gpu_seconds": int(secs),
        "totals.runs": int(runs),
        "totals.granted_won": int(items) + int(tranches) + int(reclaimed),
        "by_sector": dict(by_sector),
        "reach.organizations": int(orgs),
        "waits": waits,
        "models_built": sum(int(a.get("models_built", 0)) for a in latest.values()),
        "commercialised": sum(1 for a in latest.values() if a.get("commercialised") is True),
    }


def test_every_figure_of_the_report_reconciles_with_the_ledger(
    center: Center, tmp_path: Path
) -> None:
    summary = generate(center, companies=14, seed=5)
    assert summary["grants"] >= 8 and summary["jobs_run"] > 50
    data = evidence(center, PM, PROGRAM).model_dump(mode="json")
    scenarios, money = scenarios_for(data, 8, None)
    results = what_ifs(data, scenarios, workers=1)
    page = render_evidence(data, results, money)
    got = checks(page)
    from datetime import datetime

    since = datetime.fromisoformat(data["since"])
    until = datetime.fromisoformat(data["until"])
    truth = _ledger(center, summary["program_id"], since, until)
    assert truth["totals.charged_won"] > 0 and truth["totals.discount_won"] > 0
    for key in (
        "totals.charged_won",
        "totals.public_won",
        "totals.self_paid_won",
        "totals.discount_won",
        "totals.gpu_seconds",
        "totals.runs",
        "totals.granted_won",
        "reach.organizations",
    ):
        assert got[key] == truth[key], key
    assert got["totals.public_won"] + got["totals.self_paid_won"] == got["totals.charged_won"]
    for dim in ("sector", "size_class", "region", "gpu_type"):
        for column in ("charged_won", "gpu_seconds", "runs"):
            assert got[f"bought.{dim}.TOTAL.{column}"] == got[f"totals.{column}"], (dim, column)
    for sector, won in truth["by_sector"].items():
        assert got[f"bought.sector.{sector}.charged_won"] == won
    assert got["waits.overall.n"] == len(truth["waits"])
    ordered = sorted(truth["waits"])
    p95 = ordered[math.ceil(0.95 * len(ordered)) - 1]
    assert data["waits"]["overall"]["p95_s"] == round(p95, 1)
    assert got["outcomes.Outcomes.models_built"] == truth["models_built"]
    assert got["outcomes.Outcomes.commercialised"] == truth["commercialised"]
    assert got["program.budget_won"] == summary["companies"] * 900 * 4500
    # every marked figure was checked above, or is one of the breakdown rows
    unchecked = [
        k
        for k in got
        if not k.startswith(("totals.", "bought.", "reach.", "waits.", "outcomes.", "program."))
    ]
    assert unchecked == []
    # the what-if: baseline on the live cluster (one H100 node of 4, one A100 of 2), then
    # +8 GPUs of the type the program used; waits never grow with more GPUs
    assert [r.gpus for r in results][:2] == [6, 6 + 8]
    assert results[1].program_p95_wait_s <= results[0].program_p95_wait_s
    assert len(data["history"]) >= got["totals.runs"] - 1
    # and the PDF of the same page
    from weasyprint import HTML

    pdf = tmp_path / "evidence.pdf"
    HTML(string=page).write_pdf(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")


def test_the_cli_writes_the_report(
    center: Center, client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(center, companies=6, seed=2)
    with center.store.write() as s:
        pm = s.scalars(select(orm.User).where(orm.User.name == "pm")).one()
        token = issue_token(s, pm.id)
        admin = s.scalars(select(orm.User).where(orm.User.role == "org_admin")).first()
        assert admin is not None
        admin_token = issue_token(s, admin.id)
    transport = HttpxTransport(client._transport)
    monkeypatch.setattr(
        cli_main, "client_factory", lambda cfg: Client(cfg.url, cfg.token, transport=transport)
    )
    runner = CliRunner()
    out = tmp_path / "evidence.html"
    env = {"AXC_URL": "http://testserver", "AXC_TOKEN": token, "COLUMNS": "200"}
    args = ["report", "evidence", PROGRAM, "-o", str(out), "--workers", "1", "--more-gpus", "4"]
    done = runner.invoke(cli_main.app, args, env=env)
    assert done.exit_code == 0, done.output
    page = out.read_text(encoding="utf-8")
    assert "성과 근거 보고서" in page and "Evidence report" in page and "<svg" in page
    assert "+4 GPUs" in page and "<script" not in page  # self-contained: no script, SVG inline
    refused = runner.invoke(cli_main.app, args, env={**env, "AXC_TOKEN": admin_token})
    assert refused.exit_code != 0 and "operators and program managers" in refused.output
