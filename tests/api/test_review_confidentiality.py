"""Review confidentiality (docs/security.md): reviewers are anonymous to the applicant,
read no other score before their own, the applicant reads consolidated feedback after
the decision; conflicts of interest are declared per reviewer and checked at
assignment; an assignment ends with the reviewer's role; only assigned reviewers count.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from axcenter.service.center import Center
from tests.api.conftest import Tenants
from tests.api.test_allocations import REQUESTS, file_request, setup, step
from tests.api.test_programs import API, ok
from tests.web.test_pages import browser


def names_in(body: object, *names: str) -> list[str]:
    text = str(body)
    return [n for n in names if f"'{n}'" in text]


def test_reviewers_are_anonymous_and_blind_until_their_own_review(
    client: TestClient, center: Center, tenants: Tenants
) -> None:
    admin = tenants.acme_admin
    staff = setup(client, tenants)
    pm, rev, rev2 = staff.pm, staff.reviewer, staff.reviewer2
    rid = file_request(client, admin, "acme-vision", {"A100": 100})["id"]
    ok(step(client, pm, rid, "assign", reviewers=["rev", "rev2"]))

    # the applicant does not learn who reviews
    seen = ok(client.get(f"{REQUESTS}/{rid}", headers=admin.headers))
    assert names_in(seen, "rev", "rev2") == []
    assert seen["reviewers"] == ["reviewer 1", "reviewer 2"]

    ok(step(client, rev, rid, "review", score=1, comment="weak"))
    # rev2 has not reviewed: no score, no comment, no mean of another reviewer
    blind = ok(client.get(f"{REQUESTS}/{rid}", headers=rev2.headers))
    assert blind["mean_score"] is None
    assert [e for e in blind["events"] if e["action"] == "reviewed"] == []
    assert "weak" not in str(blind)
    # nor does the applicant before the decision
    early = ok(client.get(f"{REQUESTS}/{rid}", headers=admin.headers))
    assert early["mean_score"] is None and "weak" not in str(early)

    after = ok(step(client, rev2, rid, "review", score=5, comment="strong"))
    assert after["mean_score"] == 3.0
    reviews = [(e["actor"], e["score"]) for e in after["events"] if e["action"] == "reviewed"]
    assert reviews == [("reviewer 1", 1), ("rev2", 5)]  # the other stays anonymous

    ok(step(client, pm, rid, "reject", comment="not this round"))
    final = ok(client.get(f"{REQUESTS}/{rid}", headers=admin.headers))
    assert final["mean_score"] == 3.0
    assert [(e["actor"], e["comment"]) for e in final["events"] if e["action"] == "reviewed"] == [
        ("reviewer 1", "weak"),
        ("reviewer 2", "strong"),
    ]
    assert names_in(final, "rev", "rev2") == []
    # staff read everything
    staff_view = ok(client.get(f"{REQUESTS}/{rid}", headers=pm.headers))
    assert staff_view["reviewers"] == ["rev", "rev2"]
    # the dashboard says the same, in the page's language
    page = browser(center, admin.token, lang="ko").get(f"/ui/requests/{rid}").text
    assert "심사위원 1" in page and "strong" in page
    assert ">rev<" not in page and "rev2" not in page


def test_declared_conflicts_are_checked_at_assignment(client: TestClient, tenants: Tenants) -> None:
    admin = tenants.acme_admin
    staff = setup(client, tenants)
    pm, rev = staff.pm, staff.reviewer
    # the reviewer declares Acme a competitor of a company it advises
    declared = client.post(
        f"{API}/users/rev/conflicts",
        json={"organization": "Acme", "reason": "advises Bolt"},
        headers=rev.headers,
    )
    assert declared.status_code == 201, declared.text
    assert [c["organization"] for c in declared.json()["items"]] == ["Acme"]
    rid = file_request(client, admin, "acme-vision", {"A100": 100})["id"]
    refused = step(client, pm, rid, "assign", reviewers=["rev"])
    assert refused.status_code == 422
    assert "conflict of interest" in refused.json()["detail"]
    # a reviewer cannot withdraw it to be assigned; staff can
    assert client.delete(f"{API}/users/rev/conflicts/Acme", headers=rev.headers).status_code == 403
    assert client.delete(f"{API}/users/rev/conflicts/Acme", headers=pm.headers).status_code == 204
    ok(step(client, pm, rid, "assign", reviewers=["rev"]))
    # another reviewer may not declare for rev; an unknown organization is named
    bad = client.post(
        f"{API}/users/rev/conflicts", json={"organization": "Nope"}, headers=rev.headers
    )
    assert bad.status_code == 422 and "Nope" in bad.json()["detail"]
    other = client.post(
        f"{API}/users/rev/conflicts",
        json={"organization": "Bolt"},
        headers=staff.reviewer2.headers,
    )
    assert other.status_code in (403, 404)


def test_an_assignment_ends_with_the_role_and_only_assigned_scores_count(
    client: TestClient, tenants: Tenants
) -> None:
    admin, op = tenants.acme_admin, tenants.operator
    staff = setup(client, tenants)
    pm, rev, rev2 = staff.pm, staff.reviewer, staff.reviewer2
    rid = file_request(client, admin, "acme-vision", {"A100": 100})["id"]
    ok(step(client, pm, rid, "assign", reviewers=["rev", "rev2"]))
    ok(step(client, rev, rid, "review", score=1))
    ok(step(client, rev2, rid, "review", score=5))
    # an operator's score is kept in the history but does not count
    ok(step(client, op, rid, "review", score=1))
    assert ok(client.get(f"{REQUESTS}/{rid}", headers=pm.headers))["mean_score"] == 3.0

    # rev loses the reviewer's role: the assignment ends, and so does its score
    r = client.patch(f"{API}/users/rev", json={"role": "member"}, headers=op.headers)
    assert r.status_code == 200, r.text
    now = ok(client.get(f"{REQUESTS}/{rid}", headers=pm.headers))
    assert now["reviewers"] == ["rev2"]
    assert now["mean_score"] == 5.0
    assert now["events"][-1]["action"] == "unassigned"
    assert step(client, rev, rid, "review", score=2).status_code in (403, 404)
    assert client.get(f"{REQUESTS}/{rid}", headers=rev.headers).status_code in (403, 404)
