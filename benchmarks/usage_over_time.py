"""How fast usage over time answers (issue 21: the drill-down charts), against the
usage report the center already had, on the same charges in the same run.

Builds a center from the demo (four companies), books ``--charges`` charges (default
100,000: one per job, spread over the last year across the demo's grants and users),
then times through the real application, in-process, as the operator:

- the baseline: ``GET /api/v1/reports/usage?group_by=organization`` (one row per
  organization over the whole history: the report of the same charges without time);
- ``/reports/usage-over-time`` per month, week and day (by organization), and the last
  level of the drill-down (one user's jobs in one project).

Prints one JSON object per line: ``{"store", "view", "charges", "median_ms", "p95_ms",
"baseline_ms", "vs_baseline"}``.

    .venv/bin/python benchmarks/usage_over_time.py [--charges 100000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from axcenter.api.app import create_app
from axcenter.model.ids import new_id
from axcenter.service.bootstrap import ensure_operator, load_demo
from axcenter.service.center import Center
from axcenter.settings import Settings
from axcenter.store import orm

BATCH = 5_000


def _charges(center: Center, count: int) -> tuple[str, str]:
    """Book ``count`` charges over the last year; (a project, a user of it) to drill to."""
    rng = random.Random(11)
    now = datetime.now(UTC)
    with center.store.read() as s:
        grants = [(a.id, a.program_id, a.project_id) for a in s.scalars(select(orm.Allocation))]
        members = {m.project_id: m.user_id for m in s.scalars(select(orm.ProjectMember))}
        grants = [g for g in grants if g[2] in members]
        names = {p.id: p.name for p in s.scalars(select(orm.Project))}
        users = {u.id: u.name for u in s.scalars(select(orm.User))}
    for start in range(0, count, BATCH):
        jobs, ledger = [], []
        for _ in range(min(BATCH, count - start)):
            alloc, program, project = rng.choice(grants)
            at = now - timedelta(seconds=rng.randrange(365 * 86400))
            secs = rng.randrange(60, 8 * 3600)
            job_id = new_id("job")
            jobs.append(
                {
                    "id": job_id,
                    "project_id": project,
                    "user_id": members[project],
                    "name": "bench",
                    "command": ["true"],
                    "workdir": "/tmp",
                    "env": {},
                    "gpus_per_node": 1,
                    "nodes": 1,
                    "cpus_per_node": 1,
                    "memory_mb_per_node": 1024,
                    "time_limit_s": 8 * 3600,
                    "priority": 0,
                    "gpu_types": ["H100"],
                    "state": "succeeded",
                    "submitted_at": at - timedelta(seconds=secs),
                    "attempts": 1,
                }
            )
            won = secs * 4500 // 3600
            ledger.append(
                {
                    "at": at,
                    "kind": "charge",
                    "allocation_id": alloc,
                    "program_id": program,
                    "project_id": project,
                    "job_id": job_id,
                    "gpu_type": "H100",
                    "gpu_seconds": secs,
                    "amount_won": won,
                    "public_won": won * 8 // 10,
                    "copay_won": won - won * 8 // 10,
                }
            )
        with center.store.write() as s:
            s.execute(insert(orm.Job), jobs)
            s.execute(insert(orm.LedgerEntry), ledger)
    _, _, project = grants[0]
    return names[project], users[members[project]]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--charges", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root / "data",
            database_url=f"sqlite:///{root / 'axcenter.db'}",
            local_gpus="A100:8,H100:8",
            stop_jobs_on_shutdown=True,
        )
        center = Center(settings)
        center.store.migrate()
        operator = ensure_operator(center.store)
        assert operator is not None
        load_demo(center.store)
        project, user = _charges(center, args.charges)
        center.start()
        try:
            with TestClient(create_app(center)) as client:
                token = operator.token
                base, _ = _time(
                    client, "/api/v1/reports/usage?group_by=organization", token, args.repeat
                )
                views = {
                    "by organization, per month": "period=month&since=2000-01-01T00:00:00Z",
                    "by organization, per week": "period=week&since=2000-01-01T00:00:00Z",
                    "by organization, per day": "period=day&since=2000-01-01T00:00:00Z",
                    "one user's jobs, per month": (
                        f"period=month&project={project}&user={user}&since=2000-01-01T00:00:00Z"
                    ),
                }
                for view, query in views.items():
                    median, p95 = _time(
                        client, f"/api/v1/reports/usage-over-time?{query}", token, args.repeat
                    )
                    print(
                        json.dumps(
                            {
                                "store": "sqlite",
                                "view": view,
                                "charges": args.charges,
                                "median_ms": round(median, 1),
                                "p95_ms": round(p95, 1),
                                "baseline_ms": round(base, 1),
                                "vs_baseline": round(median / base, 2),
                            }
                        ),
                        flush=True,
                    )
        finally:
            center.stop()


if __name__ == "__main__":
    main()
