"""How soon Slurm starts a job, by how it reached Slurm (issue 18: where the drain's time
goes). On the project's Slurm cluster (scripts/slurm, as ``benchmarks/engines.py`` starts
it), one GPU node, jobs as a unix account of their own (never root):

  new_submission     sbatch onto an idle node: from just before sbatch to the job's
                     first timestamp (what axcenter does once it has seen an end)
  pending_behind     a job submitted while the node's GPUs are busy (Slurm alone's
                     queue): from the busy job's last timestamp to its first
  dependency_behind  the same, held back by ``--dependency=afterany:`` the busy job
                     (what pipelining the next job into Slurm would do)

The busy job runs 0.5-1.5 s (uniform), so that its end falls anywhere between two of
slurmctld's scheduling passes. Rows (JSON): {"bench", "case", "median_s", "p90_s",
"samples"}. Then ``--drain-jobs`` one-second jobs on all 32 GPUs, queued while the
partition is down, twice: as submitted above, and with ``--export=NONE`` (sbatch then
sets ``SLURM_GET_USER_ENV``, and slurmd loads the user's login environment before each
launch: the Slurm engine submitted so until this was measured); rows {"bench":
"slurm_drain", "case", "efficiency"} (ideal time / time from the partition's start to
the last end). Needs root.

    .venv/bin/python -m benchmarks.slurm_start_paths [--samples 20] [--drain-jobs 640]
                                                     [--sched-params ...]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.engines import GPUS, PARTITION, Slurm, account, cluster, wait_file


def sbatch(slurm: Slurm, script: str, *extra: str) -> str:
    """Submit ``script`` onto all of n1's GPUs; returns the job id."""
    return slurm.run(
        "sbatch", "--parsable", "-p", PARTITION, "-w", "n1", "--gres=gpu:8", "-o", "/dev/null",
        f"--uid={slurm.uid}", f"--gid={slurm.gid}", *extra, "--wrap", script,
    ).strip()  # fmt: skip


def sample(slurm: Slurm, work: Path, case: str, i: int) -> float:
    stamp = work / f"{case}-{i}"
    if case in ("new_submission", "export_none"):
        t0 = time.time()
        sbatch(
            slurm, f"date +%s.%N > {stamp}", *(["--export=NONE"] if case == "export_none" else [])
        )
        return float(wait_file(stamp)) - t0
    busy = work / f"{case}-{i}-busy"
    busy_id = sbatch(slurm, f"sleep {random.uniform(0.5, 1.5):.3f}; date +%s.%N > {busy}")
    extra = [f"--dependency=afterany:{busy_id}"] if case == "dependency_behind" else []
    sbatch(slurm, f"date +%s.%N > {stamp}", *extra)
    return float(wait_file(stamp)) - float(wait_file(busy))


def drain(slurm: Slurm, work: Path, n: int, *extra: str) -> float:
    stamps = work / f"drain{''.join(extra)}"
    stamps.touch(mode=0o666)
    stamps.chmod(0o666)
    script = f's=$(date +%s.%N); sleep 1; echo "$s $(date +%s.%N)" >> {stamps}'
    slurm.run("scontrol", "update", f"PartitionName={PARTITION}", "State=DOWN")
    for _ in range(n):
        slurm.sbatch(script, "-t", "10", *extra)
    t0 = time.time()
    slurm.run("scontrol", "update", f"PartitionName={PARTITION}", "State=UP")
    slurm.idle()
    ends = [float(line.split()[1]) for line in stamps.read_text().splitlines()]
    return n * 1.0 / GPUS / (max(ends) - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--sched-params", default="", help="Slurm SchedulerParameters")
    parser.add_argument("--slurm-dir", default="/tmp/axc-slurm-bench")
    parser.add_argument("--drain-jobs", type=int, default=640)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("benchmarks/slurm_start_paths.py needs root (it runs Slurm's daemons)")
    work = Path(tempfile.mkdtemp(prefix="axc-start-paths-", dir="/tmp"))
    work.chmod(0o1777)
    cases = ("new_submission", "pending_behind", "dependency_behind")
    found: dict[str, list[float]] = {case: [] for case in cases}
    try:
        with account() as (_, uid, gid), cluster(args) as env:
            slurm = Slurm({**env, "SLURM_TIME_FORMAT": "%s"}, uid, gid)
            for i in range(args.samples):
                for case in cases:
                    found[case].append(sample(slurm, work, case, i))
                    slurm.idle()
                    time.sleep(random.uniform(0.2, 1.2))
            for case, extra in (("default_export", ()), ("export_none", ("--export=NONE",))):
                efficiency = drain(slurm, work, args.drain_jobs, *extra)
                row = {"bench": "slurm_drain", "case": case, "efficiency": round(efficiency, 3)}
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for case, values in found.items():
        values.sort()
        row = {
            "bench": "slurm_start_path",
            "case": case,
            "median_s": round(statistics.median(values), 3),
            "p90_s": round(values[int(0.9 * (len(values) - 1))], 3),
            "samples": len(values),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
