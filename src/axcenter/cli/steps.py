"""``axc salloc`` and ``axc srun``: an interactive allocation, and steps inside a job's.

As in Slurm: ``axc salloc -g 2 -t 2h`` waits until the center grants two GPUs, then runs
a shell (or the command given) here with ``AXC_JOB_ID`` set; every ``axc srun -- CMD``
run from it is a step of that job, as the job's user, on its devices, with its
environment; leaving the shell releases the allocation. ``axc srun`` inside a batch job
(``AXC_JOB_ID`` is set there too) needs no ``--jobid``. A step's output streams back as
it comes; Ctrl-C ends the step; the job's end ends its steps. ``axc show`` and ``axc
acct`` list the steps (``JOB.0``, ``JOB.1``...) with their ends and exit codes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Annotated, Any

import typer

from axcenter.cli.common import connect, new_app, option_parser, print_error
from axcenter.cli.durations import parse_gpus, parse_memory, parse_time_limit
from axcenter.client.http import TERMINAL_STATES

__all__ = ["commands", "salloc", "srun"]

#: the command an allocation's job runs: nothing, until it is released or its time is up
HOLDER = ["sleep", "infinity"]
#: how often ``salloc`` looks whether its allocation was granted
_GRANT_POLL_S = 0.5


def _step_exit_status(step: dict[str, Any]) -> int:
    """``srun``'s exit status: the step's code, 128+N for signal N, 1 for no code."""
    code = step.get("exit_code")
    if not isinstance(code, int):
        return 1
    return code if code >= 0 else 128 - code


def srun(
    ctx: typer.Context,
    command: Annotated[list[str], typer.Argument(metavar="-- CMD [ARGS]...", show_default=False)],
    jobid: Annotated[
        str | None,
        typer.Option(
            "--jobid",
            "-j",
            envvar="AXC_JOB_ID",
            show_envvar=False,
            help="The running job to run in (default: $AXC_JOB_ID, set inside every job "
            "and in the shell of `axc salloc`).",
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", "-e", metavar="KEY=VALUE", help="Add to the step's environment."),
    ] = None,
) -> None:
    """Run a command inside a running job's allocation (Slurm's srun in a job or under
    salloc): as the job's user, on its GPUs, with its environment. Its output streams
    here; the exit status is the command's; Ctrl-C ends the step."""
    if not jobid:
        print_error(
            "which job? give --jobid JOB, or run it inside a job or `axc salloc` "
            "(they set AXC_JOB_ID)"
        )
        raise typer.Exit(2)
    pairs: dict[str, str] = {}
    for item in env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print_error(f"--env takes KEY=VALUE, not {item!r}")
            raise typer.Exit(2)
        pairs[key] = value

    def output(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    with connect(ctx) as client:
        try:
            step = client.run_step(jobid, command, pairs, output=output)
        except KeyboardInterrupt:  # the connection closes with the client: the step ends
            print_error(f"{jobid}: step interrupted; it is being ended")
            raise typer.Exit(130) from None
    if step.get("state") != "succeeded":
        print_error(f"{step.get('id')}: {step.get('state')} ({step.get('message')})")
    raise typer.Exit(_step_exit_status(step))


def salloc(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(metavar="[-- CMD [ARGS]...]", show_default=False),
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", "--account", "-A", help="Project.")
    ] = None,
    gpus: Annotated[
        str,
        typer.Option("--gpus", "-g", "--gpus-per-node", metavar="[TYPE:]N", help="GPUs per node."),
    ] = "1",
    nodes: Annotated[int, typer.Option("--nodes", "-N", min=1, help="Nodes.")] = 1,
    cpus: Annotated[
        int | None, typer.Option("--cpus", "-c", "--cpus-per-task", min=1, help="CPUs per node.")
    ] = None,
    mem: Annotated[
        int | None,
        typer.Option(
            "--mem", metavar="SIZE", parser=option_parser(parse_memory), help="Memory per node."
        ),
    ] = None,
    time_limit: Annotated[
        int | None,
        typer.Option(
            "--time",
            "-t",
            metavar="TIME",
            parser=option_parser(parse_time_limit),
            help="How long the allocation may be held (Slurm's forms: 90 is 90 minutes).",
        ),
    ] = None,
    name: Annotated[str, typer.Option("--name", "-J", "--job-name", help="A label.")] = "salloc",
    no_shell: Annotated[
        bool,
        typer.Option(
            "--no-shell",
            help="Print the job id once granted and leave the allocation held, until "
            "`axc cancel JOB` or its time limit.",
        ),
    ] = False,
) -> None:
    """Hold an allocation and run a shell (or CMD) here with AXC_JOB_ID set, so `axc
    srun` runs in it (Slurm's salloc); leaving it releases the GPUs."""
    try:
        gpu_type, per_node = parse_gpus(gpus)
    except ValueError as exc:
        print_error(f"--gpus: {exc}")
        raise typer.Exit(2) from None
    fields = {
        "project": project,
        "name": name,
        "command": HOLDER,
        "gpus_per_node": per_node,
        "nodes": nodes,
        "cpus_per_node": cpus,
        "memory_mb_per_node": mem,
        "time_limit_s": time_limit,
        "gpu_types": [gpu_type] if gpu_type else [],
    }
    with connect(ctx) as client:
        job = client.submit_job(**fields)
        job_id = str(job["id"])
        typer.echo(f"salloc: {job_id} waits for its resources", err=True)
        try:
            job = _granted(client, job_id)
        except KeyboardInterrupt:
            client.cancel_job(job_id)
            print_error(f"{job_id}: interrupted before it was granted; cancelled")
            raise typer.Exit(130) from None
        where = " ".join(
            f"{p.get('node')}:{','.join(map(str, p.get('devices', [])))}"
            for p in job.get("placement") or []
        )
        typer.echo(f"salloc: granted {job_id} ({where or 'no GPUs'})", err=True)
        if no_shell:
            typer.echo(job_id)
            return
        argv = command or [os.environ.get("SHELL") or "/bin/sh"]
        code = _run_here(argv, job_id)
        ended = client.cancel_job(job_id)
        typer.echo(f"salloc: released {job_id} ({ended.get('state')})", err=True)
    raise typer.Exit(code)


def _granted(client: Any, job_id: str) -> dict[str, Any]:
    """The job once running; exits if it ended instead."""
    while True:
        job: dict[str, Any] = client.get_job(job_id)
        if job.get("state") == "running":
            return job
        if job.get("state") in TERMINAL_STATES:
            print_error(f"{job_id}: {job.get('state')} before it was granted ({job.get('reason')})")
            raise typer.Exit(1)
        time.sleep(_GRANT_POLL_S)


def _run_here(argv: list[str], job_id: str) -> int:
    """Run the allocation's shell or command on this machine with AXC_JOB_ID set; its
    exit status (Ctrl-C goes to it, not to us)."""
    try:
        proc = subprocess.Popen(argv, env={**os.environ, "AXC_JOB_ID": job_id})
    except OSError as exc:
        print_error(f"cannot run {argv[0]}: {exc.strerror}")
        return 127
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return proc.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


#: this module's commands, as ``axcenter.cli.main`` loads them
commands = new_app()
_ARGS = {"allow_interspersed_args": False}
commands.command("srun", context_settings=_ARGS)(srun)
commands.command("salloc", context_settings=_ARGS)(salloc)
