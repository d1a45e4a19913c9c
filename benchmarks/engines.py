"""axcenter on Slurm against Slurm alone, on the same cluster, in one run (issue 18).

Starts the project's Slurm cluster (scripts/slurm: 4 slurmd x 8 fake GPUs, slurmdbd;
Slurm's default SchedulerParameters unless ``--sched-params``), a unix account for Slurm
alone's jobs (uid 62000-62999, removed at the end: jobs never run as root) and one ``axc
up --demo`` whose only pool is the cluster's partition (``engine: slurm``; its jobs run
as the demo operator's managed account). Each workload
runs through axcenter (HTTP, keep-alive, one client) and through Slurm alone (``sbatch``
as root with ``--uid``, one process per job, as a site's users submit), alternating:

  submit_to_start  one 1-GPU job on an idle cluster, from just before the submission to
                   the job's own first timestamp (``date +%s.%N``); median of samples
                   separated by 1 s + uniform(0, 1) s
  submissions      N sequential submissions of ``true`` (1 GPU, output discarded): jobs/s
  drain            N one-second jobs on 32 GPUs submitted in one loop: ideal (N x 1 s / 32)
                   over the time from the first submission to the last job's end

Rows (JSON, one a line): {"bench", "axcenter", "slurm", "ratio", "unit"}; ratio > 1 means
axcenter is better (slurm / axcenter for times, axcenter / slurm for rates). Then a few
rows that say where axcenter's time goes (``breakdown``). Needs root. ``--held-jobs N``
first passes N jobs through Slurm alone, so that slurmctld holds them ended (for
``MinJobAge``) as a busy site's does: every ``squeue`` of the engine's polls, which
lists several jobs, makes slurmctld pack all it holds.

    .venv/bin/python benchmarks/engines.py [--drain-jobs 2000] [--submissions 200]
                                           [--samples 10] [--sched-params batch_sched_delay=0]
                                           [--poll-s 0.25] [--held-jobs 0]
                                           [--workloads start,submissions,drain]
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import http.client
import itertools
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import sqlite3
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

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts" / "slurm"
AXC = str(Path(sys.executable).with_name("axc"))
PROJECT = "hanbit-adas"
PARTITION = "axc"
#: what ``--workloads`` may name: the rows' workloads (module doc)
WORKLOADS = ("start", "submissions", "drain")
GPUS = 32


@dataclass
class Slurm:
    env: dict[str, str]
    uid: int
    gid: int

    def run(self, *argv: str) -> str:
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, check=True, timeout=120
        ).stdout

    def sbatch(self, script: str, *extra: str) -> float:
        """Submit ``script``; returns how long sbatch took."""
        t = time.perf_counter()
        self.run(
            "sbatch", "--parsable", "-p", PARTITION, "--gres=gpu:1", "-o", "/dev/null",
            f"--uid={self.uid}", f"--gid={self.gid}", *extra, "--wrap", script,
        )  # fmt: skip
        return time.perf_counter() - t

    def idle(self, timeout: float = 1800) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.run("squeue", "-h", "-o", "%i").strip():
                return
            time.sleep(0.1)
        raise TimeoutError("Slurm's queue did not empty")


@dataclass
class Axc:
    port: int
    token: str
    pid: int = 0
    conn: http.client.HTTPConnection | None = None

    def cpu_s(self) -> float:
        """CPU seconds the service and the commands it ran (squeue, sbatch...) used."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        try:
            self.conn.request("POST", "/api/v1/jobs", json.dumps(body), headers)
        except OSError:  # the server closed an idle keep-alive connection: not sent
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.conn.request("POST", "/api/v1/jobs", json.dumps(body), headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status == 429:  # the per-user submission rate: wait as told, as a client does
            time.sleep(float(resp.getheader("Retry-After") or 0.05))
            return self.post(body)
        if resp.status >= 300:
            raise RuntimeError(f"submit: {resp.status} {data!r}")
        answer: dict[str, Any] = json.loads(data)
        return answer

    def submit(self, script: str, **fields: Any) -> dict[str, Any]:
        return self.post(
            {
                "project": PROJECT,
                "command": ["sh", "-c", script],
                "gpus_per_node": 1,
                "output": "discard",
                **fields,
            }
        )

    def get(self, path: str) -> Any:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("GET", f"/api/v1{path}", headers={"Authorization": f"Bearer {self.token}"})
        return json.loads(conn.getresponse().read())

    def idle(self, timeout: float = 1800) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            summary = self.get("/cluster")["summary"]
            if summary["pending_jobs"] == 0 and summary["running_jobs"] == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("axcenter's queue did not empty")


def row(bench: str, axc: float, slurm: float, unit: str, higher_is_better: bool) -> None:
    num, den = (axc, slurm) if higher_is_better else (slurm, axc)
    ratio = round(num / den, 3) if den else None
    print(json.dumps({"bench": bench, "axcenter": round(axc, 4), "slurm": round(slurm, 4),
                      "ratio": ratio, "unit": unit}), flush=True)  # fmt: skip


def wait_file(path: Path, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            text = path.read_text()
            if text.endswith("\n"):
                return text
        time.sleep(0.01)
    raise TimeoutError(f"{path} was not written")


def submit_to_start(
    axc: Axc, slurm: Slurm, work: Path, samples: int, log: Path
) -> dict[str, tuple[float, float]]:
    """The median time from just before the submission to the job's first timestamp
    (``total``), and its part before slurmctld had the job (``to_slurm``: axcenter's
    HTTP request, commit, loop and sbatch; sbatch alone for Slurm), from slurmctld's log."""
    out: dict[str, dict[str, list[float]]] = {"total": {}, "to_slurm": {}}
    submitted: list[tuple[str, float, str]] = []
    for i in range(samples):
        for who in ("axcenter", "slurm"):
            stamp = work / f"start-{who}-{i}"
            script = f'echo "$(date +%s.%N) $SLURM_JOB_ID" > {stamp}'
            t0 = time.time()
            if who == "axcenter":
                axc.submit(script)
            else:
                slurm.sbatch(script)
            started, job = wait_file(stamp).split()
            out["total"].setdefault(who, []).append(float(started) - t0)
            submitted.append((who, t0, job))
            time.sleep(1 + random.random())
    axc.idle()
    slurm.idle()
    known = slurmctld_events(log)["submitted"]
    for who, t0, job in submitted:
        if job in known:
            out["to_slurm"].setdefault(who, []).append(known[job] - t0)
    return {
        k: (statistics.median(v.get("axcenter", [0.0])), statistics.median(v.get("slurm", [0.0])))
        for k, v in out.items()
    }


def submissions(axc: Axc, slurm: Slurm, n: int) -> tuple[float, float, float]:
    t = time.perf_counter()
    for _ in range(n):
        axc.submit("true")
    a = n / (time.perf_counter() - t)
    axc.idle()
    slurm.idle()  # what axcenter handed to Slurm, too
    sbatch_s: list[float] = []
    t = time.perf_counter()
    for _ in range(n):
        sbatch_s.append(slurm.sbatch("true"))
    s = n / (time.perf_counter() - t)
    slurm.idle()
    return a, s, statistics.median(sbatch_s)


def drain(axc: Axc, slurm: Slurm, work: Path, n: int, log: Path) -> dict[str, tuple[float, float]]:
    """Efficiency, the median idle gap of a GPU between one job's end and the next job's
    start on it (the GPU as Slurm names it: node and device index), and that gap's parts
    (``gap_parts``, from slurmctld's ``log``)."""
    ideal = n * 1.0 / GPUS
    result: dict[str, dict[str, float]] = {"efficiency": {}, "gap": {}}
    for who in ("axcenter", "slurm"):
        stamps = work / f"drain-{who}"
        stamps.touch()
        stamps.chmod(0o666)  # axcenter's jobs run as the demo operator's managed account
        script = (
            "s=$(date +%s.%N); sleep 1; "
            f'echo "$SLURMD_NODENAME:$CUDA_VISIBLE_DEVICES $SLURM_JOB_ID $s $(date +%s.%N)"'
            f" >> {stamps}"
        )
        t0 = time.time()
        cpu0, busy0 = axc.cpu_s(), machine_cpu_s()
        for _ in range(n):
            if who == "axcenter":
                axc.submit(script, time_limit_s=600)
            else:
                slurm.sbatch(script, "-t", "10")
        deadline = time.monotonic() + max(600, 4 * ideal)
        while len(lines := stamps.read_text().splitlines()) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{who}: {len(lines)} of {n} jobs ended")
            time.sleep(0.1)
        result.setdefault("axcenter_cpu_share", {})[who] = (axc.cpu_s() - cpu0) / max(
            machine_cpu_s() - busy0, 1e-9
        )
        (axc if who == "axcenter" else slurm).idle()
        slurm.idle()  # axcenter's last jobs leave Slurm too
        slots: dict[str, list[tuple[float, float]]] = {}
        for line in lines:
            slot, _, start, end = line.split()
            slots.setdefault(slot, []).append((float(start), float(end)))
        gaps = [b[0] - a[1] for runs in slots.values() for a, b in itertools.pairwise(sorted(runs))]
        last = max(end for runs in slots.values() for _, end in runs)
        result["efficiency"][who] = ideal / (last - t0)
        result["gap"][who] = statistics.median(gaps) if gaps else 0.0
        result.setdefault("gap_mean", {})[who] = statistics.fmean(gaps) if gaps else 0.0
        for part, value in gap_parts(log, lines).items():
            result.setdefault(f"gap_{part}", {})[who] = value
    return {k: (v["axcenter"], v["slurm"]) for k, v in result.items()}


def machine_cpu_s() -> float:
    """CPU seconds all processes of this machine used (busy, not idle or waiting)."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def account() -> Iterator[tuple[str, int, int]]:
    used = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    uid = next(i for i in range(62000, 63000) if i not in used)
    name = f"axcb{uid}"
    subprocess.run(["groupadd", "-g", str(uid), name], check=True)
    subprocess.run(["useradd", "-u", str(uid), "-g", str(uid), "-M", name], check=True)
    try:
        yield name, uid, uid
    finally:
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", name], check=False)


@contextlib.contextmanager
def cluster(args: argparse.Namespace) -> Iterator[dict[str, str]]:
    env = {
        **os.environ,
        "AXC_SLURM_DIR": args.slurm_dir,
        "AXC_SLURM_SCHED_PARAMS": args.sched_params,
    }
    # ports apart from the tests' cluster (scripts/slurm/env.sh)
    env |= {"AXC_SLURM_CTLD_PORT": "18817", "AXC_SLURM_DBD_PORT": "18819"}
    env |= {"AXC_SLURM_DB_PORT": "18306", "AXC_SLURM_SLURMD_PORT_BASE": "18900"}
    env["SLURM_CONF"] = f"{args.slurm_dir}/etc/slurm.conf"
    subprocess.run([str(SCRIPTS / "stop.sh")], env=env, check=False, capture_output=True)
    for script in ("install.sh", "start.sh"):
        subprocess.run([str(SCRIPTS / script)], env=env, check=True, capture_output=True)
    try:
        yield env
    finally:
        subprocess.run([str(SCRIPTS / "stop.sh")], env=env, check=False, capture_output=True)


_LOG_LINE = re.compile(
    r"\[(\S+)\] (?:sched: Allocate JobId=(\d+) NodeList=\S+|_job_complete: JobId=(\d+) done"
    r"|_slurm_rpc_submit_batch_job: JobId=(\d+) )"
)


def slurmctld_events(log: Path) -> dict[str, dict[str, float]]:
    """When slurmctld's log says each job was ``allocated``, ``done`` and ``submitted``
    (Slurm job id -> time)."""
    events: dict[str, dict[str, float]] = {"allocated": {}, "done": {}, "submitted": {}}
    for line in log.read_text(errors="replace").splitlines():
        if (m := _LOG_LINE.match(line)) is not None:
            at = datetime.fromisoformat(m.group(1)).timestamp()  # the machine's local time
            for kind, job in zip(events, m.groups()[1:], strict=True):
                if job:
                    events[kind][job] = at
    return events


def gap_parts(log: Path, lines: list[str]) -> dict[str, float]:
    """Where a GPU's idle gap goes, job after job on the same GPU (means, seconds: they add
    up to the mean gap of the pairs both sources know), from the jobs' own stamps (``SLOT
    JOBID START END``) and slurmctld's log:

    - ``to_done``: from the end of the first job's command to slurmctld recording the job
      done (the batch script's work after the command, slurmstepd, the message);
    - ``to_submission``: from then to the next job's submission, when that came later
      (the submitter seeing the end and deciding: 0 for a job handed over before it);
    - ``to_allocation``: from then to slurmctld allocating the next job (Slurm's passes);
    - ``to_start``: from that allocation to the next job's command starting (the launch,
      the batch script's work before the command)."""
    events = slurmctld_events(log)
    allocated, done, submitted = events["allocated"], events["done"], events["submitted"]
    slots: dict[str, list[tuple[float, float, str]]] = {}
    for line in lines:
        slot, job, start, end = line.split()
        slots.setdefault(slot, []).append((float(start), float(end), job))
    parts: dict[str, list[float]] = {
        "to_done": [], "to_submission": [], "to_allocation": [], "to_start": []
    }  # fmt: skip
    for runs in slots.values():
        for (_, a_end, a), (b_start, _, b) in itertools.pairwise(sorted(runs)):
            if a in done and b in allocated and b in submitted:
                handed = max(submitted[b], done[a])
                parts["to_done"].append(done[a] - a_end)
                parts["to_submission"].append(handed - done[a])
                parts["to_allocation"].append(allocated[b] - handed)
                parts["to_start"].append(b_start - allocated[b])
    return {k: statistics.fmean(v) if v else 0.0 for k, v in parts.items()}


def staged_share(db: Path) -> float:
    """The share of axcenter's jobs that were staged (handed to Slurm behind a job about to
    end, docs/engines.md "Staged runs"), from its store's job events."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        staged, jobs = con.execute(
            "SELECT COUNT(DISTINCT CASE WHEN reason LIKE '%to start when%' THEN job_id END),"
            " COUNT(DISTINCT job_id) FROM job_events"
        ).fetchone()
    return round(staged / jobs, 3) if jobs else 0.0


def first_token(data_dir: Path, deadline: float) -> str | None:
    """The operator's token ``axc up --demo`` writes to its first-start file, once it is
    there (None at ``deadline``)."""
    while time.monotonic() < deadline:
        tokens = data_dir / "first-start-tokens"
        found = re.search(r"AXC_TOKEN=(axc_\S+)", tokens.read_text() if tokens.exists() else "")
        if found:
            return found.group(1)
        time.sleep(0.1)
    return None


@contextlib.contextmanager
def center(
    env: dict[str, str], user: str, base: Path, poll_s: float, stage_ahead_s: float | None
) -> Iterator[Axc]:
    config = base / "center.yaml"
    config.write_text(
        "pools:\n  - name: hpc\n    engine: slurm\n    slurm:\n"
        f"      partition: {PARTITION}\n      slurm_conf: {env['SLURM_CONF']}\n"
        f"      gpu_type: H100\n      account: {user}\n      poll_s: {poll_s}\n"
        f"      output_dir: {base / 'logs'}\n"
    )
    extra = {} if stage_ahead_s is None else {"AXC_STAGE_AHEAD_S": str(stage_ahead_s)}
    with axc_up(base, ["--config", str(config)], extra, start_s=60) as (port, token, pid):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                health = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                health.request("GET", "/healthz")
                if health.getresponse().status == 200:
                    break
            time.sleep(0.1)
        yield Axc(port, token, pid)


@contextlib.contextmanager
def axc_up(
    base: Path, args: list[str], env: dict[str, str], *, start_s: float
) -> Iterator[tuple[int, str, int]]:
    """``axc up --demo`` with its data in ``base``, ``args`` added, on a free port, in this
    environment without its ``AXC_*`` and ``SLURM_*`` but with ``env`` (jobs are stopped
    when it exits): yields its port, the operator's token once it has written it, and its
    process id
    (within ``start_s``). On an error, the end of its log; at the end, SIGTERM (a kill
    after 120 s)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    axc_env = {k: v for k, v in os.environ.items() if not k.startswith(("AXC_", "SLURM_"))}
    axc_env |= {"AXC_STOP_JOBS_ON_SHUTDOWN": "true", **env}
    log = base / "axc-up.log"
    proc = subprocess.Popen(
        [AXC, "up", "--demo", "--data-dir", str(base / "data"), "--port", str(port), *args,
         "--log-level", "warning"],
        env=axc_env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        token = first_token(base / "data", time.monotonic() + start_s)
        if token is None:
            raise RuntimeError(f"axc up did not start:\n{log.read_text()}")
        yield port, token, proc.pid
    except BaseException:
        print(log.read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


def drain_rows(found: dict[str, tuple[float, float]], jobs: int) -> None:
    name = f"drain_{jobs}x1s_on_{GPUS}_gpus"
    row(name, *found["efficiency"], "efficiency", higher_is_better=True)
    row(f"{name}_gpu_idle_gap_median", *found["gap"], "s", higher_is_better=False)
    row(f"{name}_gpu_idle_gap_mean", *found["gap_mean"], "s", higher_is_better=False)
    # the gap's parts (gap_parts): the batch script and slurmstepd after the command, the
    # submitter's reaction, Slurm's allocation, the launch
    for part in ("to_done", "to_submission", "to_allocation", "to_start"):
        row(f"{name}_gap_{part}_mean", *found[f"gap_{part}"], "s", higher_is_better=False)
    # the service's share of the machine's busy CPU in each drain
    a, s = found["axcenter_cpu_share"]
    share = {"axcenter": round(a, 3), "slurm": round(s, 3)}
    print(json.dumps({"breakdown": "axcenter_share_of_busy_cpu_in_drain", **share}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drain-jobs", type=int, default=2000)
    parser.add_argument("--submissions", type=int, default=200)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--sched-params", default="", help="Slurm SchedulerParameters")
    parser.add_argument(
        "--held-jobs",
        type=int,
        default=0,
        help="first pass N 'true' jobs through Slurm alone: slurmctld then holds them ended"
        " (for MinJobAge, 300 s), as a busy site's does, and lists them to every squeue",
    )
    parser.add_argument(
        "--workloads",
        type=lambda text: set(text.split(",")),
        default=set(WORKLOADS),
        help=f"which of {', '.join(WORKLOADS)} (commas; default: all)",
    )
    parser.add_argument("--slurm-dir", default="/tmp/axc-slurm-bench")
    parser.add_argument("--poll-s", type=float, default=0.25, help="the pool's poll_s")
    parser.add_argument(
        "--stage-ahead-s",
        type=float,
        default=None,
        help="the center's AXC_STAGE_AHEAD_S (0: no staged runs); default: the service's",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder (stamps, the store, logs)"
    )
    args = parser.parse_args()
    if unknown := args.workloads - set(WORKLOADS):
        parser.error(f"no workload {', '.join(sorted(unknown))} ({', '.join(WORKLOADS)})")
    if os.geteuid() != 0:
        sys.exit("benchmarks/engines.py needs root (it runs Slurm's daemons)")
    base = Path(tempfile.mkdtemp(prefix="axc-engines-", dir="/tmp"))
    base.chmod(0o711)
    (base / "logs").mkdir(mode=0o711)
    try:
        with account() as (user, uid, gid), cluster(args) as env:
            work = base / "work"
            work.mkdir(mode=0o1777)  # both accounts' jobs write their stamps here
            work.chmod(0o1777)
            slurm = Slurm({**env, "SLURM_TIME_FORMAT": "%s"}, uid, gid)
            slurm.run("env")  # the client finds the cluster
            with center(env, user, base, args.poll_s, args.stage_ahead_s) as axc:
                log = Path(args.slurm_dir) / "log" / "slurmctld.log"
                for _ in range(args.held_jobs):
                    slurm.sbatch("true")
                slurm.idle()
                if "start" in args.workloads:
                    start = submit_to_start(axc, slurm, work, args.samples, log)
                    row("submit_to_start_median", *start["total"], "s", higher_is_better=False)
                    # its part before slurmctld had the job: axcenter's own, and sbatch's
                    row("submit_to_slurm_median", *start["to_slurm"], "s",
                        higher_is_better=False)  # fmt: skip
                if "submissions" in args.workloads:
                    a, s, sbatch_s = submissions(axc, slurm, args.submissions)
                    row("sequential_submissions", a, s, "jobs/s", higher_is_better=True)
                    print(json.dumps({"breakdown": "sbatch_median_s", "value": round(sbatch_s, 4)}))
                if "drain" in args.workloads:
                    drain_rows(drain(axc, slurm, work, args.drain_jobs, log), args.drain_jobs)
                    staged = staged_share(base / "data" / "axcenter.db")
                    print(json.dumps({"breakdown": "axcenter_jobs_staged_share", "value": staged}))
    finally:
        if args.keep:
            shutil.copy(Path(args.slurm_dir) / "log" / "slurmctld.log", base)
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
