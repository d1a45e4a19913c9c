"""What charging running jobs as they run costs the control side.

The accrual thread (``control/accrue.py``) posts, at each period's end, one ``accrual``
entry per running job, in one write transaction beside the control loop. On SQLite a
cycle that writes meanwhile waits for that transaction, so its duration is what a cycle
can be slowed by, once per period; between period ends a pass does not touch the store.

For R running jobs (each with its hold) on a SQLite file and on PostgreSQL, it times:

- ``accrue``: one pass posting the hour that just ended for every job (R entries; the
  second hour of the runs, after a first pass);
- ``settle``: the baseline, in the same run: settling the same R runs at their end
  (``ledger.settle_jobs``, what a cycle does when R jobs end at once);
- ``idle_check``: a pass between period ends (``Accruer.due``), which reads nothing.

Prints one JSON object per line: {"store", "running", "accrue_ms", "settle_ms",
"ratio", "idle_check_us"}.

    .venv/bin/python benchmarks/accrual.py [--running 1000 5000] [--postgres]
"""

from __future__ import annotations

import argparse
import json
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import insert

from axcenter.accounting.accrual import post_accruals
from axcenter.accounting.ledger import settle_jobs
from axcenter.control.accrue import Accruer
from axcenter.model.ids import new_id
from axcenter.store import orm
from axcenter.store.db import Store

START = datetime(2026, 3, 2, 9, 17, tzinfo=UTC)
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def world(store: Store, running: int) -> list[str]:
    """One program, grant and project; ``running`` running one-GPU jobs, each held."""
    with store.write() as s:
        org = orm.Organization(id=new_id("org"), name="Acme", size_class="SME", region="Seoul")
        prog = orm.Program(id=new_id("prg"), name="AX", budget_won=10**15, public_share_bp=8000)
        s.add_all([org, prog])
        s.flush()
        prj = orm.Project(
            id=new_id("prj"), name="p", organization_id=org.id, program_id=prog.id, sector="bio"
        )
        user = orm.User(id=new_id("usr"), name="u", organization_id=org.id, role="member")
        s.add_all([prj, user])
        s.flush()
        alloc = orm.Allocation(
            id=new_id("alc"),
            project_id=prj.id,
            program_id=prog.id,
            starts_at=START - timedelta(days=1),
            ends_at=START + timedelta(days=90),
            status="active",
            on_exhaustion="stop",
        )
        s.add(alloc)
        s.flush()
        s.add(
            orm.AllocationItem(
                allocation_id=alloc.id, gpu_type="H100", gpu_seconds=10**12, won=10**15
            )
        )
        s.add(
            orm.Price(
                id=new_id("prc"),
                gpu_type="H100",
                won_per_gpu_hour=3001,
                effective_from=START - timedelta(days=30),
            )
        )
        ids = [new_id("job") for _ in range(running)]
        s.execute(
            insert(orm.Job),
            [
                {
                    "id": j,
                    "project_id": prj.id,
                    "user_id": user.id,
                    "command": ["train"],
                    "workdir": "/tmp",
                    "env": {},
                    "gpus_per_node": 1,
                    "nodes": 1,
                    "cpus_per_node": 1,
                    "memory_mb_per_node": 1024,
                    "time_limit_s": 7 * 86_400,
                    "priority": 0,
                    "gpu_types": ["H100"],
                    "state": "running",
                    "gpu_type": "H100",
                    "submitted_at": START,
                    "started_at": START + timedelta(seconds=i % 600),
                    "allocation_id": alloc.id,
                }
                for i, j in enumerate(ids)
            ],
        )
        s.execute(
            insert(orm.LedgerEntry),
            [
                {
                    "at": START,
                    "kind": "hold",
                    "allocation_id": alloc.id,
                    "program_id": prog.id,
                    "project_id": prj.id,
                    "job_id": j,
                    "gpu_type": "H100",
                    "gpu_seconds": 7 * 86_400,
                    "amount_won": 7 * 24 * 3001,
                    "public_won": 0,
                    "copay_won": 0,
                }
                for j in ids
            ],
        )
    return ids


def measure(url: str, schema: str | None, label: str, running: int) -> dict[str, object]:
    store = Store(url, schema)
    store.migrate()
    try:
        ids = world(store, running)
        with store.write() as s:  # the first hour: statements compiled, caches warm
            post_accruals(s, START + timedelta(hours=1, minutes=2), period="hour", zone=UTC)
        now = START + timedelta(hours=2, minutes=2)
        t = time.perf_counter()
        with store.write() as s:
            posted = post_accruals(s, now, period="hour", zone=UTC, lag_s=60)
        accrue = time.perf_counter() - t
        assert posted == running, posted
        accruer = Accruer(store, period="hour", zone=UTC, lag_s=60)
        accruer.run_once(now)  # nothing new: its watermark is now
        n = 10_000
        t = time.perf_counter()
        for _ in range(n):
            accruer.due(now + timedelta(minutes=5))
        idle = (time.perf_counter() - t) / n
        t = time.perf_counter()
        with store.write() as s:
            settle_jobs(s, [(j, now) for j in ids])
        settle = time.perf_counter() - t
    finally:
        store.dispose()
    return {
        "store": label,
        "running": running,
        "accrue_ms": round(accrue * 1000, 1),
        "settle_ms": round(settle * 1000, 1),
        "ratio": round(accrue / settle, 2),
        "idle_check_us": round(idle * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--running", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL (schema)")
    args = parser.parse_args()
    for running in args.running:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            print(json.dumps(measure(url, None, "sqlite", running)), flush=True)
        if args.postgres:
            schema = f"axc_bench_accrual_{secrets.token_hex(4)}"
            with psycopg.connect("postgresql://postgres@127.0.0.1:5432/test", autocommit=True) as c:
                c.execute(f'CREATE SCHEMA "{schema}"')
            try:
                print(json.dumps(measure(PG, schema, "postgresql", running)), flush=True)
            finally:
                with psycopg.connect(
                    "postgresql://postgres@127.0.0.1:5432/test", autocommit=True
                ) as c:
                    c.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
