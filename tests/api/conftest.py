"""A real center (store on both backends, local executor, logical GPUs) behind TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from axcenter.api.app import create_app
from axcenter.model.access import Role
from axcenter.model.ids import new_id
from axcenter.service.center import Center
from axcenter.settings import Settings
from axcenter.store import orm
from axcenter.store.accounts import create_organization, create_user, issue_token


@dataclass(frozen=True)
class Account:
    user: str
    token: str
    project: str | None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Tenants:
    operator: Account
    alice: Account  # member of project "acme-vision" (Acme)
    bob: Account  # member of project "bolt-llm" (Bolt)
    acme_admin: Account  # org admin of Acme


@pytest.fixture
def center(db: tuple[str, str | None], tmp_path: Path) -> Iterator[Center]:
    url, schema = db
    settings = Settings(
        stop_jobs_on_shutdown=True,  # a test leaves no job behind
        data_dir=tmp_path / "data",
        database_url=url,
        database_schema=schema,
        local_gpus="A100:2,H100:4",
        kill_grace_s=2.0,
        sched_min_runtime_s=0.0,
    )
    c = Center(settings)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def tenants(center: Center) -> Tenants:
    return make_tenants(center)


def make_tenants(center: Center) -> Tenants:
    """The operator, alice (Acme), bob (Bolt) and Acme's admin, with their tokens."""
    with center.store.write() as s:
        ops = create_organization(s, "Operations")
        operator = create_user(s, "operator", ops.id, Role.OPERATOR)
        accounts = {"operator": Account("operator", issue_token(s, operator.id), None)}
        for org_name, user_name, project_name in (
            ("Acme", "alice", "acme-vision"),
            ("Bolt", "bob", "bolt-llm"),
        ):
            org = create_organization(s, org_name)
            project = orm.Project(
                id=new_id("prj"), name=project_name, organization_id=org.id, sector="manufacturing"
            )
            s.add(project)
            s.flush()
            user = create_user(s, user_name, org.id, Role.MEMBER)
            s.add(orm.ProjectMember(project_id=project.id, user_id=user.id))
            accounts[user_name] = Account(user_name, issue_token(s, user.id), project_name)
            if org_name == "Acme":
                admin = create_user(s, "acme-admin", org.id, Role.ORG_ADMIN)
                accounts["acme_admin"] = Account("acme-admin", issue_token(s, admin.id), None)
    return Tenants(**accounts)


@pytest.fixture
def client(center: Center) -> Iterator[TestClient]:
    with TestClient(create_app(center)) as c:
        yield c
