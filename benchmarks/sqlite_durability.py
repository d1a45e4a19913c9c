"""What SQLite's ``synchronous=FULL`` costs axcenter's submissions (issue 19).

axcenter runs SQLite in WAL mode with ``synchronous=FULL`` (``store/db.py``): every
commit is on the disk before the API answers, so an acknowledged job survives a power
loss, not only a killed process. ``NORMAL``, the baseline here, syncs the WAL only at
checkpoints: a commit may be lost on power loss, never on a crash of the process.

A center in this process (its API through an in-process ASGI client, the demo's data, on
a data directory on this machine's disk, not tmpfs) takes N held submissions (held: they
stay pending, so the cost is the acceptance's) from 1 client and from 8 threads, once
per setting, alternating, twice; the better of the two is kept. Prints one JSON object
per line ({"synchronous", "clients", "jobs_per_s", "of_normal"}).

    .venv/bin/python benchmarks/sqlite_durability.py [-n 1000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from axcenter.api.app import create_app
from axcenter.service.bootstrap import ensure_operator, load_demo
from axcenter.service.center import Center
from axcenter.settings import Settings

PROJECT = "hanbit-adas"
ENGINEER = "hanbit-engineer"


def measure(synchronous: str, n: int, clients: int, root: Path) -> float:
    """Submissions per second to a fresh center whose SQLite runs with ``synchronous``."""
    data = Path(tempfile.mkdtemp(dir=root))
    center = Center(Settings(data_dir=data, database_url=None, local_gpus="A100:4,H100:4"))

    @event.listens_for(center.store.engine, "connect")
    def _sync(dbapi_conn: Any, _record: Any) -> None:  # after the store's own pragmas
        dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")

    center.start()
    try:
        ensure_operator(center.store)
        token = next(c.token for c in load_demo(center.store) if c.user == ENGINEER)
        headers = {"Authorization": f"Bearer {token}"}
        body = {"project": PROJECT, "command": ["true"], "gpus_per_node": 1, "held": True}
        with TestClient(create_app(center)) as client:
            for _ in range(20):  # warm-up: caches, prepared statements
                client.post("/api/v1/jobs", json=body, headers=headers)

            def post(count: int) -> None:
                for _ in range(count):
                    r = client.post("/api/v1/jobs", json=body, headers=headers)
                    assert r.status_code == 201, r.text

            began = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                for f in [pool.submit(post, n // clients) for _ in range(clients)]:
                    f.result()
            took = time.perf_counter() - began
    finally:
        center.stop()
    return (n // clients) * clients / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="submissions per measurement")
    parser.add_argument("--dir", type=Path, default=None, help="where the data directories go")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as root:
        for clients in (1, 8):
            best: dict[str, float] = {}
            for _ in range(2):
                for mode in ("NORMAL", "FULL"):
                    rate = measure(mode, args.n, clients, Path(root))
                    best[mode] = max(best.get(mode, 0.0), rate)
            for mode, rate in best.items():
                row = {
                    "synchronous": mode,
                    "clients": clients,
                    "jobs_per_s": round(rate, 1),
                    "of_normal": round(rate / best["NORMAL"], 3),
                }
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
