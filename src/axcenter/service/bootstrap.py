"""First start: the operator account; with ``--demo``, a small demo center.

The demo is what a visitor needs to see the center work: two funding programs, four
companies in different industries, a project each, a member with a token per company.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from axcenter.model.access import Role
from axcenter.model.ids import new_id
from axcenter.store import orm
from axcenter.store.accounts import create_organization, create_user, issue_token
from axcenter.store.db import Store

__all__ = ["DEMO_GPUS", "Credential", "ensure_operator", "load_demo"]

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


_PROGRAMS = [
    ("AX Manufacturing Demonstration 2026", 2_400_000_000),
    ("AI Healthcare & Energy Transformation 2026", 1_500_000_000),
]
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
]


def load_demo(store: Store) -> list[Credential]:
    """Load the demo center once; returns member credentials (empty if already loaded)."""
    with store.write() as session:
        if session.scalar(select(func.count()).select_from(orm.Program)):
            return []
        programs = []
        for name, budget in _PROGRAMS:
            program = orm.Program(id=new_id("prg"), name=name, budget_won=budget)
            session.add(program)
            programs.append(program)
        session.flush()
        credentials = []
        for company, reg_no, size, region, project_name, sector, program_index in _COMPANIES:
            org = create_organization(
                session, company, registration_no=reg_no, size_class=size, region=region
            )
            project = orm.Project(
                id=new_id("prj"),
                name=project_name,
                organization_id=org.id,
                program_id=programs[program_index].id,
                sector=sector,
            )
            session.add(project)
            session.flush()
            user = create_user(
                session, project_name.split("-")[0] + "-engineer", org.id, Role.MEMBER
            )
            session.add(orm.ProjectMember(project_id=project.id, user_id=user.id))
            token = issue_token(session, user.id, "demo")
            credentials.append(Credential(user.name, Role.MEMBER.value, company, token))
        return credentials
