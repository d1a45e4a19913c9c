"""The queue view walks the queue project by project (no sort of the backlog): every
page, at every offset and size, for the operator and for a member, agrees with the
plain sort of the whole queue (``service.queue._order``), whether the latest cycle
reached every project, some of them, or none."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from axcenter.api.app import create_app
from axcenter.model.access import Principal
from axcenter.service import queue as service
from axcenter.service.center import Center
from axcenter.store import orm
from axcenter.store.accounts import authenticate
from tests.api.conftest import Tenants

JOBS_PER_TENANT = 9


@pytest.mark.parametrize("reached", ["all", "some", "none"])
def test_every_page_agrees_with_the_sorted_queue(
    center: Center, tenants: Tenants, monkeypatch: pytest.MonkeyPatch, reached: str
) -> None:
    client = TestClient(create_app(center))
    for who in (tenants.alice, tenants.bob):
        for n in range(JOBS_PER_TENANT):
            body = {"project": who.project, "command": ["true"], "held": True, "priority": n % 3}
            assert client.post("/api/v1/jobs", json=body, headers=who.headers).status_code == 201
    with center.store.read() as s:
        projects = {p.name: p.id for p in s.query(orm.Project)}
    ranks: Callable[[Center], dict[str, int]] = {
        "all": lambda _: {projects["bolt-llm"]: 0, projects["acme-vision"]: 1},
        "some": lambda _: {projects["bolt-llm"]: 0},
        "none": lambda _: {},
    }[reached]
    monkeypatch.setattr(service, "_ranks", ranks)
    with center.store.read() as s:
        truth = {job_id: n + 1 for n, job_id in enumerate(service._order(center, s))}
        owners = dict(s.query(orm.Job.id, orm.Job.user_id).all())
    assert len(truth) == 2 * JOBS_PER_TENANT
    for account in (tenants.operator, tenants.alice):
        with center.store.read() as s:
            found = authenticate(s, account.token)
        assert found is not None
        who: Principal = found
        expected = [
            (job_id, place)
            for job_id, place in truth.items()
            if account is tenants.operator or owners[job_id] == who.user_id
        ]
        for limit in (1, 2, 5, 50):
            for offset in range(len(expected) + 1):
                got = service.queue(center, who, offset=offset, limit=limit)
                assert [(i.id, i.position) for i in got.items] == expected[
                    offset : offset + limit
                ], (account.user, offset, limit)
                assert got.total == len(expected)
                assert got.queue_length == len(truth)
