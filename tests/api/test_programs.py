"""Programs, the price book, organizations, users and tokens, and the audit log, through
the real API on both backends.

The helpers at the top are shared by the other allocation tests (``test_allocations``,
``test_access_roles``, ``test_program_lifecycle``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from axcenter.service.bootstrap import ensure_operator, load_demo
from axcenter.service.center import Center
from axcenter.settings import Settings
from axcenter.store import orm
from tests.api.conftest import Account, Tenants

API = "/api/v1"


@dataclass(frozen=True)
class Staff:
    """The center's program manager and two reviewers (in the operations organization)."""

    pm: Account
    reviewer: Account
    reviewer2: Account


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def add_user(
    client: TestClient, by: Account, name: str, role: str = "member", org: str | None = None
) -> Account:
    body: dict[str, Any] = {"name": name, "role": role}
    if org is not None:
        body["organization"] = org
    out = ok(client.post(f"{API}/users", json=body, headers=by.headers), 201)
    return Account(name, out["token"], None)


def make_staff(client: TestClient, tenants: Tenants) -> Staff:
    op = tenants.operator
    return Staff(
        pm=add_user(client, op, "pm", "program_manager"),
        reviewer=add_user(client, op, "rev", "reviewer"),
        reviewer2=add_user(client, op, "rev2", "reviewer"),
    )


def iso(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def create_program(client: TestClient, who: Account, **body: Any) -> dict[str, Any]:
    body.setdefault("name", "AX 2026")
    body.setdefault("budget_won", 1_000_000_000)
    body.setdefault("public_share_bp", 8000)
    result: dict[str, Any] = ok(client.post(f"{API}/programs", json=body, headers=who.headers), 201)
    return result


def set_price(client: TestClient, who: Account, gpu_type: str, won: int) -> dict[str, Any]:
    body = {"gpu_type": gpu_type, "won_per_gpu_hour": won}
    result: dict[str, Any] = ok(client.post(f"{API}/prices", json=body, headers=who.headers), 201)
    return result


def audit(client: TestClient, tenants: Tenants, **filters: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = ok(
        client.get(f"{API}/audit", params=filters, headers=tenants.operator.headers)
    )["items"]
    return items


# -- programs -----------------------------------------------------------------------------


def test_programs_are_managed_by_operators_and_program_managers(
    client: TestClient, tenants: Tenants
) -> None:
    staff = make_staff(client, tenants)
    created = create_program(
        client,
        staff.pm,
        name="AX Manufacturing",
        budget_won=2_400_000_000,
        public_share_bp=8000,
        starts_at="2026-01-01T00:00:00",
        ends_at="2027-12-31T00:00:00+09:00",
        description="demonstration call",
    )
    assert created["id"].startswith("prg_")
    assert (created["allocated_won"], created["public_share_bp"]) == (0, 8000)
    assert created["starts_at"].startswith("2026-01-01T00:00:00")  # no zone: UTC
    assert created["ends_at"].startswith("2027-12-30T15:00:00")
    create_program(client, tenants.operator, name="Healthcare", public_share_bp=7000)

    # everyone reads programs (they are public calls), by name or id
    for who in (tenants.alice, tenants.bob, tenants.acme_admin, staff.reviewer):
        names = [p["name"] for p in ok(client.get(f"{API}/programs", headers=who.headers))["items"]]
        assert names == ["AX Manufacturing", "Healthcare"]
    by_id = ok(client.get(f"{API}/programs/{created['id']}", headers=tenants.bob.headers))
    assert by_id["name"] == "AX Manufacturing"
    assert client.get(f"{API}/programs/nope", headers=tenants.bob.headers).status_code == 404

    # changes: partial, by operators and program managers only
    patched = ok(
        client.patch(
            f"{API}/programs/AX Manufacturing",
            json={"public_share_bp": 7500, "budget_won": 3_000_000_000},
            headers=staff.pm.headers,
        )
    )
    assert (patched["public_share_bp"], patched["budget_won"]) == (7500, 3_000_000_000)
    assert patched["description"] == "demonstration call"
    for who in (tenants.acme_admin, tenants.alice, staff.reviewer):
        r = client.post(f"{API}/programs", json={"name": "x", "budget_won": 1}, headers=who.headers)
        assert r.status_code == 403, r.text
        r = client.patch(f"{API}/programs/Healthcare", json={"budget_won": 1}, headers=who.headers)
        assert r.status_code == 403, r.text

    # validation and conflicts
    bad = [
        ({"name": "x", "budget_won": 1, "public_share_bp": 10001}, 422, "public_share_bp"),
        ({"name": "x", "budget_won": -1}, 422, "budget_won"),
        (
            {"name": "x", "budget_won": 1, "starts_at": iso(2), "ends_at": iso(1)},
            422,
            "ends_at",
        ),
        ({"name": "Healthcare", "budget_won": 1}, 409, "already exists"),
    ]
    for body, status, words in bad:
        r = client.post(f"{API}/programs", json=body, headers=tenants.operator.headers)
        assert r.status_code == status, (body, r.text)
        assert words in r.json()["detail"]

    actions = [(a["action"], a["actor"]) for a in audit(client, tenants, object_type="program")]
    assert actions == [
        ("program.update", "pm"),
        ("program.create", "operator"),
        ("program.create", "pm"),
    ]


# -- prices -------------------------------------------------------------------------------


def test_price_book_is_set_by_operators_and_never_retroactive(
    client: TestClient, tenants: Tenants
) -> None:
    op, staff = tenants.operator, make_staff(client, tenants)
    first = set_price(client, op, "A100", 2800)
    assert (first["in_force"], first["created_by"]) == (True, "operator")
    later = ok(
        client.post(
            f"{API}/prices",
            json={"gpu_type": "A100", "won_per_gpu_hour": 3000, "effective_from": iso(30)},
            headers=op.headers,
        ),
        201,
    )
    assert later["in_force"] is False
    set_price(client, op, "H100", 4500)

    listed = ok(client.get(f"{API}/prices", headers=tenants.bob.headers))["items"]
    assert [(p["gpu_type"], p["won_per_gpu_hour"], p["in_force"]) for p in listed] == [
        ("A100", 2800, True),
        ("A100", 3000, False),
        ("H100", 4500, True),
    ]
    # as of next month the new A100 price is the one in force
    month = ok(client.get(f"{API}/prices", params={"at": iso(31)}, headers=op.headers))["items"]
    assert [p["won_per_gpu_hour"] for p in month if p["in_force"]] == [3000, 4500]
    assert len(ok(client.get(f"{API}/prices?gpu_type=H100", headers=op.headers))["items"]) == 1

    for who in (staff.pm, tenants.acme_admin, tenants.alice):
        r = client.post(
            f"{API}/prices", json={"gpu_type": "A100", "won_per_gpu_hour": 1}, headers=who.headers
        )
        assert r.status_code == 403, r.text
    past = {"gpu_type": "A100", "won_per_gpu_hour": 1, "effective_from": iso(-1)}
    r = client.post(f"{API}/prices", json=past, headers=op.headers)
    assert r.status_code == 422
    assert "not retroactive" in r.json()["detail"]
    twice = {"gpu_type": "A100", "won_per_gpu_hour": 1, "effective_from": later["effective_from"]}
    assert client.post(f"{API}/prices", json=twice, headers=op.headers).status_code == 409

    changes = audit(client, tenants, action="price.")
    assert [(a["details"]["gpu_type"], a["details"]["won_per_gpu_hour"]) for a in changes] == [
        ("H100", 4500),
        ("A100", 3000),
        ("A100", 2800),
    ]


# -- organizations, users, roles, tokens ----------------------------------------------------


def test_organizations_users_roles_and_tokens(client: TestClient, tenants: Tenants) -> None:
    op, admin, alice, bob = tenants.operator, tenants.acme_admin, tenants.alice, tenants.bob
    staff = make_staff(client, tenants)
    org = ok(
        client.post(
            f"{API}/organizations",
            json={"name": "Daeil Precision", "registration_no": "410-86-00002",
                  "size_class": "SME", "region": "Gwangju"},
            headers=staff.pm.headers,
        ),
        201,
    )  # fmt: skip
    assert (org["size_class"], org["region"]) == ("SME", "Gwangju")
    assert (
        client.post(f"{API}/organizations", json={"name": "x"}, headers=admin.headers).status_code
        == 403
    )
    assert (
        client.post(
            f"{API}/organizations", json={"name": "x", "size_class": "huge"}, headers=op.headers
        ).status_code
        == 422
    )
    # each sees its own organization; operators and program managers all of them
    assert [
        o["name"] for o in ok(client.get(f"{API}/organizations", headers=alice.headers))["items"]
    ] == ["Acme"]
    assert len(ok(client.get(f"{API}/organizations", headers=staff.pm.headers))["items"]) == 4
    assert client.get(f"{API}/organizations/Bolt", headers=alice.headers).status_code == 404
    assert client.get(f"{API}/organizations/Acme", headers=alice.headers).status_code == 200

    # an organization admin creates members of its own organization, and only members
    carol = add_user(client, admin, "carol")
    me = ok(client.get(f"{API}/whoami", headers=carol.headers))
    assert (me["organization"], me["role"]) == ("Acme", "member")
    r = client.post(
        f"{API}/users", json={"name": "boss", "role": "org_admin"}, headers=admin.headers
    )
    assert r.status_code == 403
    r = client.post(
        f"{API}/users", json={"name": "spy", "organization": "Bolt"}, headers=admin.headers
    )
    # another tenant's organization named in a body reads like one that does not exist
    assert (r.status_code, r.json()["detail"]) == (422, "organization: unknown organization 'Bolt'")
    assert client.post(f"{API}/users", json={"name": "x"}, headers=alice.headers).status_code == 403
    assert (
        client.post(f"{API}/users", json={"name": "carol"}, headers=op.headers).status_code == 409
    )

    # who sees whom
    def names(who: Account) -> list[str]:
        return [u["name"] for u in ok(client.get(f"{API}/users", headers=who.headers))["items"]]

    assert names(alice) == ["alice"]
    assert names(admin) == ["acme-admin", "alice", "carol"]
    assert len(names(staff.pm)) == 8

    # roles: operators only, audited; the last operator stays
    assert (
        client.patch(
            f"{API}/users/carol", json={"role": "org_admin"}, headers=admin.headers
        ).status_code
        == 403
    )
    assert (
        client.patch(
            f"{API}/users/carol", json={"role": "org_admin"}, headers=bob.headers
        ).status_code
        == 404
    )
    promoted = ok(
        client.patch(f"{API}/users/carol", json={"role": "org_admin"}, headers=op.headers)
    )
    assert promoted["role"] == "org_admin"
    r = client.patch(f"{API}/users/operator", json={"role": "member"}, headers=op.headers)
    assert r.status_code == 409
    assert "last active operator" in r.json()["detail"]
    [change] = audit(client, tenants, action="user.role")
    assert change["details"] == {
        "before": {"role": "member", "active": True},
        "after": {"role": "org_admin", "active": True},
    }
    assert change["object_id"] == promoted["id"]

    # tokens: shown once, listed without secrets, revoked at once
    issued = ok(
        client.post(f"{API}/users/alice/tokens", json={"name": "ci"}, headers=alice.headers), 201
    )
    second = Account("alice", issued["token"], None)
    assert ok(client.get(f"{API}/whoami", headers=second.headers))["name"] == "alice"
    shown = ok(client.get(f"{API}/users/alice", headers=admin.headers))
    assert [t["name"] for t in shown["tokens"]] == ["", "ci"]
    assert all(t["token"] is None for t in shown["tokens"])
    assert client.post(f"{API}/users/alice/tokens", json={}, headers=bob.headers).status_code == 404
    # an org admin may not mint tokens for another admin (that would be impersonation)
    assert (
        client.post(f"{API}/users/carol/tokens", json={}, headers=admin.headers).status_code == 403
    )
    assert client.delete(f"{API}/tokens/{issued['id']}", headers=bob.headers).status_code == 404
    assert client.delete(f"{API}/tokens/{issued['id']}", headers=admin.headers).status_code == 204
    assert client.get(f"{API}/whoami", headers=second.headers).status_code == 401
    assert client.get(f"{API}/whoami", headers=alice.headers).status_code == 200
    actions = [a["action"] for a in audit(client, tenants, action="token.")]
    assert actions.count("token.revoke") == 1
    assert actions.count("token.issue") == 5  # first tokens of 3 staff and carol, and "ci"


# -- the audit log ------------------------------------------------------------------------


def test_audit_log_is_for_operators_and_records_quota_changes(
    client: TestClient, tenants: Tenants
) -> None:
    op, staff = tenants.operator, make_staff(client, tenants)
    for nominal in (1, 2):
        r = client.put(f"{API}/quotas/bolt-llm/H100", json={"nominal": nominal}, headers=op.headers)
        assert r.status_code == 200, r.text
    assert client.delete(f"{API}/quotas/bolt-llm/H100", headers=op.headers).status_code == 204
    quota = audit(client, tenants, action="quota.")
    assert [(a["action"], a["details"].get("nominal")) for a in quota] == [
        ("quota.delete", None),
        ("quota.set", 2),
        ("quota.set", 1),
    ]
    assert {(a["actor"], a["object_type"]) for a in quota} == {("operator", "project")}

    # paging: newest first, the cursor continues with older rows
    everything = audit(client, tenants)
    first = ok(client.get(f"{API}/audit", params={"limit": 2}, headers=op.headers))
    assert [a["id"] for a in first["items"]] == [a["id"] for a in everything[:2]]
    rest = ok(
        client.get(
            f"{API}/audit",
            params={"limit": 100, "cursor": first["next_cursor"]},
            headers=op.headers,
        )
    )
    assert [a["id"] for a in rest["items"]] == [a["id"] for a in everything[2:]]
    assert rest["next_cursor"] is None
    assert audit(client, tenants, actor="nobody") == []
    assert audit(client, tenants, since=iso(1)) == []

    for who in (staff.pm, staff.reviewer, tenants.acme_admin, tenants.alice):
        assert client.get(f"{API}/audit", headers=who.headers).status_code == 403


# -- the demo center ------------------------------------------------------------------------


def test_demo_center_is_built_through_the_use_cases(client: TestClient, center: Center) -> None:
    operator = ensure_operator(center.store)
    assert operator is not None
    credentials = load_demo(center.store)
    assert load_demo(center.store) == []  # once only
    roles = {c.user: c.role for c in credentials}
    assert (roles["pm-kim"], roles["reviewer-lee"]) == ("program_manager", "reviewer")
    assert sorted(r for r in roles.values() if r == "member") == ["member"] * 5
    op = Account("operator", operator.token, None)
    prices = ok(client.get(f"{API}/prices", headers=op.headers))["items"]
    assert {p["gpu_type"]: p["won_per_gpu_hour"] for p in prices} == {"A100": 2800, "H100": 4500}
    programs = ok(client.get(f"{API}/programs", headers=op.headers))["items"]
    assert sorted(p["public_share_bp"] for p in programs) == [7000, 8000]
    allocations = ok(client.get(f"{API}/allocations", headers=op.headers))["items"]
    granted = {
        a["project"]: {i["gpu_type"]: i["granted_gpu_hours"] for i in a["balance"]["items"]}
        for a in allocations
    }
    # GPUs guaranteed over the 90 days: at most the center's four of each type in all
    assert granted == {
        "hanbit-adas": {"H100": 2 * 2160.0, "A100": 2160.0},
        "daeil-defect-vision": {"A100": 2160.0, "H100": 2160.0},
        "seorin-grid-forecast": {"A100": 2 * 2160.0},
        "medivision-ct-triage": {"H100": 2160.0},
    }
    quotas = ok(client.get(f"{API}/quotas", headers=op.headers))["items"]
    assert {(q["project"], q["gpu_type"]): q["nominal"] for q in quotas}[
        ("hanbit-adas", "H100")
    ] == 2  # the README's first example (2 H100) runs within its guarantee
    pilot = ok(client.get(f"{API}/projects/jinro-pilot", headers=op.headers))
    assert (pilot["allocations"], pilot["allocated"]) == ([], False)
    assert pilot["unallocated_gpu_jobs"] == "free"  # the center's default
    grants = ok(client.get(f"{API}/audit", params={"action": "grant."}, headers=op.headers))
    assert {a["actor"] for a in grants["items"]} == {"pm-kim"}
    # each engineer sees its own project's grant, and its review history is a real one
    engineer = next(c for c in credentials if c.user == "hanbit-engineer")
    mine = Account(engineer.user, engineer.token, None)
    [grant] = ok(client.get(f"{API}/allocations", headers=mine.headers))["items"]
    assert grant["project"] == "hanbit-adas"
    request = ok(client.get(f"{API}/allocation-requests/{grant['request_id']}", headers=op.headers))
    assert [e["action"] for e in request["events"]] == [
        "submitted",
        "assigned",
        "reviewed",
        "approved",
    ]


def test_the_demo_prices_and_grants_only_the_types_the_center_runs(tmp_path: Path) -> None:
    """A center of H100s alone (as the live benchmark starts): the demo neither prices nor
    grants A100s, which the price book refuses for a center without them."""
    settings = Settings(
        data_dir=tmp_path / "data", local_gpus="H100:8x2", stop_jobs_on_shutdown=True
    )
    center = Center(settings)
    center.start()
    try:
        ensure_operator(center.store)
        assert load_demo(center.store)
        with center.store.read() as s:
            assert set(s.scalars(select(orm.Price.gpu_type))) == {"H100"}
            assert set(s.scalars(select(orm.AllocationItem.gpu_type))) == {"H100"}
    finally:
        center.stop()
