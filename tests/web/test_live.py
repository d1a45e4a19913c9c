"""The push behind live pages, over a real server and real streams: a job's page hears
its transitions as they happen, a stream hears nothing of another company's jobs, and
another company's job cannot be subscribed to."""

from __future__ import annotations

import queue
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn

from axcenter.api.app import create_app
from axcenter.service.center import Center
from axcenter.web.session import SESSION_COOKIE
from tests.api.conftest import Account, Tenants
from tests.web.test_pages import browser, session_for

TIMEOUT_S = 30.0


@pytest.fixture
def server(center: Center) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(center),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,  # as ``axc up``: open streams end at a shutdown
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            break
        except httpx.TransportError:
            threading.Event().wait(0.05)
    yield base
    srv.should_exit = True
    thread.join(10)


class Stream:
    """An open text/event-stream read by a thread: its data lines, in order."""

    def __init__(self) -> None:
        self.data: queue.Queue[int] = queue.Queue()
        self.status = 0
        self.opened = threading.Event()

    def next(self, timeout: float = TIMEOUT_S) -> int:
        return self.data.get(timeout=timeout)


@contextmanager
def stream(base: str, center: Center, who: Account, path: str) -> Iterator[Stream]:
    out = Stream()
    cookies = {SESSION_COOKIE: session_for(center, who.token)}
    client = httpx.Client(base_url=base, cookies=cookies, timeout=None)

    def read() -> None:
        try:
            with client.stream("GET", path) as r:
                out.status = r.status_code
                out.opened.set()
                if r.status_code != 200:
                    return
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        out.data.put(int(line[6:]))
        except httpx.HTTPError:
            pass  # closed by the test
        finally:
            out.opened.set()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert out.opened.wait(TIMEOUT_S)
    try:
        yield out
    finally:
        client.close()


def submit(base: str, who: Account, command: list[str], *, held: bool = False) -> str:
    body = {"project": who.project, "command": command, "gpus_per_node": 1, "held": held}
    r = httpx.post(f"{base}/api/v1/jobs", json=body, headers=who.headers, timeout=TIMEOUT_S)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def state(base: str, who: Account, job_id: str) -> str:
    r = httpx.get(f"{base}/api/v1/jobs/{job_id}", headers=who.headers, timeout=TIMEOUT_S)
    return str(r.json()["state"])


def test_a_job_page_hears_each_transition_of_its_job(
    center: Center, tenants: Tenants, server: str
) -> None:
    alice = tenants.alice
    job_id = submit(server, alice, ["sleep", "1"], held=True)  # it moves once we listen
    seen = []
    with stream(server, center, alice, f"/ui/live?job={job_id}") as s:
        assert s.status == 200
        s.next()  # the version at connection
        r = httpx.post(f"{server}/api/v1/jobs/{job_id}/release", headers=alice.headers)
        assert r.status_code == 200, r.text
        while (now := state(server, alice, job_id)) != "succeeded":
            s.next()  # each message is a change of this job: read its state again
            seen.append(state(server, alice, job_id))
        assert now == "succeeded"
    # it was pushed through its states as they happened (the stream may coalesce two)
    assert seen[-1] == "succeeded"
    assert set(seen) <= {"pending", "admitted", "running", "succeeded"}


def test_no_stream_hears_of_another_companys_jobs(
    center: Center, tenants: Tenants, server: str
) -> None:
    alice, bob = tenants.alice, tenants.bob
    theirs = submit(server, alice, ["true"])
    with stream(server, center, bob, f"/ui/live?job={theirs}") as s:
        assert s.status == 404  # not his to follow, as the job's page answers
    with (
        stream(server, center, bob, "/ui/live") as bobs,
        stream(server, center, alice, "/ui/live") as alices,
    ):
        bobs.next(), alices.next()  # the versions at connection
        other = submit(server, alice, ["true"])
        r = httpx.get(
            f"{server}/api/v1/jobs/{other}/wait", params={"timeout": 20}, headers=alice.headers
        )
        assert r.json()["state"] == "succeeded"
        assert alices.next() > 0  # alice heard her job
        before = center.live.version
        own = submit(server, bob, ["true"])
        # bob's first message is about his own job: none came of alice's, earlier
        assert bobs.next() > before
        assert state(server, bob, own) in {"pending", "admitted", "running", "succeeded"}


def test_a_stream_needs_a_session(center: Center, server: str) -> None:
    r = httpx.get(f"{server}/ui/live", follow_redirects=False, timeout=TIMEOUT_S)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/ui/login")


def test_the_queue_and_the_job_page_show_a_waiting_jobs_estimate(
    center: Center, tenants: Tenants
) -> None:
    alice = tenants.alice
    client = browser(center, alice.token)
    four = {"project": alice.project, "gpus_per_node": 4, "gpu_types": ["H100"]}
    api = {"headers": alice.headers}
    first = client.post("/api/v1/jobs", json={**four, "command": ["sleep", "30"]}, **api)
    waiting = client.post("/api/v1/jobs", json={**four, "command": ["true"]}, **api).json()["id"]
    assert first.status_code == 201
    refreshes = center.estimates.refreshes
    deadline = time.monotonic() + TIMEOUT_S
    while center.estimates.start_of(waiting) is None and time.monotonic() < deadline:
        center.estimates.wait_refresh(refreshes, 1.0)
        refreshes = center.estimates.refreshes
    expected = client.get(f"/api/v1/jobs/{waiting}", **api).json()["estimated_start"]
    assert expected is not None
    kst = datetime.fromisoformat(expected).astimezone(ZoneInfo("Asia/Seoul"))
    shown = f"{kst:%Y-%m-%d %H:%M}"
    page = client.get(f"/ui/jobs/{waiting}")
    assert page.status_code == 200
    assert re.search(r'data-testid="estimate">[^<]*' + re.escape(shown), page.text), page.text
    assert f'data-live="/ui/live?job={waiting}"' in page.text
    # the version the page was read at: a stream opened later that says another has it
    # fetched again, so a start between the page and the stream is not missed
    version = re.search(r'data-live-version="(\d+)"', page.text)
    assert version and int(version.group(1)) <= center.live.version
    queue = client.get("/ui/queue")
    assert shown in queue.text and 'data-live="/ui/live"' in queue.text
