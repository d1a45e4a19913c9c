"""How close axcenter's submission path is to the floor of this machine (issue 8).

One sequential client posts the same job N times to three servers, each a separate
`uvicorn` process, in one run. The client is one keep-alive connection of the standard
library's http.client, as live_vs_slurm.py's first figure (`--client httpx`: httpx, the
transport of axcenter's Python client, whose own cost per request is about 3x larger):

  empty    a bare ASGI app that answers 201 with a fixed body: HTTP and the client alone
  durable  a bare ASGI app that parses the body and commits it, with the standard
           library's sqlite3, as a job row and its first event into axcenter's own schema
           (WAL, synchronous=NORMAL, as axcenter's store), or with psycopg into a fresh
           PostgreSQL schema (--store postgresql) as one statement in autocommit mode
           (as axcenter's store does there): the least a durable acknowledgement costs
           in Python here
  axcenter `axc up` (as benchmarks/live_vs_slurm.py runs it), every GPU held, so the
           submissions wait: authentication, validation, group commit, scheduler wake-up

Each server is measured twice, alternating, and the better figure kept. Prints one JSON
object per line ({"server", "jobs_per_s", "of_empty", "of_durable"}) and a Rich table.

    .venv/bin/python benchmarks/submit_floor.py [-n 2000] [--client http|httpx] [--store postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
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


def _durable_app(db: str) -> Any:
    """``db``: a SQLite file, or ``postgresql:SCHEMA`` (a fresh schema of the bench's
    PostgreSQL database): the driver's own connection, one transaction per request."""
    from axcenter.store.db import Store  # noqa: PLC0415 (only in the server process)

    conn: Any
    if db.startswith("postgresql:"):
        import psycopg  # noqa: PLC0415

        schema = db.split(":", 1)[1]
        Store(live.PG_URL, schema).migrate()  # axcenter's schema, with all its indexes
        conn = psycopg.connect(
            live.PG_URL.replace("+psycopg", ""), options=f"-csearch_path={schema}"
        )
        mark = "%s"
    else:
        Store(f"sqlite:///{db}").migrate()
        conn = sqlite3.connect(db)  # transactions begin implicitly, as psycopg's do
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        mark = "?"
    created = "'2026-01-01T00:00:00+00:00'"
    conn.execute(f"INSERT INTO organizations (id, name, created_at) VALUES ('o', 'o', {created})")
    conn.execute(
        "INSERT INTO projects (id, name, organization_id, sector, created_at)"
        f" VALUES ('p', 'p', 'o', 'manufacturing', {created})"
    )
    conn.execute(
        "INSERT INTO users (id, name, organization_id, role, active, created_at)"
        f" VALUES ('u', 'u', 'o', 'member', TRUE, {created})"
    )
    conn.commit()
    insert_job = (
        "INSERT INTO jobs (id, project_id, user_id, name, command, workdir, env,"
        " gpus_per_node, nodes, cpus_per_node, memory_mb_per_node, time_limit_s,"
        " priority, gpu_types, state, submitted_at, attempts, borrowed)"
        f" VALUES ({mark}, 'p', 'u', '', {mark}, '/tmp', '{{}}', {mark}, 1, 1, 1024, 3600, 0,"
        f" '[]', 'pending', {mark}, 0, FALSE)"
    )
    insert_event = (
        "INSERT INTO job_events (job_id, at, to_state, reason)"
        f" VALUES ({mark}, {mark}, 'pending', 'submitted')"
    )

    one_statement = db.startswith("postgresql:")
    if one_statement:  # as axcenter's store writes a submission there (store/async_inserts)
        conn.autocommit = True
        insert_both = f"WITH j AS ({insert_job}) {insert_event}"

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
        job = (job_id, json.dumps(req["command"]), req["gpus_per_node"], now)
        if one_statement:
            conn.execute(insert_both, (*job, job_id, now))
        else:
            conn.execute(insert_job, job)
            conn.execute(insert_event, (job_id, now))
            conn.commit()
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps({"id": job_id}).encode()})

    return app


def serve(kind: str, port: int, db: str) -> None:
    import uvicorn  # noqa: PLC0415

    app = _empty_app() if kind == "empty" else _durable_app(db)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the client ------------------------------------------------------------------------


def post_loop(port: int, path: str, token: str, n: int, client: str) -> float:
    """Sequential submissions per second, after 100 untimed ones."""
    if client == "http":
        poster = live.lean_poster(port, path, token)
    else:
        poster = httpx_poster(port, path, token)
    with poster as post:
        for _ in range(100):
            post(BODY)
        t0 = time.perf_counter()
        for _ in range(n):
            post(BODY)
        return n / (time.perf_counter() - t0)


@contextlib.contextmanager
def httpx_poster(port: int, path: str, token: str) -> Iterator[live.Poster]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as api:

        def post(body: dict[str, Any]) -> None:
            r = api.post(path, json=body)
            if r.status_code != 201:
                raise RuntimeError(r.text)

        yield post


def bare(kind: str, n: int, client: str, store: str) -> float:
    port = live.free_port()
    with tempfile.TemporaryDirectory(prefix="axc-floor-") as tmp, database(store, tmp) as db:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--port", str(port), "--db", db]
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
            return post_loop(port, "/jobs", "", n, client)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@contextlib.contextmanager
def database(store: str, tmp: str) -> Iterator[str]:
    """The bare durable server's database: a file in ``tmp``, or a PostgreSQL schema."""
    if store == "sqlite":
        yield f"{tmp}/f.db"
        return
    import psycopg  # noqa: PLC0415

    schema = f"axc_floor_{uuid.uuid4().hex[:8]}"
    try:
        yield f"postgresql:{schema}"
    finally:
        with psycopg.connect(live.PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def axcenter(n: int, client: str, store: str) -> float:
    live.WORKDIR.mkdir(exist_ok=True)
    with live.Center("H100:8x4", store) as center, center.client() as api:
        center.hold(api, 32)
        return post_loop(center.port, "/api/v1/jobs", center.token, n, client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument(
        "--client",
        choices=["http", "httpx"],
        default="http",
        help="http: one keep-alive http.client connection (live_vs_slurm's); httpx: httpx",
    )
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--serve", choices=["empty", "durable"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.db)
        return
    err = Console(stderr=True)
    best: dict[str, float] = {}
    for round_ in (1, 2):
        for name, measure in (
            ("empty", lambda: bare("empty", args.n, args.client, args.store)),
            ("durable", lambda: bare("durable", args.n, args.client, args.store)),
            ("axcenter", lambda: axcenter(args.n, args.client, args.store)),
        ):
            with err.status(f"{name}, round {round_}"):
                best[name] = max(best.get(name, 0.0), measure())
    table = Table(
        title=f"sequential HTTP submissions, one {args.client} client, {args.store}, n={args.n}"
    )
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
