"""axcenter's live path side by side with Slurm 22.05 on this machine (issue 8).

Starts a fresh axcenter (`axc up`, temporary data directory, 4 nodes x 8 logical GPUs)
for each workload, and Slurm through ../shared/peers/slurm (installed with apt on first
use; if it cannot be, only axcenter's figures are printed). Workloads:

  latency      submit-to-start on an idle cluster: runs x samples, jittered gaps; the job
               writes its own start time (`date +%s.%N`), as Slurm's bench does
  submit_http  N sequential HTTP submissions from one client, queue held and live, in 3
               rounds alternating with sbatch's (medians; the machine drifts): a
               lean keep-alive client (the standard library's http.client, ~0.3 ms of its
               own per request here, as sbatch is a C program), and axcenter's Python
               client (`axcenter.client`, over http.client too, with its JSON and retries)
  submit_cli   the same with one `axc submit` process per job (fewer jobs: it is slow)
  array        one array of N tasks; its submit time and first submit to queue empty
  drain        N one-second jobs on 32 and on 8 GPUs; efficiency = ideal / drain time
  pending      100,000 jobs pending (arrays of 2-node, 16-GPU jobs; 24 of 32 GPUs held),
               then submit-to-start of a 1-GPU job that fits, from another project
               (target: under 1 s; Slurm's figure is not measured the same way: none)

Every job discards its output (`output: discard`), as every job of Slurm's bench does
(`sbatch -o /dev/null`); `submit_http_live_logged` repeats the live submissions with
axcenter's default, a log file per job, for comparison. `--quick` leaves out the rows
without a target (the Python client's, the logged one).

Prints one JSON object per line: {"bench", "axcenter", "slurm", "ratio", "unit"} (ratio
= axcenter / slurm, or slurm / axcenter where lower is better, so > 1 means axcenter is
better), then a Rich table.

    .venv/bin/python benchmarks/live_vs_slurm.py [--quick] [--store postgresql] [--no-slurm]
    .venv/bin/python benchmarks/live_vs_slurm.py --pending-100k [--store postgresql]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from axcenter.client import Client

ROOT = Path(__file__).resolve().parent.parent
SLURM = ROOT.parent / "shared" / "peers" / "slurm"
AXC = str(Path(sys.executable).with_name("axc"))
PG_URL = os.environ.get("AXC_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PROJECT = "hanbit-adas"
OTHER_PROJECT = "daeil-defect-vision"  # a second demo project
err = Console(stderr=True)
#: where the jobs run: one shared directory, as Slurm's bench runs its jobs in one
#: ``--chdir`` directory (axcenter's default, a new directory per job, costs an inode each)
WORKDIR = Path(tempfile.gettempdir()) / "axc-bench-work"
#: rounds of the submission rows with targets (axcenter and sbatch alternating; medians)
SUBMIT_ROUNDS = 3
#: --quick's drain: four full waves of one-second jobs on 32 GPUs
QUICK_DRAIN = 128


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Center:
    """One `axc up` in a temporary directory, on SQLite or a fresh PostgreSQL schema."""

    gpus: str
    store: str
    port: int = field(default_factory=free_port)
    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="axc-bench-")))
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    schema: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Center:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AXC_")}
        env["AXC_KILL_GRACE_S"] = "2"
        env["AXC_STOP_JOBS_ON_SHUTDOWN"] = "true"  # a benchmark leaves no job behind
        env["AXC_MAX_SUBMISSIONS_PER_S_PER_USER"] = "1e9"  # it measures the fastest rate
        env["AXC_MAX_SUBMISSIONS_PER_S_PER_PROJECT"] = "1e9"
        env["AXC_MAX_PENDING_JOBS_PER_USER"] = env["AXC_MAX_PENDING_JOBS_PER_PROJECT"] = "10000000"
        if self.store == "postgresql":
            import psycopg  # noqa: PLC0415 (only for this store)

            self.schema = f"axc_bench_{secrets.token_hex(4)}"
            with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{self.schema}"')
            env["AXC_DATABASE_URL"] = PG_URL
            env["AXC_DATABASE_SCHEMA"] = self.schema
        log = (self.dir / "axc-up.log").open("wb")
        self.proc = subprocess.Popen(
            [
                AXC,
                "up",
                "--demo",
                "--data-dir",
                str(self.dir / "data"),
                "--port",
                str(self.port),
                "--gpus",
                self.gpus,
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        tokens = self.dir / "data" / "first-start-tokens"
        found = re.search(r"AXC_TOKEN=(axc_\S+)", tokens.read_text() if tokens.exists() else "")
        if not found:
            raise RuntimeError(f"axc up did not start: {(self.dir / 'axc-up.log').read_text()}")
        self.token = found.group(1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.schema:
            import psycopg  # noqa: PLC0415

            with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{self.schema}" CASCADE')
        # removed when the whole run ends: on ext4 without a journal (this machine) a new
        # file's inode is searched past every inode deleted in the last minutes, so
        # deleting a center's thousands of logs here slows the next center's launches
        atexit.register(shutil.rmtree, self.dir, ignore_errors=True)

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=120,
        )

    def hold(self, api: httpx.Client, gpus: int) -> list[str]:
        """Fill every GPU with a sleeper: what is submitted next waits (queue held)."""
        ids = [
            api.post("/jobs", json=job(["sleep", "3600"], gpus_per_node=8)).json()["id"]
            for _ in range(gpus // 8)
        ]
        for job_id in ids:
            until(api, job_id, "running")
        return ids

    def idle(self, api: httpx.Client, timeout: float = 900) -> float:
        """Wait until nothing is pending or running; returns when (time.time())."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            summary = api.get("/cluster").json()["summary"]
            if summary["pending_jobs"] == 0 and summary["running_jobs"] == 0:
                return time.time()
            time.sleep(0.05)
        raise TimeoutError("the queue did not empty")


def job(command: list[str], **fields: Any) -> dict[str, Any]:
    return {
        "project": PROJECT,
        "command": command,
        "gpus_per_node": 1,
        "workdir": str(WORKDIR),
        "output": "discard",  # as Slurm's bench: sbatch -o /dev/null
        **fields,
    }


def until(api: httpx.Client, job_id: str, state: str) -> dict[str, Any]:
    for _ in range(600):
        found: dict[str, Any] = api.get(f"/jobs/{job_id}/wait", params={"timeout": 0.1}).json()
        if found["state"] == state:
            return found
    raise TimeoutError(f"{job_id} did not reach {state}")


# -- axcenter workloads ---------------------------------------------------------------


def ax_latency(store: str, runs: int, samples: int, jitter: float) -> dict[str, float]:
    out: list[float] = []
    with Center("H100:8x4", store) as center, center.client() as api:
        stamp = center.dir / "start"
        for _ in range(runs):
            for _ in range(samples):
                time.sleep(0.2 + random.uniform(0, jitter))  # idle gaps, as Slurm's bench
                stamp.unlink(missing_ok=True)
                t0 = time.time()
                job_id = api.post("/jobs", json=job(["sh", "-c", f"date +%s.%N > {stamp}"])).json()[
                    "id"
                ]
                until(api, job_id, "succeeded")
                out.append(float(stamp.read_text()) - t0)
    return {"median_s": statistics.median(out), "p90_s": pct(out, 0.9), "n": len(out)}


def ax_submit_http(
    store: str, n: int, held: bool, client: str = "http", output: str = "discard"
) -> dict[str, float]:
    """``client``: "http" (one keep-alive connection of http.client) or "python"."""
    with Center("H100:8x4", store) as center, center.client() as api:
        if held:
            center.hold(api, 32)
        body = job(["true"], output=output)
        times = []
        poster = (
            lean_poster(center.port, token=center.token)
            if client == "http"
            else python_poster(center)
        )
        with poster as post:
            t0 = time.perf_counter()
            for _ in range(n):
                t = time.perf_counter()
                post(body)
                times.append(time.perf_counter() - t)
            wall = time.perf_counter() - t0
    return {
        "jobs_per_s": n / wall,
        "p50_ms": pct(times, 0.5) * 1000,
        "p99_ms": pct(times, 0.99) * 1000,
    }


Poster = Callable[[dict[str, Any]], None]


@contextlib.contextmanager
def lean_poster(port: int, path: str = "/api/v1/jobs", token: str = "") -> Iterator[Poster]:
    """POST ``path`` on one keep-alive connection, checking each answer is a 201."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"

    def post(body: dict[str, Any]) -> None:
        conn.request("POST", path, json.dumps(body), headers)
        answer = conn.getresponse()
        data = answer.read()
        if answer.status != 201:
            raise RuntimeError(data.decode())

    with contextlib.closing(conn):
        yield post


@contextlib.contextmanager
def python_poster(center: Center) -> Iterator[Poster]:
    """``Client.submit_job``: what a script using axcenter's Python client does."""
    with Client(center.url, center.token) as client:

        def post(body: dict[str, Any]) -> None:
            client.submit_job(**body)  # raises ApiError unless accepted

        yield post


def ax_submit_cli(store: str, n: int) -> dict[str, float]:
    with Center("H100:8x4", store) as center:
        env = {**os.environ, "AXC_URL": center.url, "AXC_TOKEN": center.token}
        with center.client() as api:
            center.hold(api, 32)
        t0 = time.perf_counter()
        for _ in range(n):
            subprocess.run(
                [AXC, "submit", "--project", PROJECT, "--output", "discard", "--", "true"],
                env=env,
                check=True,
                capture_output=True,
            )
        wall = time.perf_counter() - t0
    return {"jobs_per_s": n / wall}


def ax_array(store: str, n: int) -> dict[str, float]:
    with Center("H100:8x4", store) as center, center.client() as api:
        t0 = time.time()
        r = api.post("/arrays", json={**job(["true"]), "indices": f"0-{n - 1}"})
        submitted = time.time()
        if r.status_code != 201:
            raise RuntimeError(r.text)
        done = center.idle(api)
    return {"submit_s": submitted - t0, "all_done_s": done - t0}


def ax_drain(store: str, n: int, gpus: int) -> dict[str, float]:
    spec = "H100:8x4" if gpus == 32 else "H100:8"
    with Center(spec, store) as center, center.client() as api:
        stamps = center.dir / "stamps"
        holders = center.hold(api, gpus)
        script = f's=$(date +%s.%N); sleep 1; echo "$s $(date +%s.%N)" >> {stamps}'
        chunk = 1000
        for start in range(0, n, chunk):
            batch = [job(["sh", "-c", script], time_limit_s=60)] * min(chunk, n - start)
            r = api.post("/jobs:batch", json={"jobs": batch})
            if r.status_code != 201:
                raise RuntimeError(r.text)
        t0 = time.time()
        for job_id in holders:
            api.post(f"/jobs/{job_id}/cancel")
        center.idle(api)
        pairs = [tuple(map(float, line.split())) for line in stamps.read_text().splitlines()]
    ends = [e for _, e in pairs]
    busy = sum(e - s for s, e in pairs)
    drain = max(ends) - t0
    ideal = n * 1.0 / gpus
    return {
        "drain_s": drain,
        "efficiency": ideal / drain,
        "gpu_busy_frac": busy / (gpus * drain),
        "first_start_s": min(s for s, _ in pairs) - t0,
        "completed": len(pairs),
    }


def ax_pending(store: str, pending: int, samples: int) -> dict[str, float]:
    """Submit-to-start of a job that fits while ``pending`` jobs wait (none can start)."""
    with Center("H100:8x4", store) as center, center.client() as api:
        for _ in range(3):  # 24 of 32 GPUs busy for an hour: node 4 stays free
            r = api.post("/jobs", json=job(["sleep", "3600"], gpus_per_node=8))
            until(api, r.json()["id"], "running")
        backlog = job(["true"], gpus_per_node=8, nodes=2, time_limit_s=7200)
        t0 = time.time()
        chunk = 25_000
        for first in range(0, pending, chunk):
            last = min(first + chunk, pending) - 1
            r = api.post("/arrays", json={**backlog, "indices": f"{first}-{last}"})
            if r.status_code != 201:
                raise RuntimeError(r.text)
        loaded = time.time() - t0
        for _ in range(600):  # the loop has taken them all in
            if api.get("/cluster").json()["summary"]["pending_jobs"] >= pending:
                break
            time.sleep(0.1)
        else:
            raise TimeoutError("the backlog did not reach the queue")
        stamp = center.dir / "start"
        out: list[float] = []
        probe = {**job(["sh", "-c", f"date +%s.%N > {stamp}"]), "project": OTHER_PROJECT}
        for _ in range(samples):
            time.sleep(0.5 + random.uniform(0, 0.5))
            stamp.unlink(missing_ok=True)
            t = time.time()
            job_id = api.post("/jobs", json={**probe, "time_limit_s": 60}).json()["id"]
            until(api, job_id, "succeeded")
            out.append(float(stamp.read_text()) - t)
    return {"median_s": statistics.median(out), "max_s": max(out), "load_s": loaded}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# -- Slurm ----------------------------------------------------------------------------


def slurm_available() -> bool:
    if not (SLURM / "bench.sh").exists():
        err.print("[yellow]../shared/peers/slurm is missing: axcenter's figures only[/]")
        return False
    probe = subprocess.run([str(SLURM / "install.sh")], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        err.print(
            f"[yellow]Slurm cannot be installed here ({probe.stderr.strip()[-200:]}); "
            "axcenter's figures only[/]"
        )
        return False
    return True


def slurm(*args: str) -> list[dict[str, Any]]:
    """Run Slurm's own bench (fresh cluster, stopped afterwards); its summary lines."""
    done = subprocess.run(
        ["bash", str(SLURM / "bench.sh"), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        err.print(f"[yellow]slurm bench {args} failed: {done.stderr.strip()[-300:]}[/]")
        return []
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [rec for rec in lines if rec.get("kind") == "summary"]


def median(values: Sequence[float | None]) -> float | None:
    """The median of the values measured (None where a side measured nothing)."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def first(records: list[dict[str, Any]], bench: str, key: str, **match: Any) -> float | None:
    for rec in records:
        if rec.get("bench") == bench and all(rec.get(k) == v for k, v in match.items()):
            value = rec.get(key)
            return float(value) if value is not None else None
    return None


# -- report ---------------------------------------------------------------------------


@dataclass
class Row:
    bench: str
    axcenter: float
    slurm: float | None
    unit: str
    higher_is_better: bool

    @property
    def ratio(self) -> float | None:
        if self.slurm is None or not self.axcenter or not self.slurm:
            return None
        return self.axcenter / self.slurm if self.higher_is_better else self.slurm / self.axcenter


def emit(row: Row) -> None:
    print(
        json.dumps(
            {
                "bench": row.bench,
                "axcenter": round(row.axcenter, 4),
                "slurm": None if row.slurm is None else round(row.slurm, 4),
                "ratio": None if row.ratio is None else round(row.ratio, 2),
                "unit": row.unit,
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a reduced run, under 2 minutes")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--no-slurm", action="store_true", help="axcenter's figures only")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument(
        "--pending-100k", action="store_true", help="only the 100,000-pending-jobs case"
    )
    parser.add_argument("--pending", type=int, default=100_000, help="backlog of that case")
    args = parser.parse_args()
    WORKDIR.mkdir(exist_ok=True)
    if args.pending_100k:
        pending_case(args.store, args.pending, [])
        return
    quick = args.quick
    n = 200 if quick else args.n
    runs, samples, jitter = (1, 5, 0.3) if quick else (3, 10, 3.0)
    use_slurm = not args.no_slurm and slurm_available()
    rows: list[Row] = []

    def add(row: Row) -> None:
        rows.append(row)
        emit(row)

    with err.status("axcenter: latency"):
        lat = ax_latency(args.store, runs, samples, jitter)
    sl = (
        slurm(
            "--only",
            "latency",
            "--runs",
            str(runs),
            "--latency-samples",
            str(samples),
            "--latency-jitter",
            str(jitter),
        )
        if use_slurm
        else []
    )
    add(
        Row(
            "submit_to_start_median",
            lat["median_s"],
            first(sl, "latency", "pooled_median_s"),
            "s",
            higher_is_better=False,
        )
    )

    # The machine drifts by the minute: the rows with targets alternate axcenter and
    # sbatch in rounds and compare medians, so both sides are measured over the same span.
    rounds = 1 if quick else SUBMIT_ROUNDS
    held: list[float] = []
    live: list[float] = []
    sbatch_held: list[float | None] = []
    sbatch_live: list[float | None] = []
    for round_ in range(1, rounds + 1):
        with err.status(f"axcenter: sequential HTTP submissions, round {round_}/{rounds}"):
            held.append(ax_submit_http(args.store, n, held=True)["jobs_per_s"])
            live.append(ax_submit_http(args.store, n, held=False)["jobs_per_s"])
        if use_slurm:
            with err.status(f"slurm: sequential sbatch, round {round_}/{rounds}"):
                sl = slurm("--only", "submit_loop_queued,submit_loop", "--runs", "1", "-n", str(n))
            sbatch_held.append(first(sl, "submit_loop", "jobs_per_s_median", mode="queued"))
            sbatch_live.append(first(sl, "submit_loop", "jobs_per_s_median", mode="live"))
    with err.status("axcenter: sequential HTTP submissions, rows without a target"):
        # no targets: not in --quick, which must stay under 2 minutes
        py_held = None if quick else ax_submit_http(args.store, n, held=True, client="python")
        py_live = None if quick else ax_submit_http(args.store, n, held=False, client="python")
        logged = None if quick else ax_submit_http(args.store, n, held=False, output="log")
    sbatch_queued = median(sbatch_held)
    sbatch_live_rate = median(sbatch_live)
    if rounds > 1:
        for name, values in (
            ("axcenter held", held),
            ("sbatch held", sbatch_held),
            ("axcenter live", live),
            ("sbatch live", sbatch_live),
        ):
            shown = ", ".join("-" if v is None else f"{v:.1f}" for v in values)
            err.print(f"submissions, {name}, jobs/s by round: {shown}")
    add(Row("submit_http_queued", statistics.median(held), sbatch_queued, "jobs/s", True))
    add(Row("submit_http_live", statistics.median(live), sbatch_live_rate, "jobs/s", True))
    if py_held is not None and py_live is not None:
        add(Row("submit_pyclient_queued", py_held["jobs_per_s"], sbatch_queued, "jobs/s", True))
        add(Row("submit_pyclient_live", py_live["jobs_per_s"], sbatch_live_rate, "jobs/s", True))
    if logged is not None:
        add(Row("submit_http_live_logged", logged["jobs_per_s"], sbatch_live_rate, "jobs/s", True))

    with err.status("axcenter: sequential CLI submissions"):
        cli = ax_submit_cli(args.store, 10 if quick else 100)
    add(
        Row(
            "submit_cli_queued",
            cli["jobs_per_s"],
            sbatch_queued,
            "jobs/s",
            True,
        )
    )

    with err.status("axcenter: array"):
        arr = ax_array(args.store, n)
    sa = slurm("--only", "submit_array", "--runs", "1", "-n", str(n)) if use_slurm else []
    add(
        Row(
            "array_submit",
            arr["submit_s"],
            first(sa, "submit_array", "submit_s_median"),
            "s",
            False,
        )
    )
    add(
        Row(
            "array_all_done",
            arr["all_done_s"],
            first(sa, "submit_array", "all_done_s_median"),
            "s",
            False,
        )
    )

    for gpus, part in ((32, "gpu"), (8, "gpu8")):
        if quick and gpus == 8:
            break
        drain_n = QUICK_DRAIN if quick else n if gpus == 32 else max(n // 4, 50)
        with err.status(f"axcenter: drain on {gpus} GPUs"):
            dr = ax_drain(args.store, drain_n, gpus)
        sd = (
            slurm("--only", "drain", "--runs", "1", "-n", str(drain_n), "--drain-parts", part)
            if use_slurm
            else []
        )
        add(
            Row(
                f"drain_efficiency_{gpus}gpu",
                dr["efficiency"],
                first(sd, "drain", "efficiency_median", partition=part),
                "ideal/actual",
                True,
            )
        )

    if not quick:
        pending_case(args.store, args.pending, rows)

    table = Table(title=f"axcenter ({args.store}) vs Slurm 22.05, {'quick' if quick else 'full'}")
    for column in ("benchmark", "axcenter", "slurm", "better by", "unit"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.bench,
            f"{row.axcenter:.4g}",
            "-" if row.slurm is None else f"{row.slurm:.4g}",
            "-" if row.ratio is None else f"{row.ratio:.2f}x",
            row.unit,
        )
    err.print(table)


def pending_case(store: str, pending: int, rows: list[Row]) -> None:
    with err.status(f"axcenter: submit-to-start with {pending:,} jobs pending"):
        pend = ax_pending(store, pending, 10)
    for bench, value in (("median", pend["median_s"]), ("max", pend["max_s"])):
        row = Row(f"pending_{pending // 1000}k_submit_to_start_{bench}", value, None, "s", False)
        rows.append(row)
        emit(row)
    row = Row(f"pending_{pending // 1000}k_backlog_load", pend["load_s"], None, "s", False)
    rows.append(row)
    emit(row)


if __name__ == "__main__":
    main()
