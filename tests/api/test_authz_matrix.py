"""The authorization matrix: every endpoint x every role x own / other organization.

The routes come from the application's own table (``create_app(...).openapi()``), so a
new endpoint without a line in ``RULES`` fails ``test_every_route_has_a_rule`` (and a rule
whose route is gone fails too). Each cell is one request by a caller of one role, all of
the organization Acme, at an object of Acme ("own") or of Bolt ("other"):

    A  allowed: 2xx, or 400/409 (the object is in the wrong state: authorization passed)
    V  422: a body names an object the caller may not use, refused like an unknown one
    F  403: the caller may know the object, but its role may not do this
    H  404: the caller may not know the object exists
    S  a list answers 200 and shows the object; N: it answers 200 and hides it

A cell that reveals a bug in the code under test is an ``XFAIL`` entry (strict: it fails
once the bug is fixed, so the entry must then go). One center on SQLite serves the whole
module; routes that delete or change what other cells use get fresh objects per cell.
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from axcenter.api.app import create_app
from axcenter.model.access import Role
from axcenter.model.ids import new_id
from axcenter.service.center import Center
from axcenter.settings import Settings
from axcenter.store import orm
from axcenter.store.accounts import create_organization, create_user, hash_token, issue_token
from tests.accounting import allocation, charge, price, program
from tests.conftest import TEST_HOMES, TEST_PREFIX

API = "/api/v1"
ROLES = ("operator", "program_manager", "reviewer", "org_admin", "member")
VARIANTS = ("own", "other")


def row(spec: str) -> dict[str, str]:
    """``"AA FF FH AH FH"``: the own/other outcomes of each role, in ``ROLES`` order."""
    cells = spec.split()
    assert len(cells) == len(ROLES) and all(len(c) == 2 for c in cells), spec
    return dict(zip(ROLES, cells, strict=True))


#: (method, path under /api/v1) -> outcomes per role (operator, program_manager,
#: reviewer, org_admin, member), each own + other
RULES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/whoami"): row("AA AA AA AA AA"),
    # each caller's own feed
    ("GET", "/notifications"): row("AA AA AA AA AA"),
    ("GET", "/notifications/settings"): row("AA AA AA AA AA"),
    # usage over time, drilled into an organization: its projects' series
    ("GET", "/reports/usage-over-time"): row("SS SS FF SH SH"),
    ("PUT", "/notifications/settings"): row("AA AA AA AA AA"),
    # projects and their members (project.read / project.write)
    ("GET", "/projects"): row("SS SS NN SN SN"),
    # the organization is named in the body: another tenant's reads as unknown (422)
    ("POST", "/projects"): row("AA FF FV AV FV"),
    ("GET", "/projects/{project}"): row("AA AA FH AH AH"),
    # usage over time: who may read the project's allocations
    ("GET", "/projects/{project}/usage"): row("AA AA FH AH AH"),
    ("PATCH", "/projects/{project}"): row("AA FF FH AH FH"),
    # job templates: kept by the project's people, read by program managers too; using
    # one is a submission (program managers submit to no project: 422 as for POST /jobs)
    ("GET", "/projects/{project}/templates"): row("AA AA FH AH AH"),
    ("POST", "/projects/{project}/templates"): row("AA FF FH AH AH"),
    ("GET", "/projects/{project}/templates/{name}"): row("AA AA FH AH AH"),
    ("DELETE", "/projects/{project}/templates/{name}"): row("AA FF FH AH AH"),
    ("POST", "/projects/{project}/templates/{name}/jobs"): row("AA VV FH AH AH"),
    ("POST", "/projects/{project}/members"): row("AA FF FH AH FH"),
    ("DELETE", "/projects/{project}/members/{user}"): row("AA FF FH AH FH"),
    # jobs: members use their projects, org admins their organization's
    ("POST", "/jobs"): row("AA VV VV AV AV"),
    ("POST", "/jobs:batch"): row("AA VV VV AV AV"),
    ("GET", "/jobs"): row("SS SS NN SN SN"),
    ("GET", "/jobs/{job_id}"): row("AA AA HH AH AH"),
    ("POST", "/jobs/{job_id}/cancel"): row("AA FF HH AH FH"),
    ("POST", "/jobs/{job_id}/checkpoint"): row("AA FF HH AH FH"),
    ("POST", "/jobs/{job_id}/resubmit"): row("AA FF HH AH FH"),
    ("POST", "/jobs/{job_id}/hold"): row("AA FF HH AH FH"),
    ("POST", "/jobs/{job_id}/release"): row("AA FF HH AH FH"),
    ("POST", "/jobs/{job_id}/requeue"): row("AA FF HH AH FH"),
    ("PATCH", "/jobs/{job_id}"): row("AA FF HH AH FH"),
    ("GET", "/jobs/{job_id}/wait"): row("AA AA HH AH AH"),
    # a job's log (and environment) stays within its organization, even for PMs
    ("GET", "/jobs/{job_id}/log"): row("AA AF HH AH AH"),
    # a step runs as the job's own account: its owner or an operator, never an org admin
    ("POST", "/jobs/{job_id}/steps"): row("AA FF HH FH FH"),
    ("POST", "/arrays"): row("AA VV VV AV AV"),
    ("GET", "/arrays/{array_id}"): row("AA AA HH AH AH"),
    ("POST", "/arrays/{array_id}/cancel"): row("AA FF HH AH FH"),
    ("GET", "/jobs/{job_id}/charges"): row("AA AA HH AH AH"),
    ("GET", "/accounting/jobs"): row("SS SS NN SN SN"),
    ("GET", "/cluster"): row("AA AA AA AA AA"),
    # center-wide figures that name no tenant
    ("GET", "/cluster/history"): row("AA AA AA AA AA"),
    # the queue shows the pending jobs the caller may see
    ("GET", "/queue"): row("SS SS NN SN SN"),
    # scheduling policy: operators change it, readers see their projects' part
    ("GET", "/quotas"): row("SS SS NN SN SN"),
    ("GET", "/quotas/{project}/{gpu_type}"): row("AA AA HH AH AH"),
    ("PUT", "/quotas/{project}/{gpu_type}"): row("AA FF HH FH FH"),
    ("DELETE", "/quotas/{project}/{gpu_type}"): row("AA FF HH FH FH"),
    ("GET", "/cohorts"): row("SS SS NN SN SN"),
    ("POST", "/cohorts"): row("AA FF FF FF FF"),
    ("PUT", "/cohorts/{name}/parent"): row("AA FF FF FF FF"),
    ("DELETE", "/cohorts/{name}"): row("AA FF FF FF FF"),
    ("PUT", "/projects/{project}/cohort"): row("AA FF HH FH FH"),
    ("GET", "/projects/{project}/limits"): row("AA AA HH AH AH"),
    ("PUT", "/projects/{project}/limits"): row("AA FF HH FH FH"),
    ("GET", "/reservations"): row("SS SS NN SN SN"),
    ("POST", "/reservations"): row("AA FF HH FH FH"),
    ("DELETE", "/reservations/{name}"): row("AA FF FF FF FF"),
    # history and reports
    ("GET", "/export/history"): row("SS SS NN SN SN"),
    ("GET", "/reports/usage"): row("SS SS FF SN SN"),
    ("GET", "/reports/burndown/{program}"): row("AA AA FF FF FF"),
    # programs and prices: public within the center, managed by operators (and PMs)
    ("GET", "/programs"): row("SS SS SS SS SS"),
    ("POST", "/programs"): row("AA AA FF FF FF"),
    ("GET", "/programs/{program}"): row("AA AA AA AA AA"),
    ("PATCH", "/programs/{program}"): row("AA AA FF FF FF"),
    ("GET", "/prices"): row("AA AA AA AA AA"),
    ("POST", "/prices"): row("AA FF FF FF FF"),
    ("DELETE", "/prices/{price_id}"): row("AA FF FF FF FF"),
    ("GET", "/audit"): row("AA FF FF FF FF"),
    # organizations, users, tokens
    ("GET", "/organizations"): row("SS SS SN SN SN"),
    ("POST", "/organizations"): row("AA AA FF FF FF"),
    ("GET", "/organizations/{organization}"): row("AA AA AH AH AH"),
    ("GET", "/users"): row("SS SS NN SN NN"),
    ("POST", "/users"): row("AA FF FV AV FV"),
    ("GET", "/users/{user}"): row("AA AA FH AH FH"),
    ("PATCH", "/users/{user}"): row("AA FF FH FH FH"),
    ("PUT", "/users/{user}/unix-account"): row("AA FF FH FH FH"),
    ("POST", "/users/{user}/tokens"): row("AA FF FH AH FH"),
    ("POST", "/users/{user}/password-reset"): row("AA FF FH FH FH"),
    # a reviewer's conflicts of interest (declared by the reviewer or staff)
    ("GET", "/users/{user}/conflicts"): row("AA AA FH AH FH"),
    ("POST", "/users/{user}/conflicts"): row("AA AA FH FH FH"),
    ("DELETE", "/users/{user}/conflicts/{organization}"): row("AA AA FH FH FH"),
    ("DELETE", "/tokens/{token_id}"): row("AA FF FH AH FH"),
    ("POST", "/tokens/{token_id}/rotate"): row("AA FF FH AH FH"),
    # allocation requests: filed by org admins, assigned and decided by PMs
    ("GET", "/allocation-requests"): row("SS SS NN SN NN"),
    ("POST", "/allocation-requests"): row("AA FF FH AH FH"),
    ("GET", "/allocation-requests/{request_id}"): row("AA AA FH AH FH"),
    ("POST", "/allocation-requests/{request_id}/assign"): row("AA AA FH FH FH"),
    ("POST", "/allocation-requests/{request_id}/review"): row("AA FF FH FH FH"),
    ("POST", "/allocation-requests/{request_id}/approve"): row("AA AA FH FH FH"),
    ("POST", "/allocation-requests/{request_id}/reject"): row("AA AA FH FH FH"),
    ("POST", "/allocation-requests/{request_id}/return"): row("AA AA FH FH FH"),
    ("POST", "/allocation-requests/{request_id}/resubmit"): row("AA FF FH AH FH"),
    ("POST", "/allocation-requests/{request_id}/withdraw"): row("AA FF FH AH FH"),
    # its files: changed by the applicant's admin, read by whoever reads the request
    ("POST", "/allocation-requests/{request_id}/attachments"): row("AA FF FH AH FH"),
    ("GET", "/allocation-requests/{request_id}/attachments/{attachment_id}"): row("AA AA FH AH FH"),
    ("DELETE", "/allocation-requests/{request_id}/attachments/{attachment_id}"): row(
        "AA FF FH AH FH"
    ),
    ("GET", "/allocations"): row("SS SS NN SN SN"),
    ("GET", "/allocations/{allocation_id}"): row("AA AA FH AH AH"),
    # running a program: rules and forms are the program's; reports and answers are filed
    # by the organization's admins (as requests are), decided by program managers
    ("GET", "/programs/{program}/rules"): row("AA AA AA AA AA"),
    ("POST", "/programs/{program}/rules"): row("AA AA FF FF FF"),
    ("DELETE", "/programs/{program}/rules/{rules_id}"): row("AA AA FF FF FF"),
    ("GET", "/programs/{program}/surveys"): row("AA AA AA AA AA"),
    ("POST", "/programs/{program}/surveys"): row("AA AA FF FF FF"),
    ("GET", "/programs/{program}/obligations"): row("SS SS NN SN SN"),
    ("POST", "/programs/{program}/reminders"): row("AA AA FF FF FF"),
    ("GET", "/allocations/{allocation_id}/tranches"): row("AA AA FH AH AH"),
    ("GET", "/allocations/{allocation_id}/notices"): row("AA AA FH AH AH"),
    ("POST", "/allocations/{allocation_id}/reports"): row("AA FF FH AH FH"),
    ("POST", "/progress-reports/{report_id}/accept"): row("AA AA FH FH FH"),
    ("POST", "/progress-reports/{report_id}/return"): row("AA AA FH FH FH"),
    ("POST", "/surveys/{form_id}/answers"): row("AA FF FH AH FH"),
    ("GET", "/surveys/{form_id}/answers/{project}"): row("AA AA FH AH AH"),
    # settlement: usage's scope (reviewers see none); statements: the organization's readers
    ("GET", "/programs/{program}/settlement"): row("SS SS FF SN SN"),
    ("GET", "/organizations/{organization}/statements/{month}"): row("AA AA AH AH AH"),
    # use monitoring: read in the grants' scope; acted on by program managers
    ("GET", "/programs/{program}/use"): row("SS SS FF SN SN"),
    # the evidence report is program-wide (every tenant's figures), as a burn-down
    ("GET", "/programs/{program}/evidence"): row("AA AA FF FF FF"),
    ("POST", "/allocations/{allocation_id}/warn"): row("AA AA FH FH FH"),
    ("POST", "/allocations/{allocation_id}/suspend"): row("AA AA FH FH FH"),
    ("POST", "/allocations/{allocation_id}/resume"): row("AA AA FH FH FH"),
    ("POST", "/allocations/{allocation_id}/reclaim"): row("AA AA FH FH FH"),
}

#: (method, path, role, variant) -> why the cell fails today (a bug found by the matrix)
_ARRAY_CANCEL = (
    "service.arrays.cancel_array cancels every visible task: it skips the ownership check "
    "of service.jobs.cancel (operators, the job's owner, its organization's admins), so "
)
#: cells known to be wrong, each with the bug it shows (strict: fixed bugs fail loudly)
XFAIL: dict[tuple[str, str, str, str], str] = {}


def _routes() -> list[tuple[str, str]]:
    spec = create_app(cast(Center, None)).openapi()["paths"]
    return sorted(
        (method.upper(), path.removeprefix(API))
        for path, methods in spec.items()
        if path.startswith(API + "/")
        for method in methods
    )


ROUTES = _routes()


def test_every_route_has_a_rule() -> None:
    missing = [f"{m} {API}{p}" for m, p in ROUTES if (m, p) not in RULES]
    stale = [f"{m} {API}{p}" for m, p in RULES if (m, p) not in ROUTES]
    assert not missing, "no authorization rule for: " + ", ".join(missing) + " (add to RULES)"
    assert not stale, "rules for routes that no longer exist: " + ", ".join(stale)


def _cells() -> Iterator[Any]:
    for method, path in ROUTES:
        rule = RULES.get((method, path))
        if rule is None:
            continue  # test_every_route_has_a_rule names it
        for role in ROLES:
            for variant, expected in zip(VARIANTS, rule[role], strict=True):
                marks = []
                reason = XFAIL.get((method, path, role, variant))
                if reason:
                    marks.append(pytest.mark.xfail(strict=True, reason=reason))
                yield pytest.param(
                    method,
                    path,
                    role,
                    variant,
                    expected,
                    id=f"{method} {path} {role} {variant}",
                    marks=marks,
                )


# -- the world ------------------------------------------------------------------------------

_serial = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_serial)}"


def future(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


@dataclass
class Side:
    """One organization's objects: Acme's are "own" for every caller, Bolt's "other"."""

    org_id: str
    org: str
    project_id: str
    project: str
    user: str  # a member of the project other than the caller
    job: str  # a finished job of ``user``
    queued: str  # a pending job of ``user`` (too big to ever start)
    array: str
    request: str
    allocation: str


@dataclass
class World:
    center: Center
    client: TestClient
    tokens: dict[str, str]  # role -> token of the caller (all of Acme)
    sides: dict[str, Side]  # "own" (Acme), "other" (Bolt)
    program: str
    panel_reviewer: str  # a reviewer outside both organizations, for assignments
    node: str
    survey: str  # an outcome-survey form of the program

    def write(self) -> Any:
        return self.center.store.write()


def _side(s: Any, name: str, prog: orm.Program, caller_member: orm.User | None) -> Side:
    """An organization's objects: a member (not a caller) and their project (with the
    member caller in it, for Acme), a finished job and a finished two-task array, an H100
    quota, an allocation with one charge, and a request filed by the organization's admin."""
    org = s.get(orm.Organization, caller_member.organization_id) if caller_member else None
    org = org or create_organization(s, name.title())
    user = create_user(s, f"{name}-dev", org.id, Role.MEMBER)
    admin = create_user(s, f"{name}-filer", org.id, Role.ORG_ADMIN)
    prj = orm.Project(
        id=new_id("prj"),
        name=f"{name}-p",
        organization_id=org.id,
        program_id=prog.id,
        sector="bio",
    )
    s.add(prj)
    s.flush()
    for member in filter(None, (user, caller_member)):
        s.add(orm.ProjectMember(project_id=prj.id, user_id=member.id))
    start, end = datetime.now(UTC) - timedelta(hours=2), datetime.now(UTC) - timedelta(hours=1)
    home = str(TEST_HOMES / f"{TEST_PREFIX}{user.name}")  # made at its first (re)submission
    array_id = new_id("arr")
    jobs = []
    for index in (None, 0, 1):
        job = orm.Job(
            id=new_id("job"),
            project_id=prj.id,
            user_id=user.id,
            command=["true"],
            workdir=home,
            env={},
            gpus_per_node=0,
            nodes=1,
            cpus_per_node=1,
            memory_mb_per_node=64,
            time_limit_s=60,
            priority=0,
            gpu_types=[],
            state="succeeded",
            submitted_at=start,
            started_at=start,
            ended_at=end,
            exit_code=0,
            array_id=None if index is None else array_id,
            array_index=index,
        )
        s.add(job)
        jobs.append(job)
    queued = orm.Job(
        id=new_id("job"),
        project_id=prj.id,
        user_id=user.id,
        command=["true"],
        workdir=home,
        env={},
        gpus_per_node=64,
        nodes=1,
        cpus_per_node=1,
        memory_mb_per_node=64,
        time_limit_s=60,
        priority=0,
        gpu_types=[],
        state="pending",
        submitted_at=start,
    )
    s.add(queued)
    s.add(orm.ProjectQuota(project_id=prj.id, gpu_type="H100", nominal=1))
    alloc = allocation(
        s,
        prj,
        prog,
        datetime.now(UTC) - timedelta(days=1),
        datetime.now(UTC) + timedelta(days=30),
        {"H100": (100 * 3600, 300_000)},
    )
    charge(s, alloc, "H100", 3600, 3_000, start)
    now = datetime.now(UTC)
    req = orm.AllocationRequest(
        id=new_id("req"),
        project_id=prj.id,
        program_id=prog.id,
        kind="new",
        items={"H100": 10},
        starts_at=now,
        ends_at=now + timedelta(days=30),
        justification="matrix",
        status="submitted",
        created_by=admin.id,
        created_at=now,
        updated_at=now,
    )
    s.add(req)
    s.flush()
    return Side(
        org_id=org.id,
        org=org.name,
        project_id=prj.id,
        project=prj.name,
        user=user.name,
        job=jobs[0].id,
        queued=queued.id,
        array=array_id,
        request=req.id,
        allocation=alloc.id,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("authz")
    settings = Settings(
        stop_jobs_on_shutdown=True,  # a test leaves no job behind
        data_dir=tmp / "data",
        database_url=f"sqlite:///{tmp / 'axcenter.db'}",
        local_gpus="H100:4",
        kill_grace_s=1.0,
        sched_min_runtime_s=0.0,
    )
    center = Center(settings)
    center.start()
    try:
        with center.store.write() as s:
            acme = create_organization(s, "Acme")
            callers = {role: create_user(s, role, acme.id, Role(role)) for role in ROLES}
            tokens = {role: issue_token(s, u.id) for role, u in callers.items()}
            prog = program(s, "Voucher", 10**12)
            price(s, "H100", 3_000, datetime.now(UTC) - timedelta(days=2))
            own = _side(s, "acme", prog, callers["member"])
            other = _side(s, "bolt", prog, None)
            panel = create_organization(s, "Panel")
            create_user(s, "panel-reviewer", panel.id, Role.REVIEWER)
            cohort = orm.Cohort(id=new_id("coh"), name="matrix-cohort")
            s.add(cohort)
            s.flush()
            for side in (own, other):
                s.get(orm.Project, side.project_id).cohort_id = cohort.id
            node = s.query(orm.Node).first()
            assert node is not None
            node_name = node.name
            survey_id = new_id("srv")
            field = {"key": "notes", "label_en": "Notes", "label_ko": "비고", "kind": "text"}
            s.add(
                orm.SurveyForm(
                    id=survey_id,
                    program_id=prog.id,
                    name="matrix-survey",
                    fields=[{**field, "required": False}],
                    due_dates=[],
                    at_end=True,
                )
            )
        with TestClient(create_app(center)) as client:
            yield World(
                center,
                client,
                tokens,
                {"own": own, "other": other},
                "Voucher",
                "panel-reviewer",
                node_name,
                survey_id,
            )
    finally:
        center.stop()


# -- one request per cell -------------------------------------------------------------------


@dataclass
class Call:
    url: str
    body: Any = None
    marker: str | None = None  # what a list shows when the object is visible
    files: dict[str, tuple[str, bytes]] | None = None  # a multipart upload instead of JSON


def _fresh_member(w: World, side: Side, *, join: bool) -> str:
    """A new user of ``side``'s organization, a member of its project if ``join``."""
    with w.write() as s:
        user = create_user(s, unique(f"{side.project}-tmp"), side.org_id, Role.MEMBER)
        if join:
            s.add(orm.ProjectMember(project_id=side.project_id, user_id=user.id))
        return user.name


def _fresh_token(w: World, side: Side) -> str:
    with w.write() as s:
        user = s.query(orm.User).filter(orm.User.name == side.user).one()
        secret = issue_token(s, user.id, name="matrix")
        token = s.query(orm.ApiToken).filter(orm.ApiToken.token_hash == hash_token(secret)).one()
        return token.id


def _fresh_job(w: World, side: Side) -> str:
    """A copy of ``side``'s finished job (a requeue puts it back in the queue)."""
    with w.write() as s:
        job = s.get(orm.Job, side.job)
        columns = {c.key: getattr(job, c.key) for c in orm.Job.__table__.columns}
        copy = orm.Job(**{**columns, "id": new_id("job"), "array_id": None, "array_index": None})
        s.add(copy)
        return copy.id


def _fresh_price(w: World) -> str:
    """A price that has not taken effect (only those may be removed)."""
    price_id = new_id("prc")
    when = datetime.now(UTC) + timedelta(days=400 + next(_serial))
    with w.write() as s:
        s.add(orm.Price(id=price_id, gpu_type="H100", won_per_gpu_hour=1, effective_from=when))
    return price_id


def _fresh_rules(w: World) -> str:
    """Rules of the program that have not taken effect (only those may be withdrawn)."""
    rules_id = new_id("rul")
    when = datetime.now(UTC) + timedelta(days=400 + next(_serial))
    with w.write() as s:
        s.add(
            orm.ProgramRule(
                id=rules_id,
                program_id=s.scalars(
                    select(orm.Program.id).where(orm.Program.name == w.program)
                ).one(),
                effective_from=when,
                rules={},
            )
        )
    return rules_id


def _fresh_cohort(w: World) -> str:
    name = unique("cohort")
    with w.write() as s:
        s.add(orm.Cohort(id=new_id("coh"), name=name))
    return name


def _fresh_reservation(w: World, side: Side) -> str:
    name = unique("rsv")
    now = datetime.now(UTC)
    with w.write() as s:
        node = s.query(orm.Node).filter(orm.Node.name == w.node).one()
        s.add(
            orm.Reservation(
                id=new_id("rsv"),
                name=name,
                project_id=side.project_id,
                starts_at=now + timedelta(days=400 + next(_serial)),
                ends_at=now + timedelta(days=400.5 + next(_serial)),
                devices=[{"node_id": node.id, "devices": [0]}],
            )
        )
    return name


def _fresh_report(w: World, side: Side) -> str:
    """A submitted progress report of ``side``'s grant (its tranche is none: accepting
    it passes authorization, then answers 409)."""
    report_id = new_id("rpt")
    with w.write() as s:
        user = s.query(orm.User).filter(orm.User.name == side.user).one()
        s.add(
            orm.ProgressReport(
                id=report_id,
                allocation_id=side.allocation,
                tranche_seq=2,
                summary="matrix",
                status="submitted",
                submitted_by=user.id,
                submitted_at=datetime.now(UTC),
            )
        )
    return report_id


def _fresh_template(w: World, side: Side) -> str:
    """A job template of ``side``'s project."""
    name = unique("tpl")
    with w.write() as s:
        user = s.query(orm.User).filter(orm.User.name == side.user).one()
        s.add(
            orm.Template(
                id=new_id("tpl"),
                project_id=side.project_id,
                name=name,
                spec={"job": {"command": ["true"], "gpus_per_node": 0}},
                created_by=user.id,
                created_at=datetime.now(UTC),
            )
        )
    return name


def _fresh_attachment(w: World, side: Side) -> str:
    """A file attached to ``side``'s request (its row and its bytes)."""
    attachment_id = new_id("att")
    folder = w.center.settings.attachments_dir / side.request
    folder.mkdir(mode=0o700, exist_ok=True)
    (folder / attachment_id).write_bytes(b"%PDF-1.7 matrix")
    with w.write() as s:
        admin = s.query(orm.User).filter(orm.User.name == side.user).one()
        s.add(
            orm.RequestAttachment(
                id=attachment_id,
                request_id=side.request,
                filename="matrix.pdf",
                content_type="application/pdf",
                size_bytes=15,
                sha256="0" * 64,
                uploaded_by=admin.id,
                uploaded_at=datetime.now(UTC),
            )
        )
    return attachment_id


def _ensure_quota(w: World, side: Side) -> None:
    with w.write() as s:
        if s.get(orm.ProjectQuota, (side.project_id, "H100")) is None:
            s.add(orm.ProjectQuota(project_id=side.project_id, gpu_type="H100", nominal=1))


def _job_body(side: Side) -> dict[str, Any]:
    return {"project": side.project, "command": ["true"], "gpus_per_node": 0}


def prepare(w: World, method: str, path: str, variant: str) -> Call:
    """The URL, body and list marker of one cell, creating what the request consumes."""
    side = w.sides[variant]
    params: dict[str, str] = {
        "job_id": side.job,
        "array_id": side.array,
        "project": side.project,
        "gpu_type": "H100",
        "program": w.program,
        "organization": side.org,
        "user": side.user,
        "request_id": side.request,
        "allocation_id": side.allocation,
        "form_id": w.survey,
        "month": f"{datetime.now(UTC):%Y-%m}",
    }
    if path.startswith("/progress-reports/"):
        params["report_id"] = _fresh_report(w, side)
    if path.startswith("/projects/{project}/templates/"):
        params["name"] = _fresh_template(w, side)
    if "{attachment_id}" in path:
        params["attachment_id"] = _fresh_attachment(w, side)
    if path.startswith("/cohorts/"):
        params["name"] = _fresh_cohort(w)
    if path.startswith("/reservations/"):
        params["name"] = _fresh_reservation(w, side)
    if path.startswith("/prices/"):
        params["price_id"] = _fresh_price(w)
    if path == "/programs/{program}/rules/{rules_id}":
        params["rules_id"] = _fresh_rules(w)
    if path.startswith("/tokens/"):
        params["token_id"] = _fresh_token(w, side)
    if path == "/projects/{project}/members/{user}":
        params["user"] = _fresh_member(w, side, join=True)
    if path.startswith("/quotas/"):
        _ensure_quota(w, side)
    url = API + path.format(**params)
    if path == "/jobs/{job_id}/requeue":  # a fresh job, that stays held in the queue
        url = f"{API}/jobs/{_fresh_job(w, side)}/requeue?hold=true"
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/projects"): {"name": unique("prj"), "organization": side.org, "sector": "bio"},
        ("PATCH", "/projects/{project}"): {"objective": "matrix"},
        ("PUT", "/notifications/settings"): {"address": "m@example.org", "kinds": ["decision"]},
        ("POST", "/projects/{project}/templates"): {
            "name": unique("tpl"),
            "job": {"command": ["true"], "gpus_per_node": 0},
        },
        ("POST", "/projects/{project}/members"): {"user": _fresh_member(w, side, join=False)}
        if path == "/projects/{project}/members"
        else None,
        ("POST", "/jobs"): _job_body(side),
        ("POST", "/jobs:batch"): {"jobs": [_job_body(side)]},
        ("POST", "/arrays"): {**_job_body(side), "indices": "0-1"},
        ("PUT", "/quotas/{project}/{gpu_type}"): {"nominal": 1},
        ("POST", "/cohorts"): {"name": unique("cohort")},
        ("PUT", "/cohorts/{name}/parent"): {"parent": None},
        ("PUT", "/projects/{project}/cohort"): {"cohort": "matrix-cohort"},
        ("PUT", "/projects/{project}/limits"): {"fair_share_weight": 1.0},
        ("POST", "/reservations"): {
            "name": unique("rsv"),
            "project": side.project,
            "starts_at": future(800 + next(_serial)),
            "ends_at": future(800.5 + next(_serial)),
            "nodes": [{"node": w.node, "devices": [1]}],
        },
        ("POST", "/programs"): {"name": unique("program"), "budget_won": 1_000},
        ("PATCH", "/programs/{program}"): {"description": "matrix"},
        ("POST", "/prices"): {"gpu_type": "H100", "won_per_gpu_hour": 3_000},
        ("POST", "/organizations"): {"name": unique("org")},
        ("POST", "/users"): {"name": unique("user"), "organization": side.org, "role": "member"},
        ("PATCH", "/users/{user}"): {"role": "member"},
        ("POST", "/users/{user}/tokens"): {"name": "matrix"},
        ("POST", "/tokens/{token_id}/rotate"): {},
        ("POST", "/users/{user}/conflicts"): {"organization": side.org},
        ("POST", "/allocation-requests"): {
            "project": side.project,
            "items": {"H100": 1},
            "ends_at": future(30),
            "justification": "matrix",
        },
        ("POST", "/allocation-requests/{request_id}/assign"): {"reviewers": [w.panel_reviewer]},
        ("POST", "/allocation-requests/{request_id}/review"): {"score": 3},
        ("POST", "/allocation-requests/{request_id}/approve"): {},
        ("POST", "/allocation-requests/{request_id}/reject"): {"comment": "matrix"},
        ("POST", "/allocation-requests/{request_id}/return"): {"comment": "matrix"},
        ("POST", "/allocation-requests/{request_id}/resubmit"): {},
        ("PATCH", "/jobs/{job_id}"): {"name": "matrix"},
        ("POST", "/jobs/{job_id}/steps"): {"command": ["true"]},
        ("PUT", "/users/{user}/unix-account"): {"account": _fresh_account()}
        if path == "/users/{user}/unix-account"
        else None,
        ("POST", "/programs/{program}/rules"): {"self_paid_bp": 2000},
        ("POST", "/programs/{program}/surveys"): {
            "name": unique("survey"),
            "fields": [
                {"key": "papers", "label_en": "Papers", "label_ko": "논문", "kind": "count"}
            ],
        },
        ("POST", "/allocations/{allocation_id}/reports"): {"summary": "matrix"},
        ("POST", "/progress-reports/{report_id}/accept"): {},
        ("POST", "/progress-reports/{report_id}/return"): {"comment": "matrix"},
        ("POST", "/allocations/{allocation_id}/warn"): {"reason": "matrix"},
        ("POST", "/allocations/{allocation_id}/suspend"): {"reason": "matrix"},
        ("POST", "/allocations/{allocation_id}/resume"): {"reason": "matrix"},
        # more than is left: authorization passes, then 409, and nothing is taken
        ("POST", "/allocations/{allocation_id}/reclaim"): {
            "reason": "matrix",
            "gpu_hours": {"H100": 10**6},
        },
        ("POST", "/surveys/{form_id}/answers"): {
            "project": side.project,
            "round": "final",
            "answers": {},
        },
    }
    markers = {
        "/projects": side.project,
        "/jobs": side.job,
        "/queue": side.queued,
        "/quotas": side.project,
        "/cohorts": side.project,
        "/reservations": side.project,
        "/export/history": side.job,
        "/accounting/jobs": side.job,
        "/reports/usage": side.project,
        "/reports/usage-over-time": side.project,
        "/programs": w.program,
        "/organizations": side.org,
        "/users": side.user,
        "/allocation-requests": side.request,
        "/allocations": side.allocation,
        "/programs/{program}/obligations": side.allocation,
        "/programs/{program}/settlement": f'"organization":"{side.org}"',
        "/programs/{program}/use": side.allocation,
    }
    if path == "/jobs/{job_id}/wait":
        url += "?timeout=0"
    if path == "/reports/usage":
        url += "?group_by=project"
    if path == "/reports/usage-over-time":
        url += f"?organization={side.org}&period=day"
    if path == "/programs/{program}/use":
        url += "?all=true"
    if path == "/reservations" and method == "GET":
        _fresh_reservation(w, side)  # one that has not ended, so that the list shows it
    files = (
        {"file": ("matrix.pdf", b"%PDF-1.7 matrix")}
        if path == "/allocation-requests/{request_id}/attachments"
        else None
    )
    return Call(
        url, bodies.get((method, path)), markers.get(path) if method == "GET" else None, files
    )


def _fresh_account() -> str:
    """A new unix account of this test run (removed at its end), to map a user to."""
    name = f"{TEST_PREFIX}m{next(_serial)}"
    number = 250_000 + next(_serial)
    subprocess.run(["groupadd", "-g", str(number), name], check=True)
    subprocess.run(["useradd", "-M", "-N", "-u", str(number), "-g", str(number), name], check=True)
    return name


def _outcome(status: int, text: str, marker: str | None) -> str:
    if status in (403, 404, 422):
        return {403: "F", 404: "H", 422: "V"}[status]
    if marker is not None and 200 <= status < 300:
        return "S" if marker in text else "N"
    return "A" if 200 <= status < 300 or status in (400, 409) else f"HTTP {status}"


@pytest.mark.parametrize(("method", "path", "role", "variant", "expected"), list(_cells()))
def test_cell(world: World, method: str, path: str, role: str, variant: str, expected: str) -> None:
    call = prepare(world, method, path, variant)
    response = world.client.request(
        method,
        call.url,
        json=call.body,
        files=call.files,
        headers={"Authorization": f"Bearer {world.tokens[role]}"},
    )
    got = _outcome(response.status_code, response.text, call.marker)
    assert got == expected, (
        f"{method} {API}{path} as {role} on the {variant} organization's object: "
        f"expected {expected}, got {got} ({response.status_code}: {response.text[:300]})"
    )


# -- beyond own and other ---------------------------------------------------------------------

_LEAK = (
    "{ref} of a body is looked up with field=... (unknown: 422 'unknown ...'), then "
    "checked with access.require (another tenant's: 404 'no ...'): the two answers differ, "
    "so a caller learns which names other tenants use"
)

#: (method, path, the body field that names another object)
BODY_REFS = [
    pytest.param("POST", "/jobs", "project", id="POST /jobs project"),
    pytest.param("POST", "/arrays", "project", id="POST /arrays project"),
    pytest.param("POST", "/reservations", "project", id="POST /reservations project"),
    pytest.param("POST", "/allocation-requests", "project", id="POST /allocation-requests"),
    pytest.param(
        "POST",
        "/projects",
        "organization",
        id="POST /projects organization",
    ),
    pytest.param(
        "POST",
        "/users",
        "organization",
        id="POST /users organization",
    ),
]


@pytest.mark.parametrize(("method", "path", "field"), BODY_REFS)
@pytest.mark.parametrize("role", ["org_admin", "member"])
def test_a_body_naming_another_tenants_object_reads_like_an_unknown_one(
    world: World, method: str, path: str, field: str, role: str
) -> None:
    """A caller who names another tenant's object gets the same status as for a name
    that does not exist: neither answer says which names are taken."""
    call = prepare(world, method, path, "other")
    headers = {"Authorization": f"Bearer {world.tokens[role]}"}
    other = world.client.request(method, call.url, json=call.body, headers=headers)
    absent = world.client.request(
        method, call.url, json={**call.body, field: "no-such-thing"}, headers=headers
    )
    assert other.status_code in (403, 404, 422), other.text
    assert other.status_code == absent.status_code, (other.text, absent.text)


def test_an_assigned_reviewer_reads_and_reviews_only_that_request(world: World) -> None:
    """Reviewers see the requests assigned to them (and their projects' basics), score
    them, and decide nothing; an unassigned request of the same project stays hidden."""
    other = world.sides["other"]
    with world.write() as s:
        panel = s.query(orm.User).filter(orm.User.name == world.panel_reviewer).one()
        reviewer = create_user(s, unique("reviewer"), panel.organization_id, Role.REVIEWER)
        token = issue_token(s, reviewer.id)
        now = datetime.now(UTC)
        assigned, hidden = (
            orm.AllocationRequest(
                id=new_id("req"),
                project_id=other.project_id,
                program_id=s.query(orm.Program.id).filter(orm.Program.name == "Voucher").scalar(),
                kind="new",
                items={"H100": 1},
                starts_at=now,
                ends_at=now + timedelta(days=9),
                justification="x",
                status="in_review",
                created_by=panel.id,
                created_at=now,
                updated_at=now,
            )
            for _ in range(2)
        )
        s.add_all([assigned, hidden])
        s.flush()
        s.add(orm.RequestReviewer(request_id=assigned.id, reviewer_id=reviewer.id))
    headers = {"Authorization": f"Bearer {token}"}
    base = f"{API}/allocation-requests"
    client = world.client
    assert client.get(f"{base}/{assigned.id}", headers=headers).status_code == 200
    assert client.get(f"{base}/{hidden.id}", headers=headers).status_code == 404
    listed = client.get(base, headers=headers).text
    assert assigned.id in listed and hidden.id not in listed
    review = client.post(f"{base}/{assigned.id}/review", json={"score": 4}, headers=headers)
    assert review.status_code == 200, review.text
    approve = client.post(f"{base}/{assigned.id}/approve", json={}, headers=headers)
    assert approve.status_code == 403, approve.text
    assert client.get(f"{API}/projects/{other.project}", headers=headers).status_code == 200
    assert client.get(f"{API}/jobs/{other.job}", headers=headers).status_code == 404
    assert client.get(f"{API}/reports/usage", headers=headers).status_code == 403
