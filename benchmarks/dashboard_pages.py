"""How fast the dashboard's pages load on a center with 100,000 finished jobs.

Builds two centers from the same demo (programs, companies, projects, grants): one with
no history and one with ``--jobs`` finished jobs (default 100,000) spread over 60 days,
each with its lifecycle events and its charge in the ledger. Then times every main page
(in-process HTTP through the real application: routing, session, queries, templates) and,
as the baseline, the API's JSON answer for the same data where there is one.

Prints one JSON object per line:
``{"page": ..., "jobs": N, "median_ms": x, "p95_ms": y, "empty_ms": z, "vs_empty": r}``
where ``vs_empty`` is the page's median on the full center over its median on the empty
one, measured in the same run: near 1 means the page's cost does not grow with history.

    .venv/bin/python benchmarks/dashboard_pages.py [--jobs 100000] [--repeat 15]
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
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import insert, select

from axcenter.api.app import create_app
from axcenter.model.ids import new_id
from axcenter.service.bootstrap import ensure_operator, load_demo
from axcenter.service.center import Center
from axcenter.settings import Settings
from axcenter.store import orm
from axcenter.web.session import SESSION_COOKIE

BATCH = 5_000
STATES = ("succeeded",) * 17 + ("failed", "cancelled", "timed_out")


def _history(center: Center, jobs: int, progress: Progress) -> None:
    """``jobs`` finished jobs of the demo's projects, with events and charges."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    with center.store.read() as s:
        users = {m.project_id: m.user_id for m in s.scalars(select(orm.ProjectMember))}
        allocs = {a.project_id: (a.id, a.program_id) for a in s.scalars(select(orm.Allocation))}
    projects = sorted(set(users) & set(allocs))
    task = progress.add_task(f"history: {jobs:,} finished jobs", total=jobs)
    for start in range(0, jobs, BATCH):
        rows, events, ledger = [], [], []
        for _ in range(min(BATCH, jobs - start)):
            project = rng.choice(projects)
            submitted = now - timedelta(seconds=rng.uniform(3600, 60 * 86400))
            started = submitted + timedelta(seconds=rng.expovariate(1 / 300))
            ended = started + timedelta(seconds=rng.expovariate(1 / 1800) + 10)
            gpus = rng.choice((1, 1, 1, 2, 4, 8))
            gpu_type = rng.choice(("A100", "H100"))
            state = rng.choice(STATES)
            job_id = new_id("job")
            rows.append(
                {
                    "id": job_id,
                    "project_id": project,
                    "user_id": users[project],
                    "name": f"train-{start}",
                    "command": ["python", "train.py"],
                    "workdir": "/tmp",
                    "env": {},
                    "gpus_per_node": gpus,
                    "nodes": 1,
                    "cpus_per_node": 4,
                    "memory_mb_per_node": 16_384,
                    "time_limit_s": 86_400,
                    "priority": 0,
                    "gpu_types": [gpu_type],
                    "state": state,
                    "gpu_type": gpu_type,
                    "placement": [],
                    "submitted_at": submitted,
                    "started_at": started,
                    "ended_at": ended,
                    "exit_code": 0 if state == "succeeded" else 1,
                    "attempts": 1,
                    "allocation_id": allocs[project][0],
                }
            )
            events += [
                {"job_id": job_id, "at": submitted, "from_state": None, "to_state": "pending"},
                {"job_id": job_id, "at": started, "from_state": "pending", "to_state": "running"},
                {"job_id": job_id, "at": ended, "from_state": "running", "to_state": state},
            ]
            seconds = int((ended - started).total_seconds()) * gpus
            won = seconds * 3  # ~10,800 won per GPU-hour
            ledger.append(
                {
                    "at": ended,
                    "kind": "charge",
                    "allocation_id": allocs[project][0],
                    "program_id": allocs[project][1],
                    "project_id": project,
                    "job_id": job_id,
                    "gpu_type": gpu_type,
                    "gpu_seconds": seconds,
                    "amount_won": won,
                    "public_won": won * 4 // 5,
                    "copay_won": won - won * 4 // 5,
                }
            )
        with center.store.write() as s:
            s.execute(insert(orm.Job), rows)
            s.execute(insert(orm.JobEvent), [{**e, "reason": ""} for e in events])
            s.execute(insert(orm.LedgerEntry), ledger)
        progress.advance(task, len(rows))


def _center(root: Path, jobs: int, progress: Progress) -> tuple[Center, str]:
    settings = Settings(
        data_dir=root / "data",
        database_url=f"sqlite:///{root / 'axcenter.db'}",
        local_gpus="A100:8x2,H100:8x2",
        stop_jobs_on_shutdown=True,  # a benchmark leaves no job behind
    )
    center = Center(settings)
    center.store.migrate()
    operator = ensure_operator(center.store)
    assert operator is not None
    load_demo(center.store)
    if jobs:
        _history(center, jobs, progress)
    center.start()
    return center, operator.token


def _pages(center: Center) -> dict[str, tuple[str, str | None]]:
    """page -> (dashboard URL, API URL of the same data or None)."""
    with center.store.read() as s:
        project = s.scalars(select(orm.Project.name).order_by(orm.Project.name)).first()
        program = s.scalars(select(orm.Program.name).order_by(orm.Program.name)).first()
        job = s.scalars(select(orm.Job.id).order_by(orm.Job.id.desc())).first()
        old = s.scalars(select(orm.Job.id).order_by(orm.Job.id).offset(100)).first()
    pages: dict[str, tuple[str, str | None]] = {
        "cluster (24 h history)": ("/ui/", "/api/v1/cluster/history"),
        "cluster (7 d history)": ("/ui/?hours=168", "/api/v1/cluster/history?hours=168"),
        "queue": ("/ui/queue", "/api/v1/queue"),
        "jobs: newest 50": ("/ui/jobs", "/api/v1/jobs?limit=50"),
        "jobs: finished": ("/ui/jobs?view=finished", "/api/v1/jobs?state=succeeded&limit=50"),
        "jobs: failed": ("/ui/jobs?state=failed", "/api/v1/jobs?state=failed&limit=50"),
        "jobs: one project": (f"/ui/jobs?project={project}", f"/api/v1/jobs?project={project}"),
        "projects": ("/ui/projects", "/api/v1/projects"),
        "project": (f"/ui/projects/{project}", f"/api/v1/projects/{project}"),
        "requests": ("/ui/requests", "/api/v1/allocation-requests"),
        "program (reports)": (f"/ui/programs/{program}", None),
    }
    if job:
        pages["job"] = (f"/ui/jobs/{job}", f"/api/v1/jobs/{job}")
    if old:
        pages["jobs: page deep in history"] = (f"/ui/jobs?cursor={old}", None)
    return pages


def _time(client: TestClient, url: str, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    console = Console(stderr=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp, Progress(console=console) as progress:
        empty, empty_token = _center(Path(tmp) / "empty", 0, progress)
        full, full_token = _center(Path(tmp) / "full", args.jobs, progress)
        try:
            pages = _pages(full)
            task = progress.add_task("pages", total=len(pages))
            for name, (url, api_url) in pages.items():
                cells = {}
                for label, center, token in (
                    ("empty", empty, empty_token),
                    ("full", full, full_token),
                ):
                    client = TestClient(create_app(center))
                    client.cookies.set(SESSION_COOKIE, token)
                    # the empty center has no job page or deep page: its job list instead
                    deep = "cursor=" in url or "/ui/jobs/job_" in url
                    page_url = "/ui/jobs" if label == "empty" and deep else url
                    cells[label] = _time(client, page_url, args.repeat)
                    if label == "full" and api_url:
                        api = TestClient(create_app(center))
                        api.headers["Authorization"] = f"Bearer {token}"
                        cells["api"] = _time(api, api_url, args.repeat)
                median, p95 = cells["full"]
                row = {
                    "page": name,
                    "jobs": args.jobs,
                    "median_ms": round(median, 1),
                    "p95_ms": round(p95, 1),
                    "empty_ms": round(cells["empty"][0], 1),
                    "vs_empty": round(median / cells["empty"][0], 2),
                    "api_ms": round(cells["api"][0], 1) if "api" in cells else None,
                }
                results.append(row)
                print(json.dumps(row), flush=True)
                progress.advance(task)
        finally:
            empty.stop()
            full.stop()
    table = Table(title=f"dashboard pages, {args.jobs:,} finished jobs (ms)")
    for column in ("page", "median", "p95", "empty center", "vs empty", "API JSON"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for r in results:
        table.add_row(
            r["page"],
            f"{r['median_ms']:.1f}",
            f"{r['p95_ms']:.1f}",
            f"{r['empty_ms']:.1f}",
            f"{r['vs_empty']:.2f}",
            "" if r["api_ms"] is None else f"{r['api_ms']:.1f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
