"""How close axcenter's submission path is to the floor of this machine (issue 8).

One sequential httpx client (the transport of axcenter's Python client) posts the same
job N times to three servers, each a separate `uvicorn` process, in one run:

  empty    a bare ASGI app that answers 201 with a fixed body: HTTP and the client alone
  durable  a bare ASGI app that parses the body and commits it, with the standard
           library's sqlite3, as a job row and its first event into axcenter's own schema
           (WAL, synchronous=NORMAL, as axcenter's store): the least a durable
           acknowledgement costs in Python here
  axcenter `axc up` (as benchmarks/live_vs_slurm.py runs it), every GPU held, so the
           submissions wait: authentication, validation, group commit, scheduler wake-up

Each server is measured twice, alternating, and the better figure kept. Prints one JSON
object per line ({"server", "jobs_per_s", "of_empty", "of_durable"}) and a Rich table.

    .venv/bin/python benchmarks/submit_floor.py [-n 2000]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import live_vs_slurm as live  # the axcenter server, as that benchmark runs it (same folder)
from rich.console import Console
from rich.table import Table

BODY = {"project": live.PROJECT, "command": ["true"], "gpus_per_node": 1}


# -- the bare servers (run in their own process: --serve) ----------------------------


def _empty_app() -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id": "job"}'})

    return app


def _durable_app(db: Path) -> Any:
    from axcenter.store.db import Store  # noqa: PLC0415 (only in the server process)

    Store(f"sqlite:///{db}").migrate()  # axcenter's schema, with all its indexes
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("INSERT INTO organizations (id, name, created_at) VALUES ('o', 'o', '2026')")
    conn.execute(
        "INSERT INTO projects (id, name, organization_id, sector, created_at)"
        " VALUES ('p', 'p', 'o', 'manufacturing', '2026')"
    )
    conn.execute(
        "INSERT INTO users (id, name, organization_id, role, active, created_at)"
        " VALUES ('u', 'u', 'o', 'member', 1, '2026')"
    )

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        req = json.loads(body)
        job_id = "job_" + uuid.uuid4().hex[:16]
        now = datetime.now(UTC).isoformat()
        conn.execute("BEGIN")
        conn.execute(
            "INSERT INTO jobs (id, project_id, user_id, name, command, workdir, env,"
            " gpus_per_node, nodes, cpus_per_node, memory_mb_per_node, time_limit_s,"
            " priority, gpu_types, state, submitted_at, attempts)"
            " VALUES (?, 'p', 'u', '', ?, '/tmp', '{}', ?, 1, 1, 1024, 3600, 0, '[]',"
            " 'pending', ?, 0)",
            (job_id, json.dumps(req["command"]), req["gpus_per_node"], now),
        )
        conn.execute(
            "INSERT INTO job_events (job_id, at, to_state, reason)"
            " VALUES (?, ?, 'pending', 'submitted')",
            (job_id, now),
        )
        conn.execute("COMMIT")
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps({"id": job_id}).encode()})

    return app


def serve(kind: str, port: int, db: Path) -> None:
    import uvicorn  # noqa: PLC0415

    app = _empty_app() if kind == "empty" else _durable_app(db)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the client ------------------------------------------------------------------------


def post_loop(url: str, headers: dict[str, str], n: int) -> float:
    """Sequential submissions per second, after 100 untimed ones."""
    with httpx.Client(base_url=url, headers=headers, timeout=60) as api:
        for _ in range(100):
            api.post("/jobs", json=BODY).raise_for_status()
        t0 = time.perf_counter()
        for _ in range(n):
            r = api.post("/jobs", json=BODY)
            if r.status_code != 201:
                raise RuntimeError(r.text)
        return n / (time.perf_counter() - t0)


def bare(kind: str, n: int) -> float:
    port = live.free_port()
    with tempfile.TemporaryDirectory(prefix="axc-floor-") as tmp:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--port", str(port), "--db", f"{tmp}/f.db"]
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.post(f"http://127.0.0.1:{port}/jobs", json=BODY, timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"the {kind} server did not start") from None
                    time.sleep(0.05)
            return post_loop(f"http://127.0.0.1:{port}", {}, n)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def axcenter(n: int) -> float:
    live.WORKDIR.mkdir(exist_ok=True)
    with live.Center("H100:8x4", "sqlite") as center, center.client() as api:
        center.hold(api, 32)
        return post_loop(f"{center.url}/api/v1", {"Authorization": f"Bearer {center.token}"}, n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--serve", choices=["empty", "durable"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.db)
        return
    err = Console(stderr=True)
    best: dict[str, float] = {}
    for round_ in (1, 2):
        for name, measure in (
            ("empty", lambda: bare("empty", args.n)),
            ("durable", lambda: bare("durable", args.n)),
            ("axcenter", lambda: axcenter(args.n)),
        ):
            with err.status(f"{name}, round {round_}"):
                best[name] = max(best.get(name, 0.0), measure())
    table = Table(title=f"sequential HTTP submissions, one httpx client, n={args.n}")
    for column in ("server", "jobs/s", "of empty", "of durable"):
        table.add_column(column, justify="left" if column == "server" else "right")
    for name, rate in best.items():
        row = {
            "server": name,
            "jobs_per_s": round(rate, 1),
            "of_empty": round(rate / best["empty"], 3),
            "of_durable": round(rate / best["durable"], 3),
        }
        print(json.dumps(row), flush=True)
        table.add_row(name, f"{rate:.0f}", f"{row['of_empty']:.2f}", f"{row['of_durable']:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
