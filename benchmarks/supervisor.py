"""What the per-run supervisor costs, beside a bare fork (docs/engines.md).

The local engine starts each job under ``axc-supervisor``, which outlives the service.
The issue's budget: at most 5 ms more per start and 10 MiB more per running job than
starting the job directly. Measured here, alternating rounds, medians:

- ``start``: the wall time of ``LocalEngine.submit()`` (it returns once the job's process
  has exec'd) against ``subprocess.Popen(start_new_session=True)`` of the same command
  (which also returns after the exec), and, for both, the delay until the job's own first
  instruction (the job writes ``CLOCK_REALTIME`` as it starts).
- ``memory``: the resident and proportional set size of the supervisors of N running
  jobs, per job (the bare fork has none).
- ``start_confined`` (as root): the same start, confined as the service runs jobs of
  several users (docs/security.md): a control group per run in every hierarchy, a
  private /proc, the job's own unix account (a temporary one) and a log through a pipe.

    .venv/bin/python benchmarks/supervisor.py [-n 200] [--rounds 3] [--running 50]

Prints one JSON row per measure.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from axcenter.executors.base import NodeInventory, RunAs, RunSpec, StopReason
from axcenter.executors.local import Confinement, LocalEngine

NODE = NodeInventory("local-0", "H100", 8, 8, 64_000, logical=True)
#: the job: write when it began (python would add its own start-up to both sides)
STAMP = ("sh", "-c", 'date +%s.%N > "$STAMP"')


def bare(n: int, work: Path) -> tuple[list[float], list[float]]:
    calls, delays = [], []
    for i in range(n):
        stamp = work / f"bare-{i}"
        env = {**os.environ, "STAMP": str(stamp)}
        t0 = time.time()
        c0 = time.perf_counter()
        proc = subprocess.Popen(STAMP, env=env, cwd=work, start_new_session=True)
        calls.append(time.perf_counter() - c0)
        proc.wait()
        delays.append(float(stamp.read_text()) - t0)
    return calls, delays


def supervised(
    engine: LocalEngine,
    events: queue.Queue[object],
    n: int,
    work: Path,
    tag: str,
    run_as: RunAs | None = None,
):
    calls, delays = [], []
    for i in range(n):
        stamp = work / f"sup-{tag}-{i}"
        run = RunSpec(
            f"job_{tag}_{i}",
            1,
            STAMP,
            str(work),
            {"STAMP": str(stamp)},
            (("local-0", (0,)),),
            60,
            run_as=run_as,
            cpus=1,
            memory_mb=256,
        )
        t0 = time.time()
        c0 = time.perf_counter()
        engine.submit(run)
        calls.append(time.perf_counter() - c0)
        while not stamp.exists() or not stamp.read_text().strip():
            time.sleep(0.0005)
        delays.append(float(stamp.read_text()) - t0)
    return calls, delays


def memory(engine: LocalEngine, running: int, work: Path) -> dict[str, float]:
    """RSS and PSS (KiB) of the supervisors of ``running`` sleeping jobs, per job."""
    runs = []
    for i in range(running):
        run = RunSpec(f"job_mem_{i}", 1, ("sleep", "600"), str(work), {}, (("local-0", (0,)),), 0)
        engine.submit(run)
        runs.append(run.run_id)
    rss = pss = 0
    for run_id in runs:
        started = (engine._runs_dir / run_id / "started").read_text().split()
        pid = int(started[0])
        status = Path(f"/proc/{pid}/status").read_text()
        rss += int(status.split("VmRSS:")[1].split()[0])
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        pss += int(rollup.split("Pss:")[1].split()[0])
    for run_id in runs:
        engine.stop(run_id, StopReason.CANCEL, 0.1)
    return {"rss_mib": rss / running / 1024, "pss_mib": pss / running / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="starts per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--running", type=int, default=50, help="jobs for the memory row")
    args = parser.parse_args()
    # the run records where the engine keeps them: in memory (Settings.engine_dir)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as tmp:
        work = Path(tmp)
        events: queue.Queue[object] = queue.Queue()
        engine = LocalEngine(
            [NODE], events.put, state_dir=work / "engine", logs_dir=work / "logs", grace_s=1
        )
        try:
            rounds = []
            for r in range(args.rounds):
                b_calls, b_delays = bare(args.n, work)
                s_calls, s_delays = supervised(engine, events, args.n, work, str(r))
                rounds.append(
                    (
                        statistics.median(b_calls),
                        statistics.median(s_calls),
                        statistics.median(b_delays),
                        statistics.median(s_delays),
                    )
                )
                shown = [f"{x * 1000:.2f} ms" for x in rounds[-1]]
                print(f"round {r + 1} (bare, supervised; call, to job): {shown}", file=sys.stderr)
            columns = zip(*rounds, strict=True)
            b_call, s_call, b_delay, s_delay = (statistics.median(col) for col in columns)
            added = s_delay - b_delay
            print(
                json.dumps(
                    {
                        "row": "start",
                        "bare_call_ms": round(b_call * 1000, 3),
                        "supervised_call_ms": round(s_call * 1000, 3),
                        "bare_to_job_ms": round(b_delay * 1000, 3),
                        "supervised_to_job_ms": round(s_delay * 1000, 3),
                        "added_ms": round(added * 1000, 3),
                        "target_added_ms": 5.0,
                        "met": added * 1000 <= 5.0,
                    }
                )
            )
            mem = memory(engine, args.running, work)
            print(
                json.dumps(
                    {
                        "row": "memory",
                        "running": args.running,
                        "rss_mib_per_job": round(mem["rss_mib"], 3),
                        "pss_mib_per_job": round(mem["pss_mib"], 3),
                        "target_mib": 10.0,
                        "met": mem["rss_mib"] <= 10.0,
                    }
                )
            )
        finally:
            engine.close(stop_runs=True, grace_s=0.5)
        if os.geteuid() == 0:
            confined(args, work, events)


def confined(args: argparse.Namespace, work: Path, events: queue.Queue[object]) -> None:
    """The start as root runs the jobs of several users: confined, as a user of its own."""
    name, number = f"axc-bench-{os.getpid()}", 290_000 + os.getpid() % 9_000
    subprocess.run(["groupadd", "-g", str(number), name], check=True)
    subprocess.run(
        ["useradd", "-M", "-N", "-u", str(number), "-g", str(number), "-s", "/usr/sbin/nologin",
         name],
        check=True,
    )  # fmt: skip
    home = work / "home"
    home.mkdir()
    os.chown(home, number, number)
    os.chmod(work, 0o711)
    who = RunAs(name, number, number, (number,), str(home))
    engine = LocalEngine(
        [NODE],
        events.put,
        state_dir=work / "engine-confined",
        logs_dir=work / "logs",
        grace_s=1,
        confinement=Confinement(f"axcenter-bench/{os.getpid()}"),
        log_max_bytes=1 << 30,
    )
    try:
        rounds = []
        for r in range(args.rounds):
            _, b_delays = bare(args.n, work)
            s_calls, s_delays = supervised(engine, events, args.n, home, f"c{r}", who)
            rounds.append(
                (
                    statistics.median(b_delays),
                    statistics.median(s_delays),
                    statistics.median(s_calls),
                )
            )
            print(f"round {r + 1} confined: {[f'{x * 1000:.2f} ms' for x in rounds[-1]]}",
                  file=sys.stderr)  # fmt: skip
        b_delay, s_delay, s_call = (statistics.median(col) for col in zip(*rounds, strict=True))
        added = s_delay - b_delay
        print(
            json.dumps(
                {
                    "row": "start_confined",
                    "supervised_call_ms": round(s_call * 1000, 3),
                    "bare_to_job_ms": round(b_delay * 1000, 3),
                    "supervised_to_job_ms": round(s_delay * 1000, 3),
                    "added_ms": round(added * 1000, 3),
                    "target_added_ms": 5.0,
                    "met": added * 1000 <= 5.0,
                }
            )
        )
    finally:
        engine.close(stop_runs=True, grace_s=0.5)
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", name], check=False)


if __name__ == "__main__":
    main()
