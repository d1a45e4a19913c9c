"""Notifications by e-mail (issue 21 point 5), against a real SMTP server (aiosmtpd) on
this machine: each person's choice of kinds, address and language; each notice sent
once, across passes and restarts; retries while the server is away; the choice on the
dashboard and through the API.
"""

from __future__ import annotations

import contextlib
import email
import socket
from collections.abc import Iterator
from datetime import timedelta
from email.message import Message
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from sqlalchemy import select

from axcenter.api.app import create_app
from axcenter.service.center import Center
from axcenter.service.mail import KINDS, TEXTS, Mailer, kind_of
from axcenter.settings import Settings
from axcenter.store import orm
from axcenter.store.types import utcnow
from tests.api.conftest import Tenants, make_tenants
from tests.api.test_allocations import file_request, setup, step
from tests.api.test_jobs import submit, wait
from tests.api.test_programs import API, ok
from tests.web.test_pages import browser, csrf_for


class Inbox:
    """aiosmtpd's handler: every message received, parsed."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=default))
        return "250 OK"

    def to(self, address: str) -> list[str]:
        return [str(m["Subject"]) for m in self.messages if m["To"] == address]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, Controller]]:
    inbox = Inbox()
    server = Controller(inbox, hostname="127.0.0.1", port=free_port())
    server.start()
    yield inbox, server
    with contextlib.suppress(AssertionError, RuntimeError):  # a test may have stopped it
        server.stop()


@pytest.fixture
def center(
    db: tuple[str, str | None], tmp_path: Path, smtp: tuple[Inbox, Controller]
) -> Iterator[Center]:
    url, schema = db
    settings = Settings(
        stop_jobs_on_shutdown=True,
        data_dir=tmp_path / "data",
        database_url=url,
        database_schema=schema,
        local_gpus="A100:2,H100:4",
        kill_grace_s=2.0,
        sched_min_runtime_s=0.0,
        smtp_host="127.0.0.1",
        smtp_port=smtp[1].port,
        smtp_from="센터 <noreply@axcenter.test>",
        mail_every_s=3600.0,  # the test drives the passes
    )
    c = Center(settings)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def tenants(center: Center) -> Tenants:
    return make_tenants(center)


@pytest.fixture
def client(center: Center) -> Iterator[TestClient]:
    with TestClient(create_app(center)) as c:
        yield c


def choose(client: TestClient, who: Any, **body: Any) -> Any:
    return client.put(f"{API}/notifications/settings", json=body, headers=who.headers)


def test_every_notification_kind_has_a_mail_and_a_choice() -> None:
    from tests.web.test_i18n import vocabularies

    for kind in vocabularies()["notify"]:
        assert kind_of(kind) is not None, kind
        assert kind in TEXTS or (kind.startswith("notice.") and "notice." in TEXTS), kind


def test_jobs_mailed_once_in_the_persons_language(
    client: TestClient, center: Center, tenants: Tenants, smtp: tuple[Inbox, Controller]
) -> None:
    inbox, _ = smtp
    alice = tenants.alice
    default_choice = ok(client.get(f"{API}/notifications/settings", headers=alice.headers))
    assert default_choice["address"] is None and default_choice["enabled"] is True
    assert set(default_choice["choices"]) == set(KINDS)
    bad = choose(client, alice, address="not an address", kinds=["job_failed"])
    assert bad.status_code == 422 and "address" in bad.text
    unknown = choose(client, alice, address="alice@acme.test", kinds=["gossip"])
    assert unknown.status_code == 422 and "no kind 'gossip'" in unknown.text
    # a job that ended before the choice is not mailed
    early = submit(client, alice, command=["false"], gpus_per_node=0, name="before")
    assert wait(client, alice, early["id"])["state"] == "failed"
    ok(choose(client, alice, address="alice@acme.test", language="ko", kinds=["job_failed"]))
    failed = submit(client, alice, command=["false"], gpus_per_node=0, name="학습-1")
    fine = submit(client, alice, command=["true"], gpus_per_node=0, name="fine")
    assert wait(client, alice, failed["id"])["state"] == "failed"
    assert wait(client, alice, fine["id"])["state"] == "succeeded"

    mailer = center.mailer
    assert mailer.run_once() == (1, 1)  # the success is not a kind alice chose
    assert inbox.to("alice@acme.test") == ["[axcenter] 작업 학습-1이(가) 실패했습니다"]
    [message] = inbox.messages
    assert failed["id"] in message.get_content() and "알림 설정" in message.get_content()
    assert "noreply@axcenter.test" in str(message["From"])
    # again, and after a restart (a new mailer over the same store): nothing twice
    assert mailer.run_once() == (0, 0)
    restarted = Mailer(center)
    restarted._recover()
    assert restarted.run_once() == (0, 0)
    assert len(inbox.messages) == 1


def test_reviews_and_decisions_reach_those_who_chose_them(
    client: TestClient, center: Center, tenants: Tenants, smtp: tuple[Inbox, Controller]
) -> None:
    inbox, _ = smtp
    staff = setup(client, tenants)
    ok(
        choose(
            client,
            staff.reviewer,
            address="rev@center.test",
            language="en",
            kinds=["review_assigned"],
        )
    )
    ok(
        choose(
            client, tenants.acme_admin, address="admin@acme.test", language="ko", kinds=["decision"]
        )
    )
    ok(choose(client, staff.pm, address="pm@center.test", kinds=[]))  # nothing by e-mail
    rid = file_request(client, tenants.acme_admin, "acme-vision", {"A100": 10})["id"]
    ok(step(client, staff.pm, rid, "assign", reviewers=["rev"]))
    ok(step(client, staff.reviewer, rid, "review", score=4))
    ok(step(client, staff.pm, rid, "approve"))
    center.mailer.run_once()
    assert inbox.to("rev@center.test") == [
        "[axcenter] A request of acme-vision was assigned to you for review"
    ]
    assert inbox.to("admin@acme.test") == ["[axcenter] acme-vision의 배정 신청이 승인되었습니다"]
    assert inbox.to("pm@center.test") == []


def test_a_server_away_is_retried_and_nothing_is_lost(
    client: TestClient, center: Center, tenants: Tenants, smtp: tuple[Inbox, Controller]
) -> None:
    inbox, server = smtp
    alice = tenants.alice
    ok(choose(client, alice, address="alice@acme.test", language="en", kinds=["job_ended"]))
    server.stop()  # the mail server is away
    job = submit(client, alice, command=["true"], gpus_per_node=0, name="nightly")
    assert wait(client, alice, job["id"])["state"] == "succeeded"
    assert center.mailer.run_once() == (1, 0)
    with center.store.read() as s:
        [row] = s.scalars(select(orm.MailOutbox)).all()
        assert (row.status, row.attempts) == ("queued", 1) and row.last_error
        assert row.next_at > utcnow()  # not hammered: the next try is later
    again = Controller(inbox, hostname="127.0.0.1", port=server.port)  # back, same port
    again.start()
    try:
        assert center.mailer.send_due() == 0  # not yet due
        assert center.mailer.send_due(utcnow() + timedelta(hours=1)) == 1
    finally:
        again.stop()
    assert inbox.to("alice@acme.test") == ["[axcenter] Job nightly finished"]
    with center.store.read() as s:
        [row] = s.scalars(select(orm.MailOutbox)).all()
        assert (row.status, row.attempts) == ("sent", 2) and row.sent_at is not None


def test_the_choice_on_the_dashboard(center: Center, tenants: Tenants) -> None:
    alice = tenants.alice
    web = browser(center, alice.token, lang="ko")
    assert "/ui/notifications/settings" in web.get("/ui/notifications").text
    page = web.get("/ui/notifications/settings").text
    assert "메일로 받을 알림" in page and "내 작업 선점" in page
    bad = web.post(
        "/ui/notifications/settings",
        data={"csrf": csrf_for(alice.token), "address": "nope", "kind": ["job_failed"]},
    )
    assert bad.status_code == 400 and "메일 주소" in bad.text
    saved = web.post(
        "/ui/notifications/settings",
        data={
            "csrf": csrf_for(alice.token),
            "address": "alice@acme.test",
            "language": "en",
            "kind": ["job_failed", "job_preempted"],
        },
    )
    assert saved.status_code == 303
    shown = web.get(saved.headers["location"]).text
    assert "저장했습니다" in shown and 'value="alice@acme.test"' in shown
    assert 'value="job_preempted" checked' in shown and 'value="job_ended" checked' not in shown
