"""Where a submission's time goes: CPU per job of the server, PostgreSQL and the client.

One sequential client (live_vs_slurm.py's lean keep-alive connection) posts N jobs to a
fresh `axc up`, every GPU held (queued) or none (live: each job starts and exits). The
CPU time each side spent over those N requests, read from /proc before and after, is
divided by N. On one client the three run one after the other, so their sum is close
to the wall time per job: the figure to shrink is whichever side is largest. CPU time
is also steadier than a rate on a shared machine, so two versions can be compared with
fewer rounds.

    .venv/bin/python benchmarks/submit_cpu.py [-n 3000] [--store postgresql] [--live]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import live_vs_slurm as live  # the axcenter server, as that benchmark runs it (same folder)
from rich.console import Console
from rich.table import Table

TICKS = os.sysconf("SC_CLK_TCK")
WARMUP = 300


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def postgres_cpu_s() -> float:
    """CPU seconds of every PostgreSQL process on this machine (server and backends)."""
    total = 0.0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if "postgres" in (proc / "comm").read_text():
                total += cpu_s(int(proc.name))
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def measure(store: str, n: int, held: bool) -> dict[str, float]:
    body = live.job(["true"])
    with live.Center("H100:8x4", store) as center, center.client() as api:
        if held:
            center.hold(api, 32)
        assert center.proc is not None
        with live.lean_poster(center.port, token=center.token) as post:
            for _ in range(WARMUP):
                post(body)
            server, pg, client = cpu_s(center.proc.pid), postgres_cpu_s(), time.process_time()
            t0 = time.perf_counter()
            for _ in range(n):
                post(body)
            wall = time.perf_counter() - t0
            server = cpu_s(center.proc.pid) - server
            pg = postgres_cpu_s() - pg
            client = time.process_time() - client
    ms = 1000 / n
    return {
        "jobs_per_s": round(n / wall, 1),
        "wall_ms": round(wall * ms, 3),
        "server_ms": round(server * ms, 3),
        "postgres_ms": round(pg * ms, 3) if store == "postgresql" else 0.0,
        "client_ms": round(client * ms, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=3000)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--live", action="store_true", help="jobs start and exit (else held)")
    args = parser.parse_args()
    live.WORKDIR.mkdir(exist_ok=True)
    mode = "live" if args.live else "queued"
    with Console(stderr=True).status(f"{args.n} submissions, {mode}, {args.store}"):
        row = measure(args.store, args.n, held=not args.live)
    print(json.dumps({"store": args.store, "mode": mode, **row}), flush=True)
    table = Table(title=f"CPU per submission, {mode}, {args.store}, n={args.n}")
    for column in ("jobs/s", "wall ms", "server ms", "postgres ms", "client ms"):
        table.add_column(column, justify="right")
    table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


if __name__ == "__main__":
    main()
