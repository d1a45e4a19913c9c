"""axcenter's estimated starts beside Slurm's ``squeue --start``, same burst, one run.

One burst of ``--jobs`` jobs (1, 2, 4 or 8 GPUs; time limits of 1, 2 or 4 whole minutes,
as Slurm takes them; each really sleeping 5-50 s, at most its limit less 10 s; all drawn
from ``--seed``) is submitted as fast as each system takes it, so a queue forms on 32
GPUs, and is run to the end twice:

(a) **Slurm alone**: the project's Slurm cluster (scripts/slurm: Debian's Slurm 22.05,
    4 nodes x 8 fake GPUs, backfill, slurmdbd), ``sbatch --time=M --gres=gpu:N --wrap
    'sleep D'`` as an unprivileged account. Slurm's estimates come from its backfill
    passes only, so the cluster runs with ``bf_interval=--bf-interval`` (5 s here, 30 s
    at Slurm's default) and the reading waits for the first pass that *began* after the
    last submission (``sdiag``'s last backfill cycle), then takes ``squeue --start``'s
    StartTime of every pending job. Real starts: ``sacct``'s Start.
(b) **axcenter**: ``axc up --demo`` with the local engine and 32 logical GPUs
    (``--gpus H100:8x4``), the same jobs posted to ``/api/v1/jobs`` with the same limits
    (``time_limit_s``). Run-time estimates from history are off
    (``AXC_SCHED_HISTORY_MIN_RUNS=0``), so both systems plan with the limits alone. The
    reading is the first ``GET /api/v1/queue``, at least the estimator's debounce (0.5 s)
    after the last submission, in which every pending job has an ``estimated_start``
    (or the one at ``--read-timeout``, whatever is there). Real starts: ``started_at``.

For each system: the jobs pending at its reading (``jobs_waited``), the median and p90
of |estimate - real start| over those with an estimate, the median signed error
(positive: the estimate was later), the share that started no later than their
estimate (+1 s: Slurm's times are whole seconds), and how many had no estimate
(``unestimated``: counted, never dropped). A last row gives Slurm's errors over
axcenter's (> 1: axcenter's estimates are closer).

Needs root (Slurm's daemons, a unix account for the jobs). Takes about 6-8 minutes.

    .venv/bin/python benchmarks/estimates_vs_slurm.py [--jobs 60] [--seed 21]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # benchmarks.engines

from benchmarks.engines import PARTITION, Axc, account, axc_up, cluster

BENCH = "estimates_vs_slurm"
#: slack for "started by its estimate": Slurm's times are whole seconds
SLACK_S = 1.0
#: axcenter's estimator refreshes once the queue has been still this long
DEBOUNCE_S = 0.5


@dataclass(frozen=True)
class Job:
    gpus: int
    limit_min: int
    sleep_s: int


def workload(n: int, seed: int) -> list[Job]:
    rng = random.Random(seed)
    jobs = []
    for _ in range(n):
        limit = rng.choice((1, 2, 4))
        sleep = rng.randint(5, min(50, 60 * limit - 10))
        jobs.append(Job(rng.choices((1, 2, 4, 8), (4, 3, 2, 1))[0], limit, sleep))
    return jobs


@dataclass
class Reading:
    submitted: int
    #: job id -> estimated start (epoch s), None: no estimate, for jobs pending at the reading
    estimates: dict[str, float | None]
    #: job id -> real start (epoch s)
    starts: dict[str, float]
    #: job id -> submission (epoch s)
    submits: dict[str, float]
    burst_s: float


def summary(system: str, r: Reading) -> dict[str, Any]:
    signed = [est - r.starts[job] for job, est in r.estimates.items() if est is not None]
    errs = sorted(abs(e) for e in signed)
    row: dict[str, Any] = {
        "bench": BENCH,
        "system": system,
        "jobs": r.submitted,
        "burst_s": round(r.burst_s, 2),
        "jobs_waited": len(r.estimates),
        "median_wait_s": round(
            statistics.median(r.starts[j] - r.submits[j] for j in r.estimates), 1
        )
        if r.estimates
        else None,
        "median_error_s": round(statistics.median(errs), 1) if errs else None,
        "p90_error_s": round(errs[min(len(errs) - 1, int(0.9 * len(errs)))], 1) if errs else None,
        "median_signed_s": round(statistics.median(signed), 1) if signed else None,
        "share_started_by_estimate": round(sum(1 for e in signed if e >= -SLACK_S) / len(signed), 3)
        if signed
        else None,
        "unestimated": sum(1 for est in r.estimates.values() if est is None),
    }
    return row


# -- Slurm alone ---------------------------------------------------------------------


def slurm_run(env: dict[str, str], uid: int, gid: int, jobs: list[Job], timeout: float) -> Reading:
    def run(*argv: str) -> str:
        return subprocess.run(
            argv, env=env, capture_output=True, text=True, check=True, timeout=120
        ).stdout

    def last_backfill() -> float:
        found = re.search(r"Backfilling stats.*?Last cycle when: .*?\((\d+)\)", run("sdiag"), re.S)
        return float(found.group(1)) if found else 0.0

    began = time.time()
    ids = []
    for job in jobs:
        argv = [
            "sbatch", "--parsable", "-p", PARTITION, f"--gres=gpu:{job.gpus}",
            f"--time={job.limit_min}", "-o", "/dev/null", f"--uid={uid}", f"--gid={gid}",
            "--wrap", f"sleep {job.sleep_s}",
        ]  # fmt: skip
        ids.append(run(*argv).strip())
    burst_end = time.time()
    # Slurm's estimates exist only after a backfill pass: wait for one begun after the burst
    deadline = burst_end + timeout
    while last_backfill() < burst_end and time.time() < deadline:
        time.sleep(0.2)
    estimates: dict[str, float | None] = {}
    for line in run("squeue", "--start", "-h", "-t", "PD", "-o", "%i %S").splitlines():
        job_id, start = line.split()
        estimates[job_id] = float(start) if start.isdigit() else None
    while run("squeue", "-h", "-o", "%i").strip():
        time.sleep(0.5)
    starts: dict[str, float] = {}
    submits: dict[str, float] = {}
    for _ in range(100):  # slurmdbd may lag the controller a little
        out = run("sacct", "-X", "-n", "-P", "-o", "JobID,Submit,Start", "-j", ",".join(ids))
        rows = [line.split("|") for line in out.splitlines()]
        starts = {job_id: float(start) for job_id, _, start in rows if start.isdigit()}
        submits = {job_id: float(submit) for job_id, submit, _ in rows if submit.isdigit()}
        if len(starts) == len(ids):
            break
        time.sleep(0.5)
    missing = [j for j in estimates if j not in starts]
    if missing:
        raise RuntimeError(f"sacct has no start for Slurm jobs {missing}")
    return Reading(len(ids), estimates, starts, submits, burst_end - began)


# -- axcenter ------------------------------------------------------------------------


def epoch(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


@contextlib.contextmanager
def local_center(base: Path) -> Iterator[Axc]:
    gpus = ["--gpus", "H100:8x4"]
    with axc_up(base, gpus, {"AXC_SCHED_HISTORY_MIN_RUNS": "0"}, start_s=90) as (port, token, pid):
        axc = Axc(port, token, pid)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                if axc.get("/cluster")["summary"]:
                    break
            time.sleep(0.2)
        yield axc


def axcenter_run(axc: Axc, jobs: list[Job], timeout: float) -> Reading:
    began = time.time()
    ids = [
        axc.submit(
            f"sleep {job.sleep_s}",
            gpus_per_node=job.gpus,
            time_limit_s=60 * job.limit_min,
            workdir=None,  # the account's home
        )["id"]
        for job in jobs
    ]
    burst_end = time.time()
    time.sleep(DEBOUNCE_S)
    deadline = burst_end + timeout
    while True:
        items = axc.get("/queue?limit=500")["items"]
        estimates = {item["id"]: epoch(item["estimated_start"]) for item in items}
        if all(e is not None for e in estimates.values()) or time.time() >= deadline:
            break
        time.sleep(0.2)
    axc.idle()
    starts: dict[str, float] = {}
    submits: dict[str, float] = {}
    for job_id in ids:
        job = axc.get(f"/jobs/{job_id}")
        started, submits[job_id] = epoch(job["started_at"]), epoch(job["submitted_at"]) or 0.0
        if started is not None:
            starts[job_id] = started
    missing = [j for j in estimates if j not in starts]
    if missing:
        raise RuntimeError(f"axcenter jobs {missing} never started")
    return Reading(len(ids), estimates, starts, submits, burst_end - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--bf-interval", type=int, default=5, help="Slurm's bf_interval (s)")
    parser.add_argument("--read-timeout", type=float, default=30.0)
    parser.add_argument("--slurm-dir", default="/tmp/axc-slurm-bench")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks/estimates_vs_slurm.py needs root (it runs Slurm's daemons)")
    args.sched_params = (
        f"bf_interval={args.bf_interval},batch_sched_delay=0,sched_min_interval=100000"
    )
    jobs = workload(args.jobs, args.seed)
    base = Path(tempfile.mkdtemp(prefix="axc-estimates-", dir="/tmp"))
    base.chmod(0o711)
    rows = []
    try:
        with account() as (_, uid, gid):
            with cluster(args) as env:
                slurm_env = {**env, "SLURM_TIME_FORMAT": "%s"}
                reading = slurm_run(slurm_env, uid, gid, jobs, args.read_timeout)
                rows.append(summary("slurm", reading))
            with local_center(base) as axc:
                rows.append(summary("axcenter", axcenter_run(axc, jobs, args.read_timeout)))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for row in rows:
        print(json.dumps(row))
    slurm, axcenter = rows
    ratio: dict[str, Any] = {"bench": BENCH, "system": "slurm / axcenter"}
    for key in ("median_error_s", "p90_error_s"):
        s, a = slurm[key], axcenter[key]
        ratio[key] = round(s / a, 2) if s is not None and a else None
    print(json.dumps(ratio))


if __name__ == "__main__":
    main()
