"""How long an ``axc`` command takes as a whole process, beside ``sbatch --version``.

Each row is one command line, run as a new process N times; the rounds interleave the
commands so that all are measured over the same minutes of a shared machine. The
commands that talk to a server get a stub one in this process (the standard library's
``http.server`` answering ``/api/v1/jobs`` with a page of 50 jobs, as ``axc jobs`` shows
by default, and a submission with a fixed job), so the figure is the CLI's own: start,
parse, one request, print. ``sbatch
--version`` (Slurm's C client; ``../shared/peers/slurm/install.sh`` installs it) is the
baseline when present; without it its row is left out. Two floors are measured too: the
interpreter alone, and the interpreter importing Typer and ``http.client`` as ``axc``
does (what any command that makes a request must load).

Prints one JSON object per line ({"command", "median_s", "p90_s", "cpu_median_s",
"runs", "of_sbatch", "within_target"}) and a table. Target (issue 20): every command
at most 0.15 s. Bytecode is written and used, as by an installed ``axc``, whatever
``PYTHONDONTWRITEBYTECODE`` says here. The machine is shared: the CPU time of each run
(user + system) moves less with the load of others than the wall time does.

    .venv/bin/python benchmarks/cli_start.py [-n 20]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TARGET_S = 0.15
_JOB = {
    "id": "job_000000000000000001",
    "name": "",
    "project": "p",
    "project_id": "prj_1",
    "user": "u",
    "state": "pending",
    "command": ["true"],
}

#: a default page of ``axc jobs``: 50 jobs in various states, some with long reasons
_PAGE = [
    {
        **_JOB,
        "id": f"job_{i:018d}",
        "name": f"train-{i}",
        "state": ("running", "pending", "succeeded", "failed")[i % 4],
        "gpus_per_node": 1 + i % 4,
        "gpu_types": ["H100"],
        "nodes": 1,
        "reason": "waiting for H100 GPUs: the project's quota is in use" if i % 4 == 1 else None,
        "submitted_at": "2026-12-07T08:00:00+00:00",
        "started_at": None if i % 4 == 1 else "2026-12-07T08:10:00+00:00",
        "ended_at": "2026-12-07T09:10:00+00:00" if i % 4 > 1 else None,
    }
    for i in range(50)
]


class _Stub(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer(200, {"items": _PAGE, "next_cursor": None})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self._answer(201, _JOB)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _axc() -> list[str]:
    script = Path(sys.executable).with_name("axc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "axcenter.cli.main"]


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        argv, check=False, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=20, help="runs of each command")
    args = parser.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "AXC_URL": f"http://127.0.0.1:{server.server_port}", "AXC_TOKEN": "x"}
    # as an installed axc runs: from bytecode compiled once (the warm-up writes it)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    axc = _axc()
    commands: dict[str, list[str]] = {
        # floors: the interpreter alone, and with the CLI framework and HTTP client
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import typer, http.client'": [
            sys.executable,
            "-c",
            "import typer, http.client",
        ],
        "axc --version": [*axc, "--version"],
        "axc --help": [*axc, "--help"],
        "axc submit --help": [*axc, "submit", "--help"],
        "axc jobs --help": [*axc, "jobs", "--help"],
        "axc jobs (stub server, 50 jobs)": [*axc, "jobs"],
        "axc submit -- true (stub server)": [*axc, "submit", "--", "true"],
        "axc quota --help": [*axc, "quota", "--help"],
    }
    sbatch = shutil.which("sbatch")
    if sbatch:
        commands = {"sbatch --version": [sbatch, "--version"], **commands}
        if "SLURM_CONF" not in env:  # sbatch reads its configuration even for --version
            conf = Path(tempfile.mkdtemp(prefix="axc-cli-start-")) / "slurm.conf"
            conf.write_text(
                "ClusterName=axc\nSlurmctldHost=localhost\n"
                "NodeName=n1 CPUs=1\nPartitionName=p Nodes=n1 Default=YES\n"
            )
            env["SLURM_CONF"] = str(conf)
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for argv in commands.values():  # one warm-up each: page cache, .pyc files
        _time(argv, env)
    for _ in range(args.n):
        for name, argv in commands.items():
            wall, used = _time(argv, env)
            times[name].append(wall)
            cpu[name].append(used)
    server.shutdown()

    base = statistics.median(times["sbatch --version"]) if sbatch else None
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        row = {
            "command": name,
            "median_s": round(median, 4),
            "p90_s": round(statistics.quantiles(values, n=10)[-1], 4),
            "cpu_median_s": round(statistics.median(cpu[name]), 4),
            "runs": len(values),
            "of_sbatch": round(median / base, 1) if base else None,
            "within_target": median <= TARGET_S if name.startswith("axc") else None,
        }
        rows.append(row)
        print(json.dumps(row))
    print(f"\n{'command':<40}{'median s':>10}{'p90 s':>10}{'CPU s':>10}{'x sbatch':>10}")
    for row in rows:
        ratio = "" if row["of_sbatch"] is None else f"{row['of_sbatch']:>10}"
        print(
            f"{row['command']:<40}{row['median_s']:>10}{row['p90_s']:>10}"
            f"{row['cpu_median_s']:>10}{ratio:>10}"
        )


if __name__ == "__main__":
    main()
