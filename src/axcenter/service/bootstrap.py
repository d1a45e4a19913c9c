"""First start: the operator account; with ``--demo``, a small demo center.

The demo is what a visitor needs to see the center work: a price book, two co-funded
programs, a program manager and a reviewer, four companies in different industries with a
project, an engineer (and token) and an approved allocation each, and a fifth company
whose project has no allocation yet (its GPU jobs run free or are refused, as the
center's ``unallocated_gpu_jobs`` says; ``axc project show`` tells which).

Each allocation's GPU-hours spread evenly over its window make its project's guaranteed
quota (``store.policy.granted_quotas``), and the grants share the demo's GPUs without
promising more than there are: the README's first example (two H100s for hanbit-adas)
runs within its project's guarantee, not as borrowed, preemptible capacity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from axcenter.model.access import Principal, Role
from axcenter.service import allocations, organizations, programs, projects
from axcenter.service.schemas import (
    ApproveIn,
    OrganizationIn,
    ProgramIn,
    ProjectIn,
    RequestIn,
    UserIn,
)
from axcenter.store import orm
from axcenter.store.accounts import create_organization, create_user, issue_token
from axcenter.store.db import Store
from axcenter.store.types import utcnow

if TYPE_CHECKING:
    from axcenter.settings import Settings

__all__ = ["DEMO_GPUS", "Credential", "ensure_operator", "load_demo", "reissue_operator_token"]

#: 8 logical GPUs of two types, as the demo promises
DEMO_GPUS = "A100:4,H100:4"

OPERATIONS_ORG = "Center operations"


@dataclass(frozen=True, slots=True)
class Credential:
    user: str
    role: str
    organization: str
    token: str


def ensure_operator(store: Store) -> Credential | None:
    """Create the operator and a token on an empty store; None if users exist already."""
    with store.write() as session:
        if session.scalar(select(func.count()).select_from(orm.User)):
            return None
        org = create_organization(session, OPERATIONS_ORG)
        user = create_user(session, "operator", org.id, Role.OPERATOR)
        token = issue_token(session, user.id, "created at first start")
        return Credential(user.name, Role.OPERATOR.value, org.name, token)


def reissue_operator_token(settings: Settings) -> Credential:
    """A new token for the center's first active operator (the operator and its first
    token on an empty store). For whoever can open the store, i.e. read the data
    directory or reach the database: the way back in when the operator's token is lost.
    Earlier tokens stay valid; revoke them with ``axc user`` once signed in. Opens the
    store alone (no scheduler, no executor), so it works while the center runs."""
    store = Store(settings.resolved_database_url, settings.database_schema)
    try:
        store.migrate()
        return _reissue(store)
    finally:
        store.dispose()


def _reissue(store: Store) -> Credential:
    created = ensure_operator(store)
    if created is not None:
        return created
    with store.write() as session:
        user = session.scalars(
            select(orm.User)
            .where(orm.User.role == Role.OPERATOR.value, orm.User.active.is_(True))
            .order_by(orm.User.created_at, orm.User.id)
            .limit(1)
        ).one_or_none()
        if user is None:
            raise LookupError("this center has users but no active operator")
        org = session.get(orm.Organization, user.organization_id)
        token = issue_token(session, user.id, f"reissued by axc up at {utcnow():%Y-%m-%d %H:%M}Z")
        return Credential(user.name, Role.OPERATOR.value, org.name if org else "?", token)


# name, budget (won), public share (basis points): 80/20 and 70/30 co-funding
_PROGRAMS = [
    ("AX Manufacturing Demonstration 2026", 2_400_000_000, 8_000),
    ("AI Healthcare & Energy Transformation 2026", 1_500_000_000, 7_000),
]
#: won per GPU-hour
_PRICES = {"A100": 2_800, "H100": 4_500}
#: the demo grants' window, and the GPU-hours that keep one GPU busy over it
_GRANT_DAYS = 90
_GPU_HOURS = _GRANT_DAYS * 24
#: what each demo project was granted: GPUs guaranteed per type over the window (on
#: DEMO_GPUS, four of each type in all)
_GRANTS: dict[str, dict[str, int]] = {
    "hanbit-adas": {"H100": 2, "A100": 1},
    "daeil-defect-vision": {"A100": 1, "H100": 1},
    "seorin-grid-forecast": {"A100": 2},
    "medivision-ct-triage": {"H100": 1},
}
# company, registration no., size, region, project, sector, program index
_COMPANIES = [
    ("Hanbit Motors", "134-81-00001", "large", "Gwangju", "hanbit-adas", "automotive", 0),
    (
        "Daeil Precision",
        "410-86-00002",
        "SME",
        "Gwangju",
        "daeil-defect-vision",
        "manufacturing",
        0,
    ),
    ("Seorin Energy", "409-81-00003", "mid", "Jeonnam", "seorin-grid-forecast", "energy", 1),
    ("Medivision", "215-87-00004", "SME", "Seoul", "medivision-ct-triage", "healthcare", 1),
    # no allocation yet: shows the center's policy for such projects
    ("Jinro Robotics", "314-86-00005", "SME", "Daejeon", "jinro-pilot", "robotics", 0),
]


def _operator(session: Session) -> Principal:
    """The demo is loaded in the operator's name (``ensure_operator`` made one)."""
    user = session.scalars(
        select(orm.User)
        .where(orm.User.role == Role.OPERATOR.value, orm.User.active.is_(True))
        .order_by(orm.User.created_at)
        .limit(1)
    ).first()
    if user is None:
        raise RuntimeError("load the demo after ensure_operator: no operator exists")
    return Principal(user.id, user.name, user.organization_id, Role.OPERATOR)


def _account(session: Session, who: Principal, name: str, role: Role, org: str) -> Credential:
    out = organizations.create_user_tx(
        session, who, UserIn(name=name, organization=org, role=role.value)
    )
    assert out.token is not None
    return Credential(out.name, role.value, org, out.token)


def load_demo(store: Store) -> list[Credential]:
    """Load the demo center once; returns the new accounts' credentials (empty if the
    demo is there already).

    Everything goes through the service use cases, in the operator's and the program
    manager's names, so the demo's audit log and review histories are real ones: a price
    book, two co-funded programs, a program manager and a reviewer, five companies with a
    project and an engineer each, and for four of the projects one reviewed and approved
    allocation.
    The control loop picks the grants up at its next policy reload.
    """
    with store.write() as session:
        if session.scalar(select(func.count()).select_from(orm.Program)):
            return []
        operator = _operator(session)
        ops_org = session.get(orm.Organization, operator.organization_id)
        assert ops_org is not None
        now = utcnow()
        # the demo prices and grants the types this center runs (all of them before the
        # engine has reported its nodes)
        present = set(session.scalars(select(orm.Node.gpu_type)))
        gpu_types = [t for t in _PRICES if t in present] or list(_PRICES)
        for gpu_type in gpu_types:
            programs.set_price_tx(session, operator, gpu_type, _PRICES[gpu_type], now)
        program_names = []
        for name, budget, public_bp in _PROGRAMS:
            programs.create_program_tx(
                session,
                operator,
                ProgramIn(
                    name=name,
                    budget_won=budget,
                    public_share_bp=public_bp,
                    starts_at=now,
                    ends_at=now + timedelta(days=365),
                ),
            )
            program_names.append(name)
        credentials = [
            _account(session, operator, "pm-kim", Role.PROGRAM_MANAGER, ops_org.name),
            _account(session, operator, "reviewer-lee", Role.REVIEWER, ops_org.name),
        ]
        manager = _principal(session, "pm-kim")
        reviewer = _principal(session, "reviewer-lee")
        for company, reg_no, size, region, project_name, sector, program_index in _COMPANIES:
            organizations.create_organization_tx(
                session,
                operator,
                OrganizationIn(
                    name=company, registration_no=reg_no, size_class=size, region=region
                ),
            )
            engineer = project_name.split("-")[0] + "-engineer"
            credentials.append(_account(session, operator, engineer, Role.MEMBER, company))
            projects.create_project_tx(
                session,
                operator,
                ProjectIn(
                    name=project_name,
                    organization=company,
                    program=program_names[program_index],
                    sector=sector,
                    objective=f"{sector} AI on shared GPUs",
                    pi=engineer,
                ),
            )
            if project_name not in _GRANTS:
                continue
            gpus = {t: n for t, n in _GRANTS[project_name].items() if t in gpu_types}
            items = {t: n * _GPU_HOURS for t, n in (gpus or {gpu_types[0]: 1}).items()}
            request = allocations.create_request_tx(
                session,
                operator,
                RequestIn(
                    project=project_name,
                    items=items,
                    starts_at=now,
                    ends_at=now + timedelta(days=_GRANT_DAYS),
                    justification=f"demo: {sum(items.values()):,} GPU-hours for {_GRANT_DAYS} days",
                ),
            )
            allocations.assign_tx(session, manager, request.id, [reviewer.name], now)
            allocations.review_tx(session, reviewer, request.id, 4, "sound plan", now)
            allocations.approve_tx(
                session, manager, request.id, ApproveIn(comment="demo grant"), now
            )
        return credentials


def _principal(session: Session, name: str) -> Principal:
    user = session.scalars(select(orm.User).where(orm.User.name == name)).one()
    return Principal(user.id, user.name, user.organization_id, Role(user.role))
