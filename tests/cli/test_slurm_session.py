"""A Slurm user's session against a real center: a real ``axc up`` process and the real
``axc`` CLI, a batch script with ``#SBATCH`` directives and an array, a job that depends
on the array, then squeue/sacct-like views of what ran."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from tests.conftest import service_env
from tests.e2e.conftest import AXC, Service

SCRIPT = """#!/bin/bash
#SBATCH --job-name=sweep
#SBATCH --time=5              # minutes, as in Slurm
#SBATCH --gres=gpu:1
#SBATCH --array=1,3,5
#SBATCH -A hanbit-adas
#SBATCH --mail-type=END
echo "task $AXC_ARRAY_INDEX of $1"
"""


def test_a_slurm_users_session(tmp_path: Path) -> None:
    env = service_env()
    env.update({"AXC_KILL_GRACE_S": "2", "XDG_CONFIG_HOME": str(tmp_path / "cfg")})
    center = Service(data_dir=tmp_path / "data", env=env, gpus="A100:2,H100:2")
    center.start()
    try:
        # the script's content goes with the job, as sbatch ships it: the job's account
        # needs no access to the submitter's file, and editing it later changes nothing
        private = tmp_path / "private"
        private.mkdir(mode=0o700)
        script = private / "sweep.sh"
        script.write_text(SCRIPT)
        submitted = center.axc("submit", "--hold", str(script), "grid", check=True)
        array = submitted.stdout.strip()
        assert array.startswith("arr_")
        script.write_text("#!/bin/sh\necho edited after submission\n")
        for index in (1, 3, 5):
            center.axc("release", f"{array}_{index}", check=True)
        assert center.axc("show", "--script", f"{array}_1", check=True).stdout == SCRIPT
        assert "--mail-type ignored: axcenter sends no mail" in " ".join(submitted.stderr.split())

        after = center.axc(
            "submit", "-A", "hanbit-adas", "-d", f"afterok:{array}", "-J", "report",
            "--wrap", "echo after", check=True,
        ).stdout.strip()  # fmt: skip
        assert center.axc("wait", array, "--timeout", "60").returncode == 0
        assert center.axc("wait", after, "--timeout", "60").returncode == 0

        assert center.axc("logs", f"{array}_3", check=True).stdout == "task 3 of grid\n"
        listed = center.axc("jobs", "--name", "sweep", check=True).stdout
        assert all(f"{array}_{i}" in listed for i in (1, 3, 5))
        shown = center.axc("show", after, check=True).stdout
        assert f"afterok:{array}" in shown
        task = center.axc("show", f"{array}_5", "--json", check=True).stdout
        assert '"time_limit_s": 300' in task and '"array_index": 5' in task

        rows = list(
            csv.DictReader(io.StringIO(center.axc("acct", "--csv", "-", check=True).stdout))
        )
        ran = {r["task"] or r["name"]: r for r in rows}
        assert {f"{array}_1", f"{array}_3", f"{array}_5", "report"} <= set(ran)
        assert all(r["state"] == "succeeded" for r in ran.values())

        # scontrol requeue: the task runs again under its id, after its first run's log
        requeued = center.axc("requeue", f"{array}_3", check=True).stdout
        assert requeued.startswith(ran[f"{array}_3"]["job_id"]) and ": pending" in requeued
        assert center.axc("wait", f"{array}_3", "--timeout", "60").returncode == 0
        log = center.axc("logs", f"{array}_3", check=True).stdout
        assert log.count("task 3 of grid\n") == 2 and "[axcenter] run 2 of job" in log
        assert center.axc("cancel", "--name", "sweep").stderr.strip() == "no job matches"

        # salloc + srun: an allocation held while a command runs here, steps inside it
        probe = "echo devices=$CUDA_VISIBLE_DEVICES step=$AXC_STEP_ID user=$(id -un)"
        inner = f"{AXC} srun -- sh -c '{probe}' && {AXC} srun -- sh -c 'exit 4'; echo rc=$?"
        held = center.axc("salloc", "-A", "hanbit-adas", "-g", "1", "-t", "5", "--", "sh", "-c",
                          inner, check=True)  # fmt: skip
        assert "salloc: granted job_" in held.stderr and "salloc: released job_" in held.stderr
        allocation = held.stderr.split("salloc: granted ", 1)[1].split()[0]
        assert "step=0 user=" in held.stdout and "user=root" not in held.stdout, held.stdout
        assert re.search(r"^devices=[01] step=0 ", held.stdout, re.M), held.stdout
        assert "rc=4" in held.stdout
        shown = center.axc("show", "--json", allocation, check=True).stdout
        job = json.loads(shown)
        assert job["state"] == "cancelled"  # released when the command ended
        assert [(s["id"], s["state"], s["exit_code"]) for s in job["steps"]] == [
            (f"{allocation}.0", "succeeded", 0),
            (f"{allocation}.1", "failed", 4),
        ]
        acct = center.axc("acct", check=True).stdout
        assert f"{allocation}.1" in acct
        ended = center.axc("srun", "--jobid", allocation, "--", "true")
        assert ended.returncode == 1 and "is cancelled" in ended.stderr, ended.stderr
    finally:
        center.stop()
