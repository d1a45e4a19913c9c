"""The whole OpenAPI, fuzzed with Schemathesis, as every role: no answer is a 5xx.

Each operation gets a small, fixed number of generated requests, valid by the schema
(so they reach the service's own checks) and invalid (the schema's refusals), each sent
as an operator, a program manager, a reviewer, an organization admin and a member of a
project. A 500 is a bug: the input
should have been refused with a 4xx naming what is wrong. One center on SQLite serves
the whole run (PostgreSQL's types are covered by the authorization matrix and the
bounds tests); the run takes about a minute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from axcenter.api.app import create_app
from axcenter.model.access import Role
from axcenter.model.ids import new_id
from axcenter.service.center import Center
from axcenter.settings import Settings
from axcenter.store import orm
from axcenter.store.accounts import create_organization, create_user, issue_token

#: generated requests per operation (each sent once per role)
EXAMPLES = 10
ROLES = (Role.OPERATOR, Role.PROGRAM_MANAGER, Role.REVIEWER, Role.ORG_ADMIN, Role.MEMBER)


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Center]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    c = Center(
        Settings(
            stop_jobs_on_shutdown=True,
            data_dir=tmp / "data",
            database_url=f"sqlite:///{tmp / 'axcenter.db'}",
            local_gpus="A100:2,H100:2",
            kill_grace_s=1.0,
            # the fuzzer fails authentication and submits fast on purpose
            auth_failures_per_minute=1_000_000,
            max_submissions_per_s_per_user=None,
            max_submissions_per_s_per_project=None,
        )
    )
    c.start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def tokens(center: Center) -> dict[Role, str]:
    """One caller per role; the org admin and the member belong to Acme, whose project
    ``acme-vision`` the member is in, so that generated names can reach real objects."""
    with center.store.write() as s:
        staff = create_organization(s, "Center")
        acme = create_organization(s, "Acme")
        project = orm.Project(
            id=new_id("prj"), name="acme-vision", organization_id=acme.id, sector="bio"
        )
        s.add(project)
        s.flush()
        out = {}
        for role in ROLES:
            org = acme if role in (Role.ORG_ADMIN, Role.MEMBER) else staff
            user = create_user(s, role.value.replace("_", "-"), org.id, role)
            if role is Role.MEMBER:
                s.add(orm.ProjectMember(project_id=project.id, user_id=user.id))
            out[role] = issue_token(s, user.id)
    return out


def operations(center: Center) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(center))
    return [result.ok() for result in schema.get_all_operations()]


def test_no_operation_answers_5xx_to_any_role(center: Center, tokens: dict[Role, str]) -> None:
    ops = operations(center)
    assert len(ops) >= 60  # the whole API
    failures: list[str] = []
    for op in ops:
        # valid requests (they reach the service's checks) and invalid ones (the
        # schema's own refusals: a wrong type, a bound crossed, a field missing)
        strategy = op.as_strategy(GenerationMode.POSITIVE) | op.as_strategy(GenerationMode.NEGATIVE)

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,  # the same examples in every run: CI stays reproducible
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            for role in ROLES:
                response = case.call(headers={"Authorization": f"Bearer {tokens[role]}"})
                if response.status_code >= 500:
                    failures.append(
                        f"{case.method} {case.path} as {role.value}: "
                        f"{response.status_code} {case.path_parameters} {case.query} "
                        f"{str(case.body)[:200]}"
                    )

        check()
    assert not failures, "\n".join(failures)
