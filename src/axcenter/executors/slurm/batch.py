"""The batch job of one run: sbatch's options and the script Slurm runs (see engine.py).

axcenter has chosen the nodes and the GPUs on each; the job asks Slurm for exactly those
nodes (``--nodelist``) and as many GPUs on each (``--gres``), named after the run, as the
job's own account, never root. The script sets the environment axcenter promises on every
engine (``AXC_*``, the service's base variables, the account's ``HOME``/``USER``), makes
and enters the working directory, and starts the command (``srun`` once per node for a
gang). Nothing here calls Slurm.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from axcenter.executors.base import LaunchError, RunSpec
from axcenter.executors.slurm.cli import environment_ok
from axcenter.model.jobs import JobOutput

__all__ = [
    "DEPENDENCY",
    "NAME_PREFIX",
    "batch_job",
    "open_devices_file",
    "open_log",
    "read_devices_file",
]

NAME_PREFIX = "axc-"
#: the folder of the logs' where batch scripts write their GPU indices
DEVICES_DIR = ".axc-devices"
#: sbatch's option of a staged run (``RunSpec.after``)
DEPENDENCY = "--dependency="
#: a user's variables that would change what Slurm or axcenter promise the job
_RESERVED = ("AXC_", "SLURM_", "SBATCH_", "SRUN_")
_RESERVED_NAMES = ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER")


def batch_job(
    run: RunSpec,
    *,
    partition: str,
    submit: str,
    accounts: Mapping[str, str],
    nodes_known: Collection[str],
    base_env: Mapping[str, str],
    logs: Path,
    devices_file: Path | None = None,
    after: Sequence[str] = (),
) -> tuple[list[str], str]:
    """sbatch's options and the batch script of ``run`` (``submit``: ``uid`` or ``user``,
    as ``SlurmOptions.submit``; ``nodes_known``: the partition's nodes; ``base_env``: what
    the job inherits of the service's environment; ``logs``: where its log goes;
    ``devices_file``: where the script writes the GPU indices Slurm gave it, see
    ``open_devices_file``; ``after``: the Slurm jobs a staged run starts after)."""
    if not run.command:
        raise LaunchError(f"job {run.job_id}: empty command")
    if not os.path.isabs(run.workdir):
        raise LaunchError(f"working directory {run.workdir!r} is not an absolute path")
    program = run.command[0]
    if run.script is None and os.path.isabs(program) and not os.access(program, os.X_OK):
        # a shared file system is assumed: what the service host cannot run, no node can
        raise LaunchError(f"command not found: {program}")
    if run.run_as is None and os.geteuid() == 0:
        raise LaunchError(f"job {run.job_id}: no account to run it as (never as root)")
    if run.run_as is not None and run.run_as.uid == 0:
        raise LaunchError(f"job {run.job_id}: jobs never run as root")
    nodes = [name for name, _ in run.node_devices]
    if unknown := [n for n in nodes if n not in nodes_known]:
        raise LaunchError(f"job {run.job_id}: unknown node {unknown[0]!r}")
    counts = {len(devices) for _, devices in run.node_devices}
    if len(counts) != 1:
        raise LaunchError(
            f"job {run.job_id}: Slurm gives each node of a job the same number of GPUs"
            f" (asked: {[len(d) for _, d in run.node_devices]})"
        )
    gpus = counts.pop()
    env = {k: v for k, v in run.env.items() if not _reserved(k)}
    if bad := environment_ok(env):
        raise LaunchError(f"environment variable name {bad!r} is not valid")
    log_path = "/dev/null" if run.output is JobOutput.DISCARD else logs / f"{run.job_id}.log"
    options = [
        f"--partition={partition}",
        f"--job-name={NAME_PREFIX}{run.run_id}",
        f"--comment=axc run={run.run_id} user={run.user} project={run.project}",
        f"--nodes={len(nodes)}",
        f"--nodelist={','.join(nodes)}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={max(run.cpus, 1)}",
        f"--chdir={_existing(run.workdir)}",  # the script makes the rest
        # --output/--error files: slurmstepd opens them as the job's user
        f"--output={_in_workdir(run, run.output_file) or log_path}",
        f"--error={_in_workdir(run, run.error_file or run.output_file) or log_path}",
        "--open-mode=append",
        "--no-requeue",  # axcenter requeues, as a new run
    ]
    if gpus:
        options.append(f"--gres=gpu:{gpus}")
    if after:  # however they end: their devices are this run's next
        options.append(f"{DEPENDENCY}afterany:{':'.join(after)}")
    if run.memory_mb > 0:
        options.append(f"--mem={run.memory_mb}")
    if run.time_limit_s > 0:
        options.append(f"--time={math.ceil(run.time_limit_s / 60)}")
    if accounts:
        grant = accounts.get(run.project)
        if grant is None:
            raise LaunchError(
                f"project {run.project or '(none)'} has no Slurm account in this pool"
            )
        options.append(f"--account={grant}")
    if run.run_as is not None and submit == "uid":
        options += [f"--uid={run.run_as.uid}", f"--gid={run.run_as.gid}"]
    exports = {**base_env, **env}
    if run.run_as is not None:
        exports.update(USER=run.run_as.user, LOGNAME=run.run_as.user)
        if run.run_as.home:
            exports["HOME"] = run.run_as.home
    gpu_names = [f"{node}:{dev}" for node, devices in run.node_devices for dev in devices]
    exports.update(
        AXC_JOB_ID=run.job_id,
        AXC_RUN_ID=run.run_id,
        AXC_GPUS=",".join(gpu_names),
        AXC_NODELIST=",".join(nodes),
        AXC_NUM_NODES=str(len(nodes)),
        CUDA_DEVICE_ORDER="PCI_BUS_ID",
    )
    exports.update(run.extra_env)
    lines = ["#!/bin/sh", f"# axcenter run {run.run_id}"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in exports.items()]
    if not gpus:  # Slurm sets them for a job with GPUs; none means none
        lines.append("export CUDA_VISIBLE_DEVICES= NVIDIA_VISIBLE_DEVICES=")
    elif devices_file is not None:  # before the command: it cannot have run yet
        target = shlex.quote(str(devices_file))
        lines.append(f"printf '%s\\n' \"${{SLURM_JOB_GPUS-}}\" 2>/dev/null >{target}")
    workdir = shlex.quote(run.workdir)
    lines.append(  # a test before mkdir: no process to start where the folder exists
        f"{{ [ -d {workdir} ] || mkdir -p -- {workdir}; }} && cd -- {workdir} ||"
        f" {{ echo 'axcenter: cannot enter the working directory {run.workdir}' >&2; exit 1; }}"
    )
    command = shlex.join(run.command)
    if run.script is not None:
        # the script's own text, as sbatch ships it: written where only the job's user can
        # read it, opened, removed, and run through its descriptor (the job's $0 is
        # /dev/fd/9, as on the local engine); once, on the first node, as sbatch runs a
        # batch script: its own srun reaches the others
        lines += _shipped_script(run.script)
        lines.append(f"exec /dev/fd/9 {shlex.join(run.command[1:])}".rstrip())
    elif len(nodes) > 1:
        # srun hands the steps this environment; Slurm sets each node's devices
        lines.append(f"exec srun --kill-on-bad-exit=1 --ntasks-per-node=1 -- {command}")
    else:
        lines.append(f"exec {command}")
    return options, "\n".join(lines) + "\n"


def open_devices_file(path: Path, run: RunSpec) -> None:
    """Make ``path`` (``LOGS/DEVICES_DIR/RUN``), the file the batch script of ``run``
    writes its GPU indices to (Slurm's ``SLURM_JOB_GPUS`` on the batch node, as Slurm
    numbers them there), for a job that ends before a poll sees it run, when ``scontrol
    -d`` no longer tells them: empty, owned by the job's account, in a folder only root
    writes."""
    path.parent.mkdir(mode=0o711, exist_ok=True)
    os.close(_open_as_job(path, os.O_TRUNC, run, f"cannot make {path}"))


def read_devices_file(path: Path, gpus: int) -> str:
    """The indices the batch script wrote (``"0,3"``), or ``""`` when there are none or
    they are not ``gpus`` distinct small integers: the job's own account can write the
    file, so it is believed only about that job, and only in that shape."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except OSError:
        return ""
    try:
        text = os.read(fd, 256).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    items = text.split(",")
    if not all(i.isdigit() and len(i) <= 4 for i in items) or len(set(items)) != gpus:
        return ""
    return ",".join(str(int(i)) for i in items)


def open_log(logs: Path, run: RunSpec) -> None:
    """Create the job's log owned by its account (Slurm appends to it as that
    account); a later run of the job appends after a header line."""
    path = logs / f"{run.job_id}.log"
    fd = _open_as_job(path, os.O_APPEND, run, f"cannot open the job's log {path}")
    try:
        if run.attempt > 1:
            os.write(fd, f"\n--- axcenter: run {run.attempt} of job {run.job_id} ---\n".encode())
    finally:
        os.close(fd)


def _open_as_job(path: Path, mode: int, run: RunSpec, failed: str) -> int:
    """``path`` opened for writing (``mode``: ``O_TRUNC`` or ``O_APPEND``), created 0600
    without following a link, and owned by the run's account (it writes there as that
    account); ``LaunchError`` saying ``failed`` and why if it cannot be."""
    flags = os.O_WRONLY | os.O_CREAT | mode | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as e:
        raise LaunchError(f"{failed}: {e.strerror}") from e
    if run.run_as is not None and os.geteuid() == 0:
        try:
            os.fchown(fd, run.run_as.uid, run.run_as.gid)
        except OSError:
            os.close(fd)
            raise
    return fd


def _reserved(name: str) -> bool:
    return name.startswith(_RESERVED) or name in _RESERVED_NAMES


def _existing(path: str) -> str:
    """``path``, or its nearest ancestor that exists (slurmstepd would go to /tmp, and
    say so in the job's log, where the job's working directory is still to be made)."""
    while not os.path.isdir(path) and path != "/":
        path = os.path.dirname(path)
    return path


def _in_workdir(run: RunSpec, name: str | None) -> str | None:
    """A job's own output file (``RunSpec.output_file``), relative to its directory."""
    return None if name is None else os.path.join(run.workdir, name)


def _shipped_script(text: str) -> list[str]:
    """Lines that put ``text`` on descriptor 9 of the batch script, with no file left."""
    end = "AXC_SCRIPT_END"
    while end in text:
        end += "_"
    body = text if text.endswith("\n") else text + "\n"
    return [
        'axc_script=$(mktemp "${TMPDIR:-/tmp}/axc-script.XXXXXX") || exit 1',
        f"cat >\"$axc_script\" <<'{end}'",
        body + end,
        'chmod 700 "$axc_script" && exec 9<"$axc_script" && rm -f -- "$axc_script" || exit 1',
    ]
