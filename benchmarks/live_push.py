"""What open live pages cost the control loop: cycle time with N subscribers vs none.

A center (SQLite, the fake engine: 8 nodes x 8 GPUs, nothing runs) is served by uvicorn
in this process, as ``axc up`` serves it. A driver keeps it busy for ``--seconds``: it
submits jobs as a member (through ``service.jobs.submit``, as the API does) and ends the
runs the engine started, so that every cycle admits, starts and ends jobs and publishes
a change. Meanwhile ``--subscribers`` pages of the operator (who sees every project, so
every change wakes every stream: the worst case) hold ``/ui/live`` open, read by another
process (browsers are not on the server); with ``--streams idle`` they follow a held job
instead, which no cycle touches: what merely open pages cost. The same load runs with
no subscriber and with them, alternately (``--pairs`` times), on the same center.

Prints one JSON object per phase: ``{"subscribers", "cycles", "cpu_per_cycle_ms" (CPU of
the loop's thread), "mean_cycle_ms", "p50_cycle_ms", "jobs_done", "messages"}``, then the
median over the pairs of phases of the ratio with subscribers over without, of each
figure. Target: cycle time ratios under 1.2 at 200 subscribers.

    .venv/bin/python benchmarks/live_push.py [--subscribers 200] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import uvicorn

from axcenter.api.app import create_app
from axcenter.executors.base import EventCallback
from axcenter.executors.fake import FakeEngine
from axcenter.executors.gpus import local_inventory
from axcenter.model.access import Role
from axcenter.model.ids import new_id
from axcenter.service import jobs as service
from axcenter.service.center import Center
from axcenter.service.schemas import JobIn
from axcenter.settings import Settings
from axcenter.store import orm
from axcenter.store.accounts import (
    authenticate,
    create_organization,
    create_user,
    issue_token,
    open_session,
)
from axcenter.web.session import SESSION_COOKIE

#: the reader of the streams, in a process of its own: prints the messages it read
READER = """
import asyncio, sys, httpx
url, cookie, n, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
count = 0
async def one(client):
    global count
    async with client.stream("GET", url) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                count += 1
async def main():
    limits = httpx.Limits(max_connections=n + 10)
    async with httpx.AsyncClient(cookies={"axc_session": cookie}, timeout=None, limits=limits) as c:
        tasks = [asyncio.create_task(one(c)) for _ in range(n)]
        print("open", flush=True)
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
asyncio.run(main())
print(count, flush=True)
"""


def serve(center: Center) -> tuple[uvicorn.Server, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(center),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return server, base
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the server did not start")


def phase(center: Center, engine: FakeEngine, token: str, seconds: float) -> dict[str, float]:
    """Keep the loop busy for ``seconds``; the cycles' times and the jobs done."""
    with center.store.read() as s:
        who = authenticate(s, token)
    assert who is not None
    samples: list[float] = []  # cycle times observed during the phase
    original = center.metrics.cycled

    def cycled(seconds_: float) -> None:
        samples.append(seconds_)
        original(seconds_)

    center.metrics.cycled = cycled  # type: ignore[method-assign]
    cpu_before = loop_cpu_s(center)
    done = 0
    ends = time.monotonic() + seconds
    spec = JobIn(project="bench", command=["true"], gpus_per_node=1, time_limit_s=600)
    while time.monotonic() < ends:
        if len(center.control.state.pending) < 32:
            service.submit(center, who, [spec] * 8)
        with engine._lock:  # engine threads add runs meanwhile
            runs = list(engine.runs.items())
        for run_id, run in runs:
            if run.started_at is not None and run.ended is None:
                engine.end(run_id, exit_code=0)
                done += 1
        time.sleep(0.005)
    center.metrics.cycled = original  # type: ignore[method-assign]
    cpu = loop_cpu_s(center) - cpu_before
    return {
        "cycles": len(samples),
        "cpu_per_cycle_ms": round(cpu / len(samples) * 1000, 3) if samples else 0.0,
        "mean_cycle_ms": round(statistics.fmean(samples) * 1000, 3) if samples else 0.0,
        "p50_cycle_ms": round(statistics.median(samples) * 1000, 3) if samples else 0.0,
        "jobs_done": done,
    }


def loop_cpu_s(center: Center) -> float:
    """CPU seconds the control loop's thread has used (Linux: its /proc task entry), which
    the load of other processes on a shared machine moves less than wall time."""
    thread = center.control._thread
    assert thread is not None and thread.native_id is not None
    fields = Path(f"/proc/self/task/{thread.native_id}/stat").read_text().rsplit(")", 1)[1]
    utime, stime = (int(v) for v in fields.split()[11:13])
    return (utime + stime) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each phase")
    parser.add_argument("--pairs", type=int, default=5, help="phases without and with")
    parser.add_argument(
        "--streams",
        choices=("page", "idle"),
        default="page",
        help="page: queue pages woken by every change (the worst case); idle: pages of a "
        "held job, which nothing changes",
    )
    args = parser.parse_args()
    engines: list[FakeEngine] = []

    def factory(on_event: EventCallback) -> FakeEngine:
        engine = FakeEngine(local_inventory("H100:64", 512, 1 << 22), on_event)
        engines.append(engine)
        return engine

    sys.setswitchinterval(0.001)  # as ``axc up`` (GIL_SWITCH_INTERVAL_S)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", local_gpus="H100:64")
        center = Center(settings, engine_factory=factory)
        center.start()
        try:
            with center.store.write() as s:
                org = create_organization(s, "Bench")
                operator = create_user(s, "ops", org.id, Role.OPERATOR)
                member = create_user(s, "member", org.id, Role.MEMBER)
                project = orm.Project(
                    id=new_id("prj"), name="bench", organization_id=org.id, sector="it"
                )
                s.add(project)
                s.flush()
                s.add(orm.ProjectMember(project_id=project.id, user_id=member.id))
                token = issue_token(s, member.id)
                cookie = open_session(s, operator.id, timedelta(hours=1))
            assert SESSION_COOKIE == "axc_session"
            server, base = serve(center)
            url = f"{base}/ui/live"
            if args.streams == "idle":
                with center.store.read() as s:
                    who = authenticate(s, token)
                assert who is not None
                spec = JobIn(project="bench", command=["true"], held=True)
                url += f"?job={service.submit(center, who, [spec])[0].job.id}"
            rows = []
            for n in [0, args.subscribers] * args.pairs:
                rows.append(with_readers(center, engines[0], token, url, cookie, n, args.seconds))
                time.sleep(1.0)  # the streams close
            server.should_exit = True
        finally:
            center.stop()
    for row in rows:
        print(json.dumps(row))
    pairs = list(zip(rows[0::2], rows[1::2], strict=True))

    def ratio(key: str) -> float:
        return round(statistics.median(w[key] / q[key] for q, w in pairs if q[key]), 3)

    print(
        json.dumps(
            {
                "subscribers": args.subscribers,
                "streams": args.streams,
                "pairs": len(pairs),
                "p50_cycle_ratio": ratio("p50_cycle_ms"),
                "mean_cycle_ratio": ratio("mean_cycle_ms"),
                "cpu_per_cycle_ratio": ratio("cpu_per_cycle_ms"),
                "jobs_done_ratio": ratio("jobs_done"),
            }
        )
    )


def with_readers(
    center: Center, engine: FakeEngine, token: str, url: str, cookie: str, n: int, seconds: float
) -> dict[str, float]:
    """One phase with ``n`` streams open (read by another process) for its whole length."""
    if not n:
        return {"subscribers": 0, **phase(center, engine, token, seconds)}
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, url, cookie, str(n), str(seconds + 5)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout is not None
    reader.stdout.readline()  # "open"
    deadline = time.monotonic() + 20
    while center.live_hub.subscribers < n and time.monotonic() < deadline:
        time.sleep(0.05)
    open_streams = center.live_hub.subscribers
    row = phase(center, engine, token, seconds)
    messages = int(reader.stdout.readline() or 0)
    reader.wait()
    return {"subscribers": open_streams, **row, "messages": messages}


if __name__ == "__main__":
    main()
