"""A program's review rubric and its preference in review (issue 21 point 5, issue 22's
regional preference): criteria with weights and scales set as effective-dated rules, a
score per criterion stored per review, the weighted total, the preference points of the
applicant's region shown apart from merit; through the API, the CLI and the dashboard.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from axcenter.cli import main as cli_main
from axcenter.client.http import Client
from axcenter.service.center import Center
from axcenter.store import orm
from tests.api.conftest import Tenants
from tests.api.test_allocations import REQUESTS, file_request, setup, step
from tests.api.test_programs import API, audit, ok
from tests.cli import HttpxTransport
from tests.web.test_pages import browser, csrf_for

RUBRIC = {
    "rubric": [
        {"key": "merit", "label": "Technical merit", "weight": 50, "scale": 5},
        {"key": "feasibility", "label": "Feasibility", "weight": 30, "scale": 5},
        {"key": "impact", "label": "Industrial impact", "weight": 20, "scale": 10},
    ],
    "preferences": [
        {"kind": "region", "match": "Gwangju", "points": 5},
        {"kind": "startup", "points": 2},
        {"kind": "size", "match": "large", "points": 9},
    ],
}


def in_region(center: Center, org: str, region: str) -> None:
    with center.store.write() as s:
        row = s.scalars(select(orm.Organization).where(orm.Organization.name == org)).one()
        row.region = region
        row.youth_startup = True
        row.size_class = "SME"


def test_rubric_scores_weighted_total_and_regional_preference(
    client: TestClient, center: Center, tenants: Tenants
) -> None:
    staff = setup(client, tenants)
    admin, pm, rev, rev2 = tenants.acme_admin, staff.pm, staff.reviewer, staff.reviewer2
    in_region(center, "Acme", "gwangju")
    before = file_request(client, admin, "acme-vision", {"A100": 10})["id"]
    rules_url = f"{API}/programs/AX 2026/rules"
    dup = {"rubric": [RUBRIC["rubric"][0], RUBRIC["rubric"][0]]}
    refused = client.post(rules_url, json=dup, headers=pm.headers)
    assert refused.status_code == 422 and "key of its own" in refused.text
    nameless = {"preferences": [{"kind": "region", "points": 5}]}
    refused = client.post(rules_url, json=nameless, headers=pm.headers)
    assert refused.status_code == 422 and "preferences[0].match" in refused.text
    set_rules = ok(client.post(rules_url, json=RUBRIC, headers=pm.headers), 201)
    assert [c["key"] for c in set_rules["rubric"]] == ["merit", "feasibility", "impact"]
    [change] = audit(client, tenants, action="program.rules")
    assert change["details"]["after"]["preferences"][0]["points"] == 5

    # a request filed before the rubric keeps the single score it was filed under
    ok(step(client, pm, before, "assign", reviewers=["rev"]))
    old = ok(step(client, rev, before, "review", score=4))
    assert old["rubric"] == [] and old["mean_score"] == 4.0

    rid = file_request(client, admin, "acme-vision", {"A100": 100})["id"]
    ok(step(client, pm, rid, "assign", reviewers=["rev", "rev2"]))
    seen = ok(client.get(f"{REQUESTS}/{rid}", headers=rev.headers))
    assert [c["weight"] for c in seen["rubric"]] == [50, 30, 20]
    # region and startup apply, size "large" does not; bonus points add up and are named
    assert seen["preference_points"] == 7
    assert seen["preferences"] == ["region Gwangju +5", "youth startup +2"]

    # scores that do not fit the rubric are refused naming the criterion; nothing stored
    for body, field in (
        ({"score": 4}, "scores"),
        ({"scores": {"merit": 5, "feasibility": 4}}, "scores.impact"),
        ({"scores": {"merit": 6, "feasibility": 4, "impact": 8}}, "scores.merit"),
        ({"scores": {"merit": 5, "feasibility": 4, "impact": 8, "luck": 1}}, "scores.luck"),
    ):
        refused = step(client, rev, rid, "review", **body)
        assert refused.status_code == 422 and field in refused.text, (body, refused.text)
    scores = {"merit": 4, "feasibility": 3, "impact": 9}
    mine = ok(step(client, rev, rid, "review", scores=scores, comment="solid"))
    # 100 x (50x4/5 + 30x3/5 + 20x9/10) / 100 = 40 + 18 + 18 = 76
    assert mine["weighted_total"] == 76.0 and mine["total"] == 83.0
    assert mine["mean_score"] is None
    [review] = [e for e in mine["events"] if e["action"] == "reviewed"]
    assert review["scores"] == scores and review["total"] == 76.0

    # the other reviewer reads no total before reviewing; the applicant none before the decision
    blind = ok(client.get(f"{REQUESTS}/{rid}", headers=rev2.headers))
    assert blind["weighted_total"] is None and blind["total"] is None
    assert all(e.get("scores") is None for e in blind["events"])
    early = ok(client.get(f"{REQUESTS}/{rid}", headers=admin.headers))
    assert early["total"] is None and early["preference_points"] == 7
    full = {"merit": 5, "feasibility": 5, "impact": 10}
    both = ok(step(client, rev2, rid, "review", scores=full))
    assert both["weighted_total"] == 88.0 and both["total"] == 95.0  # mean of 76 and 100
    staff_view = ok(client.get(REQUESTS, headers=pm.headers))["items"]
    assert {r["id"]: r["total"] for r in staff_view}[rid] == 95.0

    # the dashboard: the rubric, each criterion's field, the total with the bonus apart
    ko = browser(center, staff.pm.token, lang="ko").get(f"/ui/requests/{rid}").text
    assert "평가 기준표" in ko and "Technical merit" in ko and "우대 가점" in ko
    assert 'data-testid="grand-total">95.00<' in ko and "region Gwangju +5" in ko


def test_rubric_review_on_the_dashboard(
    client: TestClient, center: Center, tenants: Tenants
) -> None:
    staff = setup(client, tenants)
    ok(client.post(f"{API}/programs/AX 2026/rules", json=RUBRIC, headers=staff.pm.headers), 201)
    rid = file_request(client, tenants.acme_admin, "acme-vision", {"A100": 100})["id"]
    ok(step(client, staff.pm, rid, "assign", reviewers=["rev"]))
    web = browser(center, staff.reviewer.token, lang="en")
    form = web.get(f"/ui/requests/{rid}").text
    for key in ("merit", "feasibility", "impact"):
        assert f'name="score.{key}"' in form
    assert 'name="score"' not in form
    token = csrf_for(staff.reviewer.token)
    bad = web.post(
        f"/ui/requests/{rid}/review",
        data={"csrf": token, "score.merit": "five", "score.feasibility": "3", "score.impact": "9"},
    )
    assert bad.status_code == 400 and "whole number" in bad.text
    assert 'href="/ui/requests"' in bad.text  # the navigation stays
    out_of_range = web.post(
        f"/ui/requests/{rid}/review",
        data={"csrf": token, "score.merit": "9", "score.feasibility": "3", "score.impact": "9"},
    )
    assert out_of_range.status_code == 422 and "scored 1..5, not 9" in out_of_range.text
    done = web.post(
        f"/ui/requests/{rid}/review",
        data={"csrf": token, "score.merit": "4", "score.feasibility": "3", "score.impact": "9"},
    )
    assert done.status_code == 303, done.text
    seen = ok(client.get(f"{REQUESTS}/{rid}", headers=staff.pm.headers))
    assert seen["weighted_total"] == 76.0


def test_rubric_from_the_cli(
    client: TestClient, tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = setup(client, tenants)
    transport = HttpxTransport(client._transport)
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
        "--criterion",
        "merit:60:5=Technical merit",
        "--criterion",
        "impact:40=Impact",
        "--prefer",
        "region=Gwangju:5",
    )
    assert done.exit_code == 0, done.output
    assert "rubric merit 60 (1..5), impact 40 (1..5)" in done.output
    assert "review preference region Gwangju +5" in done.output
    bad = axc(staff.pm, "program", "set-rules", "AX 2026", "--criterion", "merit=60")
    assert bad.exit_code != 0 and "KEY:WEIGHT" in bad.output
    rid = file_request(client, tenants.acme_admin, "acme-vision", {"A100": 100})["id"]
    ok(step(client, staff.pm, rid, "assign", reviewers=["rev"]))
    refused = axc(staff.reviewer, "alloc", "review", rid, "--score", "4")
    assert refused.exit_code != 0 and "merit (1..5), impact (1..5)" in refused.output
    reviewed = axc(staff.reviewer, "alloc", "review", rid, "-c", "merit=5", "-c", "impact=3")
    assert reviewed.exit_code == 0, reviewed.output
    shown = axc(staff.pm, "alloc", "show", rid)
    assert "84.00 / 100 = 84.00" in shown.output  # 60x5/5 + 40x3/5; Acme is not in Gwangju
    assert "merit: Technical merit (weight 60, 1..5)" in shown.output
