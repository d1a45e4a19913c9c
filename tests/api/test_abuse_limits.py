"""Abuse limits of the API (docs/security.md): authentication before any body is read,
bodies bounded by the bytes received, failed authentications rate limited, caps on
pending jobs and on submissions per second, integers bounded (422, never a 500)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from axcenter.api.app import create_app
from axcenter.api.guard import MAX_BODY_BYTES
from axcenter.model.access import Role
from axcenter.service.center import Center
from axcenter.settings import Settings
from axcenter.store import orm
from axcenter.store.accounts import create_user, issue_token
from tests.api.conftest import Tenants, make_tenants

API = "/api/v1"
JOB = {"command": ["true"], "gpus_per_node": 0}


def chunks(total: int, size: int = 1024 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size


def test_a_body_is_not_read_before_its_sender_is_authenticated(client: TestClient) -> None:
    """An unauthenticated chunked body is refused at the first byte: the route never
    reads it (the generator is not drained)."""
    pulled = 0

    def body() -> Iterator[bytes]:
        nonlocal pulled
        for piece in chunks(64 * 1024 * 1024):
            pulled += 1
            yield piece

    r = client.post(f"{API}/jobs:batch", content=body())
    assert r.status_code == 401
    assert pulled <= 2  # the test client may buffer one piece ahead


def test_a_chunked_body_is_limited_by_the_bytes_received(
    client: TestClient, tenants: Tenants
) -> None:
    """No Content-Length: the count of bytes received ends it with 413."""
    r = client.post(
        f"{API}/jobs:batch",
        content=chunks(MAX_BODY_BYTES + 2 * 1024 * 1024),
        headers={**tenants.bob.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 413, r.text
    assert str(MAX_BODY_BYTES) in r.json()["detail"]


def test_a_declared_length_above_the_limit_is_refused_at_once(
    client: TestClient, tenants: Tenants
) -> None:
    r = client.post(
        f"{API}/jobs",
        content=b"{}",
        headers={**tenants.bob.headers, "Content-Length": str(MAX_BODY_BYTES + 1)},
    )
    assert r.status_code == 413


def test_failed_authentications_are_limited_per_address(
    client: TestClient, center: Center, tenants: Tenants
) -> None:
    limit = center.auth_failures.per_minute
    for n in range(limit):
        r = client.get(f"{API}/whoami", headers={"Authorization": f"Bearer axc_guess{n:08d}"})
        assert r.status_code == 401
    r = client.get(f"{API}/whoami", headers={"Authorization": "Bearer axc_guessmore"})
    assert r.status_code == 429
    assert "auth_failures_per_minute" in r.json()["detail"]
    assert int(r.headers["Retry-After"]) > 0
    # a good token from the same address waits too: otherwise guessing goes on
    assert client.get(f"{API}/whoami", headers=tenants.bob.headers).status_code == 429


def test_failed_authentications_are_limited_per_token_prefix(
    center: Center, tenants: Tenants
) -> None:
    """Guesses at one token's prefix from many addresses are limited as well."""
    app = create_app(center)
    prefix = tenants.bob.token[:12]
    for n in range(center.auth_failures.per_minute):
        with TestClient(app, client=(f"10.0.0.{n}", 1000)) as other:
            r = other.get(f"{API}/whoami", headers={"Authorization": f"Bearer {prefix}{n:020d}"})
            assert r.status_code == 401
    with TestClient(app, client=("10.0.1.1", 1000)) as fresh:
        assert fresh.get(f"{API}/whoami", headers=tenants.bob.headers).status_code == 429
        alice = fresh.get(f"{API}/whoami", headers=tenants.alice.headers)
        assert alice.status_code == 200  # another prefix, another address


@pytest.mark.parametrize(
    ("url", "field"),
    [
        (f"{API}/jobs/job_x/log?offset={2**63}", "offset"),
        (f"{API}/audit?cursor={2**63}", "cursor"),
        (f"{API}/audit?cursor={10**30}", "cursor"),
        (f"{API}/queue?offset={2**63}", "offset"),
    ],
)
def test_huge_integers_are_refused_not_passed_on(
    client: TestClient, tenants: Tenants, url: str, field: str
) -> None:
    r = client.get(url, headers=tenants.operator.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(field)


def limited_center(db: tuple[str, str | None], tmp_path: Path, **limits: float) -> Center:
    url, schema = db
    settings = Settings(
        stop_jobs_on_shutdown=True,
        data_dir=tmp_path / "data",
        database_url=url,
        database_schema=schema,
        local_gpus="H100:1",
        kill_grace_s=2.0,
        **limits,  # type: ignore[arg-type]
    )
    return Center(settings)


HELD = {**JOB, "held": True}  # pending until released: counts against the caps


def until_pending(center: Center, n: int) -> None:
    """The control loop has taken ``n`` pending jobs into its queues."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if sum(center.control.state.pending_users.values()) >= n:
            return
        time.sleep(0.01)
    pytest.fail("the loop did not see the pending jobs")


def test_pending_jobs_are_capped_per_user_then_per_project(
    db: tuple[str, str | None], tmp_path: Path
) -> None:
    center = limited_center(
        db, tmp_path, max_pending_jobs_per_user=3, max_pending_jobs_per_project=4
    )
    center.start()
    try:
        people = make_tenants(center)
        with TestClient(create_app(center)) as client:
            bob = people.bob.headers
            r = client.post(f"{API}/jobs:batch", json={"jobs": [HELD] * 3}, headers=bob)
            assert r.status_code == 201, r.text
            until_pending(center, 3)
            r = client.post(f"{API}/jobs", json=HELD, headers=bob)
            assert r.status_code == 429
            detail = r.json()["detail"]
            assert "bob has 3" in detail and "max_pending_jobs_per_user" in detail
            # an array counts its tasks
            r = client.post(f"{API}/arrays", json={**HELD, "indices": "0-1"}, headers=bob)
            assert r.status_code == 429, r.text
            # another member of the project: the project's cap (4) is what stops it
            with center.store.write() as s:
                project = s.scalar(select(orm.Project.id).where(orm.Project.name == "bolt-llm"))
                org = s.scalar(select(orm.Project.organization_id).where(orm.Project.id == project))
                carol = create_user(s, "carol", org, Role.MEMBER)
                s.add(orm.ProjectMember(project_id=project, user_id=carol.id))
                token = issue_token(s, carol.id)
            carol_h = {"Authorization": f"Bearer {token}"}
            assert client.post(f"{API}/jobs", json=HELD, headers=carol_h).status_code == 201
            until_pending(center, 4)
            r = client.post(f"{API}/jobs", json=HELD, headers=carol_h)
            assert r.status_code == 429
            detail = r.json()["detail"]
            assert "project bolt-llm has 4" in detail and "max_pending_jobs_per_project" in detail
            # nothing refused was written
            assert (
                len(client.get(f"{API}/jobs", headers=people.operator.headers).json()["items"]) == 4
            )
            # another tenant is not affected
            assert (
                client.post(f"{API}/jobs", json=HELD, headers=people.alice.headers).status_code
                == 201
            )
    finally:
        center.stop()


def test_submissions_per_second_are_limited_per_user(
    db: tuple[str, str | None], tmp_path: Path
) -> None:
    center = limited_center(db, tmp_path, max_submissions_per_s_per_user=2.0)
    center.start()
    try:
        people = make_tenants(center)
        clock = [1000.0]
        center.throttle.clock = lambda: clock[0]
        with TestClient(create_app(center)) as client:
            bob = people.bob.headers
            assert client.post(f"{API}/jobs", json=HELD, headers=bob).status_code == 201
            assert client.post(f"{API}/jobs", json=HELD, headers=bob).status_code == 201
            r = client.post(f"{API}/jobs", json=HELD, headers=bob)
            assert r.status_code == 429
            assert "max_submissions_per_s_per_user" in r.json()["detail"]
            assert (
                client.post(f"{API}/jobs", json=HELD, headers=people.alice.headers).status_code
                == 201
            )
            clock[0] += 0.5  # one more token
            assert client.post(f"{API}/jobs", json=HELD, headers=bob).status_code == 201
            assert client.post(f"{API}/jobs", json=HELD, headers=bob).status_code == 429
    finally:
        center.stop()


def test_docs_load_nothing_from_elsewhere(client: TestClient) -> None:
    """``/docs`` works offline: its scripts and styles come from this process."""
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/docs/static/") for a in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert client.get("/redoc").status_code == 404  # ReDoc loads from a CDN: off


def test_a_body_that_stops_arriving_times_out(db: tuple[str, str | None], tmp_path: Path) -> None:
    """A client that sends part of a body and then nothing is answered 408 after
    ``http_body_timeout_s``; the route sees a disconnect, nothing is written."""
    center = limited_center(db, tmp_path, http_body_timeout_s=0.2)
    center.start()
    try:
        people = make_tenants(center)
        app = create_app(center)
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            if not sent:
                sent.append({})
                return {"type": "http.request", "body": b'{"jobs": [', "more_body": True}
            await asyncio.sleep(3600)  # the rest never comes
            raise AssertionError("unreachable")

        answer: list[dict[str, object]] = []

        async def send(message: dict[str, object]) -> None:
            answer.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": f"{API}/jobs:batch",
            "raw_path": f"{API}/jobs:batch".encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"authorization", f"Bearer {people.bob.token}".encode()),
                (b"content-type", b"application/json"),
            ],
            "client": ("10.1.1.1", 1234),
            "server": ("testserver", 80),
        }
        asyncio.run(asyncio.wait_for(app(scope, receive, send), 10))  # type: ignore[arg-type]
        starts = [m for m in answer if m["type"] == "http.response.start"]
        assert [m["status"] for m in starts] == [408]
        with center.store.read() as s:
            assert s.query(orm.Job).count() == 0
    finally:
        center.stop()
