"""Usage over time with drill-down (issue 21 point 6): GPU-hours and won per day, week or
month by organization, project, user and job, as each caller may see them; buckets from
the center's first charge (no zeros before it), the one not over yet marked partial.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from axcenter.service.center import Center
from axcenter.store import orm
from axcenter.store.types import utcnow
from tests.accounting import allocation, charge, job, program
from tests.api.conftest import Tenants
from tests.api.test_programs import API, make_staff, ok
from tests.web.test_pages import browser

URL = f"{API}/reports/usage-over-time"


def book(center: Center) -> dict[str, str]:
    """Charges: alice (Acme) 40 days ago and yesterday, bob (Bolt) two days ago."""
    now = utcnow()
    ids = {}
    with center.store.write() as s:
        prog = program(s, "AX usage", 10**9)
        for project, user, when, hours, won in (
            ("acme-vision", "alice", now - timedelta(days=40), 2, 10_000),
            ("acme-vision", "alice", now - timedelta(days=1), 1, 5_000),
            ("bolt-llm", "bob", now - timedelta(days=2), 3, 9_000),
        ):
            prj = s.scalars(select(orm.Project).where(orm.Project.name == project)).one()
            usr = s.scalars(select(orm.User).where(orm.User.name == user)).one()
            alloc = allocation(
                s,
                prj,
                prog,
                now - timedelta(days=60),
                now + timedelta(days=30),
                {"H100": (10**7, 10**9)},
            )
            ran = job(
                s, prj, usr, when - timedelta(hours=hours), when - timedelta(hours=hours), when
            )
            charge(s, alloc, "H100", hours * 3600, won, when, ran.id)
            ids[f"{user}-{hours}"] = ran.id
    return ids


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def get(client: TestClient, who: Any, **params: Any) -> Any:
    return client.get(URL, params=params, headers=who.headers)


def test_by_organization_project_user_and_job(
    client: TestClient, center: Center, tenants: Tenants
) -> None:
    ids = book(center)
    op = tenants.operator
    month = ok(get(client, op, period="month"))
    assert month["level"] == "organization" and month["time_zone"] == "Asia/Seoul"
    # from the month of the first charge (not twelve months of zeros) to this one, partial
    assert len(month["buckets"]) in (2, 3)  # 40 days back: two or three calendar months
    assert [b["partial"] for b in month["buckets"]] == [False] * (len(month["buckets"]) - 1) + [
        True
    ]
    assert (
        month["buckets"][0]["start"][:7] == month["first_at"][:7]
        or month["buckets"][0]["start"] <= month["first_at"]
    )
    series = {s["label"]: s for s in month["series"]}
    assert set(series) == {"Acme", "Bolt"}
    assert series["Acme"]["total_gpu_hours"] == 3.0 and series["Acme"]["total_won"] == 15_000
    assert series["Acme"]["gpu_hours"][0] == 2.0  # the first month holds the first charge
    assert series["Bolt"]["won"][-1] == 9_000 and sum(series["Bolt"]["won"]) == 9_000

    day = ok(get(client, op, period="day"))
    assert len(day["buckets"]) == 30 and day["buckets"][-1]["partial"] is True  # by default
    since = (utcnow() - timedelta(days=100)).isoformat()
    longer = ok(get(client, op, period="day", since=since))
    # asked from 100 days back: it starts at the first charge's day, 40 days back
    assert 40 <= len(longer["buckets"]) <= 42
    first = moment(longer["first_at"])
    assert moment(longer["buckets"][0]["start"]) <= first < moment(longer["buckets"][0]["end"])
    week = ok(get(client, op, period="week"))
    assert all(b["start"][:10] for b in week["buckets"])
    assert sum(sum(s["won"]) for s in week["series"]) == 24_000

    # drill down: Acme's projects, the project's users, alice's jobs
    org = ok(get(client, op, organization="Acme"))
    assert org["level"] == "project" and [s["label"] for s in org["series"]] == ["acme-vision"]
    users = ok(get(client, op, organization="Acme", project="acme-vision"))
    assert users["level"] == "user" and [s["label"] for s in users["series"]] == ["alice"]
    jobs = ok(get(client, op, project="acme-vision", user="alice"))
    assert jobs["level"] == "job"
    assert [j["id"] for j in jobs["jobs"]] == [ids["alice-1"], ids["alice-2"]]
    assert [j["won"] for j in jobs["jobs"]] == [5_000, 10_000]
    bad = get(client, op, period="year")
    assert bad.status_code == 422 and "day, week, month" in bad.text
    orphan = get(client, op, user="alice")
    assert orphan.status_code == 422 and "within a project" in orphan.text


def test_each_caller_sees_only_what_it_may(
    client: TestClient, center: Center, tenants: Tenants
) -> None:
    book(center)
    alice, admin = tenants.alice, tenants.acme_admin
    mine = ok(get(client, alice))
    assert [s["label"] for s in mine["series"]] == ["Acme"]
    assert mine["series"][0]["total_won"] == 15_000  # Bolt's charges counted nowhere
    assert get(client, alice, organization="Bolt").status_code == 404
    assert get(client, alice, project="bolt-llm").status_code == 404
    assert get(client, alice, project="acme-vision", user="bob").status_code == 404
    assert get(client, alice, project="acme-vision", user="nobody").status_code == 404
    assert [s["label"] for s in ok(get(client, admin, organization="Acme"))["series"]] == [
        "acme-vision"
    ]
    staff = make_staff(client, tenants)
    refused = get(client, staff.reviewer)
    assert refused.status_code == 403 and "reviewer" in refused.text
    assert ok(get(client, staff.pm))["series"][0]["label"] in ("Acme", "Bolt")


def test_usage_pages_drill_down(center: Center, client: TestClient, tenants: Tenants) -> None:
    book(center)
    web = browser(center, tenants.operator.token, lang="ko")
    top = web.get("/ui/usage")
    assert top.status_code == 200 and "기간별 사용량" in top.text
    assert "(진행 중)" in top.text and 'data-testid="partial-note"' in top.text
    assert "/ui/usage?period=month&amp;organization=Acme" in top.text
    org = web.get("/ui/usage", params={"organization": "Acme"}).text
    assert "acme-vision" in org and "project=acme-vision" in org
    users = web.get("/ui/usage", params={"organization": "Acme", "project": "acme-vision"}).text
    assert "user=alice" in users
    leaf = web.get(
        "/ui/usage", params={"project": "acme-vision", "user": "alice", "period": "week"}
    )
    assert leaf.status_code == 200 and 'data-testid="usage-jobs"' in leaf.text
    assert "주별" in leaf.text
    member = browser(center, tenants.alice.token, lang="en").get("/ui/usage").text
    assert 'href="/ui/usage"' in member and "Bolt" not in member
    staff = make_staff(client, tenants)
    reviewer = browser(center, staff.reviewer.token, lang="ko").get("/ui/jobs").text
    assert 'href="/ui/usage"' not in reviewer
