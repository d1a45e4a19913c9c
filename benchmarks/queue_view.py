"""How fast the queue view answers with 100,000 pending jobs (issue 19: under 50 ms).

Builds a center from the demo (four companies, a project each), adds ``--jobs`` pending
jobs (default 100,000) spread over the projects with a few priorities, none of which can
start (they ask for a GPU type the center lacks, so they stay pending), starts it (the
control loop takes them into its cache and ranks the projects), then times
``GET /api/v1/queue`` through the real application, in-process: the first page, a page
deep in the queue, and the first page of a member (who sees one company's jobs among
everyone's positions). The baseline is the same request on a center with 100 pending
jobs, measured in the same run. On PostgreSQL the table is vacuumed and analyzed after
the load, as autovacuum would (statistics, visibility map).

Prints one JSON object per line:
``{"store", "view", "jobs", "median_ms", "p95_ms", "small_ms", "vs_small"}``.

    .venv/bin/python benchmarks/queue_view.py [--jobs 100000] [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from axcenter.api.app import create_app
from axcenter.model.ids import new_id
from axcenter.service.bootstrap import ensure_operator, load_demo
from axcenter.service.center import Center
from axcenter.settings import Settings
from axcenter.store import orm

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BATCH = 5_000
MEMBER = "hanbit-engineer"  # a demo engineer: sees one company's jobs


def _pending(center: Center, jobs: int) -> None:
    rng = random.Random(7)
    now = datetime.now(UTC)
    with center.store.read() as s:
        users = {m.project_id: m.user_id for m in s.scalars(select(orm.ProjectMember))}
    projects = sorted(users)
    for start in range(0, jobs, BATCH):
        rows, events = [], []
        for n in range(min(BATCH, jobs - start)):
            project = rng.choice(projects)
            job_id = new_id("job")
            submitted = now - timedelta(seconds=jobs - start - n)
            rows.append(
                {
                    "id": job_id,
                    "project_id": project,
                    "user_id": users[project],
                    "name": f"sweep-{start + n}",
                    "command": ["true"],
                    "workdir": "/tmp",
                    "env": {},
                    "gpus_per_node": 1,
                    "nodes": 1,
                    "cpus_per_node": 1,
                    "memory_mb_per_node": 1024,
                    "time_limit_s": 3600,
                    "priority": rng.choice((0, 0, 0, 10)),
                    "gpu_types": ["B200"],  # no such node here: they stay pending
                    "state": "pending",
                    "submitted_at": submitted,
                    "attempts": 0,
                }
            )
            events.append(
                {"job_id": job_id, "at": submitted, "from_state": None, "to_state": "pending"}
            )
        with center.store.write() as s:
            s.execute(insert(orm.Job), rows)
            s.execute(insert(orm.JobEvent), [{**e, "reason": ""} for e in events])


def _center(root: Path, store: str, jobs: int) -> tuple[Center, dict[str, str], str | None]:
    schema = None
    url = f"sqlite:///{root / 'axcenter.db'}"
    if store == "postgresql":
        schema = f"axc_bench_{secrets.token_hex(4)}"
        url = PG_URL
        with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    settings = Settings(
        data_dir=root / "data",
        database_url=url,
        database_schema=schema,
        local_gpus="A100:8,H100:8",
        stop_jobs_on_shutdown=True,
    )
    center = Center(settings)
    center.store.migrate()
    operator = ensure_operator(center.store)
    assert operator is not None
    tokens = {"operator": operator.token}
    tokens |= {c.user: c.token for c in load_demo(center.store)}
    _pending(center, jobs)
    if schema:  # what autovacuum does after such a load: statistics, visibility map
        with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'VACUUM ANALYZE "{schema}".jobs')
    center.start()
    return center, tokens, schema


def _drop(schema: str | None) -> None:
    if schema:
        with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _time(client: TestClient, url: str, token: str, repeat: int) -> tuple[float, float]:
    headers = {"Authorization": f"Bearer {token}"}
    client.get(url, headers=headers)  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(url, headers=headers)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


VIEWS = {
    "first page (operator)": ("/api/v1/queue?limit=50", "operator"),
    "deep page (operator)": ("/api/v1/queue?limit=50&offset={deep}", "operator"),
    "first page (member)": ("/api/v1/queue?limit=50", MEMBER),
}


def _measure(store: str, jobs: int, repeat: int) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as root:
        center, tokens, schema = _center(Path(root), store, jobs)
        try:
            time.sleep(1.0)  # the first full cycle ranks the projects
            with TestClient(create_app(center)) as client:
                return {
                    view: _time(client, url.format(deep=jobs // 2), tokens[who], repeat)
                    for view, (url, who) in VIEWS.items()
                }
        finally:
            center.stop()
            _drop(schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    small = _measure(args.store, 100, args.repeat)
    full = _measure(args.store, args.jobs, args.repeat)
    for view, (median, p95) in full.items():
        row = {
            "store": args.store,
            "view": view,
            "jobs": args.jobs,
            "median_ms": round(median, 1),
            "p95_ms": round(p95, 1),
            "small_ms": round(small[view][0], 1),
            "vs_small": round(median / small[view][0], 2),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
