"""Each role's capabilities on representative endpoints, and 404 versus 403.

A caller who may not know an object exists (another tenant's) gets 404, worded exactly as
for an object that does not exist; a caller who may know it but not act on it gets 403.
The full authorization matrix lives elsewhere; this checks the rule table
(``service.access.RULES``) through the API, and that lists agree with direct reads.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from axcenter.model.access import Principal, Role
from axcenter.service.access import (
    PHRASES,
    RULES,
    Target,
    allowed,
    require,
    visible,
    visible_job_details,
    visible_jobs,
)
from axcenter.service.center import Center
from axcenter.service.errors import Forbidden, NotFound
from axcenter.store import orm
from axcenter.store.accounts import authenticate
from tests.api.conftest import Account, Tenants
from tests.api.test_allocations import REQUESTS, file_request, grant, setup, step
from tests.api.test_programs import API, ok

ROLES = ("op", "pm", "rev", "rev2", "admin", "alice", "bob")


def accounts(client: TestClient, tenants: Tenants) -> tuple[dict[str, Account], str, str]:
    """Everyone, a pending Acme request assigned to ``rev``, and Acme's allocation
    (granted without review: ``rev`` reviews only the pending request)."""
    staff = setup(client, tenants)
    allocation = grant(client, tenants, staff, {"A100": 10})
    request = file_request(client, tenants.acme_admin, "acme-vision", {"A100": 5})
    ok(step(client, staff.pm, request["id"], "assign", reviewers=["rev"]))
    who = {
        "op": tenants.operator,
        "pm": staff.pm,
        "rev": staff.reviewer,
        "rev2": staff.reviewer2,
        "admin": tenants.acme_admin,
        "alice": tenants.alice,
        "bob": tenants.bob,
    }
    return who, request["id"], allocation["id"]


def everyone(status: int, **others: int) -> dict[str, int]:
    return dict.fromkeys(ROLES, status) | others


#: (method, path, body, expected status per role); {req} (pending, assigned to rev),
#: {done} (the approved request) and {alc} (its allocation) are filled in
MATRIX: list[tuple[str, str, Any, dict[str, int]]] = [
    ("GET", "/programs", None, everyone(200)),
    ("POST", "/programs", "program", everyone(403, op=201, pm=201)),
    ("POST", "/prices", {"gpu_type": "A100", "won_per_gpu_hour": 1}, everyone(403, op=201)),
    ("GET", "/prices", None, everyone(200)),
    ("GET", "/audit", None, everyone(403, op=200)),
    ("GET", "/organizations/Acme", None, everyone(404, op=200, pm=200, admin=200, alice=200)),
    ("POST", "/organizations", "organization", everyone(403, op=201, pm=201)),
    (
        "GET",
        "/projects/acme-vision",
        None,
        everyone(200, rev2=404, bob=404),  # rev reviews one of its requests
    ),
    (
        "PATCH",
        "/projects/acme-vision",
        {"objective": "x"},
        everyone(403, op=200, admin=200, rev2=404, bob=404),
    ),
    (
        "POST",
        "/projects",
        "project",
        # the organization is named in the body: one the caller may not see reads as unknown
        everyone(403, op=201, admin=201, bob=422, rev=422, rev2=422),
    ),
    (
        "GET",
        f"{REQUESTS.removeprefix(API)}/{{req}}",
        None,
        everyone(200, alice=403, rev2=404, bob=404),
    ),
    (
        "POST",
        f"{REQUESTS.removeprefix(API)}/{{req}}/review",
        {"score": 3},
        everyone(403, op=200, rev=200, rev2=404, bob=404),
    ),
    (
        "POST",
        f"{REQUESTS.removeprefix(API)}/{{req}}/approve",
        {"items": {"A100": 999}},  # 422 once allowed: nothing is granted by this test
        everyone(403, op=422, pm=422, rev2=404, bob=404),
    ),
    (
        "POST",
        f"{REQUESTS.removeprefix(API)}/{{done}}/withdraw",
        {"comment": "x"},  # the granted request: 409 once allowed (decided already)
        everyone(403, op=409, admin=409, rev=404, rev2=404, bob=404),
    ),
    ("GET", "/allocations/{alc}", None, everyone(200, rev=403, rev2=404, bob=404)),
    (
        "PATCH",
        "/users/alice",
        {"active": True},
        everyone(403, op=200, rev=404, rev2=404, bob=404),
    ),
]


def body_for(kind: Any, role: str) -> Any:
    """Bodies that must differ per caller (unique names)."""
    if kind == "program":
        return {"name": f"call-{role}", "budget_won": 1}
    if kind == "organization":
        return {"name": f"org-{role}"}
    if kind == "project":
        return {"name": f"prj-{role}", "organization": "Acme", "sector": "x"}
    return kind


def test_each_role_on_representative_endpoints(client: TestClient, tenants: Tenants) -> None:
    who, req, alc = accounts(client, tenants)
    done = ok(client.get(f"{API}/allocations/{alc}", headers=who["op"].headers))["request_id"]
    problems = []
    for method, path, body, expected in MATRIX:
        url = API + path.format(req=req, alc=alc, done=done)
        for role in ROLES:
            r = client.request(method, url, json=body_for(body, role), headers=who[role].headers)
            if r.status_code != expected[role]:
                problems.append(f"{role} {method} {path}: {r.status_code}, not {expected[role]}")
    assert problems == []


def test_refusals_across_tenants_look_like_absence(client: TestClient, tenants: Tenants) -> None:
    who, req, alc = accounts(client, tenants)
    bob, rev2 = who["bob"], who["rev2"]
    pairs = [
        (f"{API}/projects/acme-vision", f"{API}/projects/no-such", "project"),
        (f"{REQUESTS}/{req}", f"{REQUESTS}/req_0000000000missing", "request"),
        (f"{API}/allocations/{alc}", f"{API}/allocations/alc_0000000000missing", "allocation"),
    ]
    for real, missing, kind in pairs:
        for caller in (bob, rev2):
            hidden = client.get(real, headers=caller.headers)
            absent = client.get(missing, headers=caller.headers)
            assert (hidden.status_code, absent.status_code) == (404, 404)
            ref = real.rsplit("/", 1)[1]
            assert hidden.json() == {"detail": f"no {kind} '{ref}'"}
            assert absent.json()["detail"].startswith(f"no {kind} '")
    # naming another tenant's user in a body: the same words as for no such user
    r = client.post(
        f"{API}/projects/acme-vision/members", json={"user": "bob"}, headers=who["admin"].headers
    )
    r2 = client.post(
        f"{API}/projects/acme-vision/members", json={"user": "zed"}, headers=who["admin"].headers
    )
    assert (r.status_code, r2.status_code) == (422, 422)
    assert r.json()["detail"].replace("bob", "zed") == r2.json()["detail"]


def test_lists_show_what_direct_reads_allow(client: TestClient, tenants: Tenants) -> None:
    who, req, alc = accounts(client, tenants)

    def ids(role: str, path: str, key: str = "id") -> set[str]:
        items = ok(client.get(API + path, headers=who[role].headers))["items"]
        return {i[key] for i in items}

    requests = {role: ids(role, REQUESTS.removeprefix(API)) for role in ROLES}
    assert requests["rev"] == {req}
    assert requests["rev2"] == requests["bob"] == requests["alice"] == set()
    assert req in requests["admin"] and req in requests["pm"]
    assert ids("alice", "/allocations") == ids("admin", "/allocations") == {alc}
    assert ids("bob", "/allocations") == ids("rev", "/allocations") == set()
    projects = {role: ids(role, "/projects", "name") for role in ROLES}
    assert projects["rev"] == {"acme-vision"}
    assert projects["rev2"] == set()
    assert projects["bob"] == {"bolt-llm"}
    assert projects["admin"] == projects["alice"] == {"acme-vision"}
    assert projects["pm"] == {"acme-vision", "bolt-llm"}
    assert ids("alice", "/organizations", "name") == {"Acme"}
    assert ids("bob", "/users", "name") == {"bob"}
    # a reviewer reads a project's basic information only
    basic = ok(client.get(f"{API}/projects/acme-vision", headers=who["rev"].headers))
    assert (basic["members"], basic["allocations"]) == ([], [])
    full = ok(client.get(f"{API}/projects/acme-vision", headers=who["alice"].headers))
    assert [m["name"] for m in full["members"]] == ["alice"]
    # every list item is readable directly by the same caller
    for role in ROLES:
        for rid in requests[role]:
            assert client.get(f"{REQUESTS}/{rid}", headers=who[role].headers).status_code == 200


def test_program_managers_see_jobs_but_not_other_tenants_logs(
    client: TestClient, tenants: Tenants, center: Center
) -> None:
    who, _, _ = accounts(client, tenants)
    job = ok(
        client.post(
            f"{API}/jobs",
            json={"project": "acme-vision", "command": ["true"], "gpus_per_node": 0},
            headers=who["alice"].headers,
        ),
        201,
    )
    with center.store.read() as s:
        principals = {role: authenticate(s, who[role].token) for role in ROLES}
        for role, expected in (("pm", False), ("op", True), ("alice", True), ("bob", False)):
            me = principals[role]
            assert me is not None
            details = s.scalars(select(orm.Job.id).where(visible_job_details(me))).all()
            assert (job["id"] in details) is expected, role
        pm = principals["pm"]
        assert pm is not None
        assert job["id"] in s.scalars(select(orm.Job.id).where(visible_jobs(pm))).all()


# -- the rule table itself (no database) ----------------------------------------------------


def _principal(role: Role, org: str = "org_a", user: str = "usr_1") -> Principal:
    return Principal(user_id=user, name=user, organization_id=org, role=role)


@pytest.mark.parametrize("action", sorted(RULES))
def test_operators_may_do_everything(action: str) -> None:
    target = Target(kind="thing", name="x", organization_id="org_b")
    require(_principal(Role.OPERATOR), action, target)


def test_rule_table_relations() -> None:
    project = Target(
        kind="project", name="p", organization_id="org_a", members=frozenset({"usr_m"}),
        reviewers=frozenset({"usr_r"}),
    )  # fmt: skip
    member = _principal(Role.MEMBER, user="usr_m")
    outsider_member = _principal(Role.MEMBER, org="org_b", user="usr_x")
    colleague = _principal(Role.MEMBER, user="usr_c")
    reviewer = _principal(Role.REVIEWER, org="org_ops", user="usr_r")
    admin = _principal(Role.ORG_ADMIN, user="usr_adm")
    assert allowed(member, "project.read", project)
    assert allowed(member, "allocation.read", project)
    assert not allowed(member, "request.read", project)
    assert allowed(reviewer, "request.review", project)
    assert not allowed(reviewer, "allocation.read", project)
    assert allowed(admin, "project.write", project) and allowed(admin, "request.change", project)
    assert not allowed(admin, "request.decide", project)
    assert visible(colleague, project) and not allowed(colleague, "project.read", project)
    assert not visible(outsider_member, project)
    with pytest.raises(NotFound, match="no project 'p'"):
        require(outsider_member, "project.read", project)
    with pytest.raises(Forbidden, match=r"^your role \(member\) may not read project 'p'$"):
        require(colleague, "project.read", project)
    with pytest.raises(KeyError):
        require(member, "project.explode", project)


def test_every_action_has_words_for_its_refusal() -> None:
    """A refusal never shows an internal action name such as ``request.decide``."""
    assert set(PHRASES) == set(RULES)
    assert all("." not in phrase for phrase in PHRASES.values())
