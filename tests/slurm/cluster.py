"""A real Slurm cluster for the tests (``scripts/slurm``: 4 slurmd with 8 fake GPUs each,
slurmctld, slurmdbd on a private MariaDB), and a real unix account for the jobs, which
never run as root. Both are made once per session and taken down at its end.

The cluster is installed (Debian's packages) and started by the project's own scripts;
where it cannot be (not root, no apt), the tests that need it fail rather than skip.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from axcenter.executors.base import RunAs
from axcenter.executors.slurm.cli import SlurmCli

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "slurm"
#: the test cluster's place: apart from a cluster someone runs by hand at the default
SLURM_DIR = os.environ.get("AXC_TEST_SLURM_DIR", "/tmp/axc-slurm-test")
PARTITION = "axc"
UID_RANGE = range(62000, 63000)


@dataclass(frozen=True)
class Cluster:
    dir: Path
    slurm_conf: str
    env: dict[str, str]

    def cli(self) -> SlurmCli:
        return SlurmCli(slurm_conf=self.slurm_conf)

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A Slurm command (or one of the scripts) against this cluster."""
        return subprocess.run(
            argv, env=self.env, capture_output=True, text=True, check=check, timeout=120
        )

    def stop_ctld(self) -> None:
        """Stop slurmctld alone (it saves its state; jobs go on)."""
        self.run(str(SCRIPTS / "stop.sh"), "--ctld-only")

    def start_ctld(self) -> None:
        """Start slurmctld again with the jobs it saved."""
        self.run("env", "AXC_SLURM_COLD=0", str(SCRIPTS / "start.sh"))

    def node_state(self, node: str, state: str, reason: str = "axcenter test") -> None:
        argv = ["scontrol", "update", f"NodeName={node}", f"State={state}"]
        if state.upper() in ("DOWN", "DRAIN"):
            argv.append(f"Reason={reason}")
        self.run(*argv)


def start_cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.fail("the Slurm tests need root (they run slurmctld, slurmd and munged)")
    env = {**os.environ, "AXC_SLURM_DIR": SLURM_DIR}
    env["SLURM_CONF"] = f"{SLURM_DIR}/etc/slurm.conf"
    # a quick cadence for the tests (the site's defaults are for thousands of jobs)
    env.setdefault("AXC_SLURM_SCHED_PARAMS", "batch_sched_delay=0,sched_min_interval=100000")
    env.setdefault("AXC_SLURM_KILL_WAIT", "2")
    for script in ("install.sh", "start.sh"):
        proc = subprocess.run(
            [str(SCRIPTS / script)],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            pytest.fail(f"scripts/slurm/{script} failed:\n{proc.stderr[-3000:]}")
    try:
        yield Cluster(Path(SLURM_DIR), env["SLURM_CONF"], env)
    finally:
        subprocess.run(
            [str(SCRIPTS / "stop.sh")], check=False, env=env, capture_output=True, timeout=300
        )


def make_account(cluster: Cluster) -> Iterator[RunAs]:
    """A real unix account (and its group) with a free uid in 62000-62999; removed after,
    once the cluster has no job of it left (userdel refuses an account still in use)."""
    used = {p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    uid = next(i for i in UID_RANGE if i not in used)
    name = f"axct{uid}"
    home = Path(f"/tmp/{name}")
    subprocess.run(["groupadd", "-g", str(uid), name], check=True)
    subprocess.run(
        ["useradd", "-u", str(uid), "-g", str(uid), "-M", "-d", str(home), "-s", "/bin/sh", name],
        check=True,
        capture_output=True,
    )
    home.mkdir(mode=0o700)
    os.chown(home, uid, uid)
    try:
        yield RunAs(user=name, uid=uid, gid=uid, home=str(home))
    finally:
        cluster.run("scancel", f"--user={name}", check=False)
        for _ in range(100):
            if not cluster.run("squeue", "-h", f"--user={name}", check=False).stdout.strip():
                break
            time.sleep(0.2)
        gone = subprocess.run(["userdel", name], check=False, capture_output=True, text=True)
        assert gone.returncode == 0, f"userdel {name}: {gone.stderr}"
        subprocess.run(["groupdel", name], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def shared_dir(account: RunAs) -> Iterator[Path]:
    """What a site's shared file system is to its nodes: a directory the jobs' account
    can reach (pytest's own are root's, 0700), with ``logs`` (root's; the engine makes
    each log the account's) and ``work`` (the account's) in it; removed after."""
    base = Path(tempfile.mkdtemp(prefix="axc-slurm-", dir="/tmp"))
    base.chmod(0o711)
    (base / "logs").mkdir(mode=0o711)
    (base / "work").mkdir()
    os.chown(base / "work", account.uid, account.gid)
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)
