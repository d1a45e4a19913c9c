"""Job commands: ``submit``, ``jobs``, ``show``, ``logs``, ``cancel``, ``wait``.

The functions here are plain Typer commands registered by ``axcenter.cli.main``. They get
their API client from ``ctx.obj``, a zero-argument opener that the app callback stores, so
the way clients are made (and replaced in tests) is decided in one place.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.text import Text

from axcenter.cli import render
from axcenter.cli.durations import format_duration, parse_duration, parse_memory
from axcenter.client.http import TERMINAL_STATES, ApiError, Client
from axcenter.model.jobs import JobOutput, JobState

__all__ = [
    "EXIT_TIMEOUT",
    "cancel",
    "connect",
    "exit_code_for",
    "list_jobs",
    "logs",
    "print_json",
    "show",
    "submit",
    "wait",
]

#: ``axc wait`` exit status when the job is still not finished at the timeout (as timeout(1)).
EXIT_TIMEOUT = 124
#: Pause between log reads that returned nothing while following a live job.
_FOLLOW_PAUSE_S = 0.3

ClientOpener = Callable[[], Client]


def connect(ctx: typer.Context) -> Client:
    """The API client for this invocation (see ``axcenter.cli.main.client_factory``)."""
    opener: ClientOpener | None = ctx.obj
    if opener is None:
        raise RuntimeError("axc commands must run under the axc app callback")
    return opener()


def print_json(value: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no Rich markup or wrapping."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def exit_code_for(job: dict[str, Any]) -> int:
    """``axc wait``'s exit status for the last state seen of a job.

    0 succeeded, the job's own code (1..255) if it failed with one, 1 for any other end,
    124 if the job has not finished.
    """
    state = job.get("state")
    if state not in TERMINAL_STATES:
        return EXIT_TIMEOUT
    if state == JobState.SUCCEEDED:
        return 0
    code = job.get("exit_code")
    if state == JobState.FAILED and isinstance(code, int) and 1 <= code <= 255:
        return code
    return 1


def _describe_end(job: dict[str, Any], timeout: float | None) -> str:
    state = str(job.get("state", "?"))
    text = f"{job.get('id', '?')}: {state}"
    if state not in TERMINAL_STATES:
        waited = "" if timeout is None else f" after {format_duration(timeout)}"
        return f"{text} (not finished{waited})"
    details = []
    if job.get("exit_code") is not None:
        details.append(f"exit code {job['exit_code']}")
    reason = job.get("reason")
    if reason and str(reason) not in details:  # the server's reason may be "exit code 3"
        details.append(str(reason))
    return f"{text} ({', '.join(details)})" if details else text


def _wait_and_exit(client: Client, job_id: str, timeout: float | None) -> None:
    job = client.wait_job(job_id, timeout)
    code = exit_code_for(job)
    style = "green" if code == 0 else "yellow" if code == EXIT_TIMEOUT else "red"
    render.err_console().print(_describe_end(job, timeout), style=style, soft_wrap=True)
    raise typer.Exit(code)


# -- parsers for options -------------------------------------------------------------------


def _time_limit(text: str) -> int:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError("the time limit must be more than zero")
    return seconds


def _timeout(text: str) -> float:
    """Seconds, fractional allowed, or any duration form (``10m``)."""
    try:
        seconds = float(text)
    except ValueError:
        return float(parse_duration(text))
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("the timeout must be a finite number of seconds, zero or more")
    return seconds


def _env_pairs(items: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or key != key.strip():
            raise typer.BadParameter(f"{item!r}: use KEY=VALUE or KEY", param_hint="'--env'")
        if not sep:  # KEY alone passes this shell's value through, like `docker run -e`
            if key not in os.environ:
                raise typer.BadParameter(
                    f"{key} is not set here; use {key}=VALUE", param_hint="'--env'"
                )
            value = os.environ[key]
        env[key] = value
    return env


# -- commands ------------------------------------------------------------------------------


def submit(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="-- CMD",
            help="The command to run; put it after `--` so its options stay its own.",
            show_default=False,
        ),
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project name or prj_ id.")
    ] = None,
    gpus: Annotated[int, typer.Option("--gpus", "-g", min=0, help="GPUs per node.")] = 1,
    gpu_type: Annotated[
        list[str] | None,
        typer.Option(
            "--gpu-type",
            help="Accepted GPU type (repeatable, or comma-separated); default: any.",
            show_default=False,
        ),
    ] = None,
    nodes: Annotated[int, typer.Option("--nodes", "-N", min=1, help="Nodes (gang).")] = 1,
    cpus: Annotated[int | None, typer.Option("--cpus", "-c", min=1, help="CPUs per node.")] = None,
    mem: Annotated[
        int | None,
        typer.Option(
            "--mem",
            parser=parse_memory,
            metavar="SIZE",
            help="Memory per node: 16G, 512M, or plain MB.",
        ),
    ] = None,
    time_limit: Annotated[
        int | None,
        typer.Option(
            "--time-limit",
            "-t",
            parser=_time_limit,
            metavar="DURATION",
            help="Wall-clock limit: 90s, 30m, 2h, 1d, 1h30m, HH:MM:SS, or plain seconds.",
        ),
    ] = None,
    priority: Annotated[int, typer.Option("--priority", help="Higher runs first.")] = 0,
    name: Annotated[str | None, typer.Option("--name", "-n", help="A label.")] = None,
    workdir: Annotated[
        str | None,
        typer.Option("--workdir", "-w", help="Working directory; default: the current one."),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            "-e",
            metavar="KEY=VALUE",
            help="Environment variable (repeatable); KEY alone copies it from here.",
            show_default=False,
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key", help="Resubmitting with the same key returns the same job."
        ),
    ] = None,
    output: Annotated[
        JobOutput,
        typer.Option(
            "--output",
            "-o",
            help="Where stdout and stderr go: the job's log (`axc logs`), or discard them "
            "(no log file per job, as Slurm's --output=/dev/null).",
        ),
    ] = JobOutput.LOG,
    wait_: Annotated[
        bool, typer.Option("--wait", help="Wait for the job and exit like `axc wait`.")
    ] = False,
    array: Annotated[
        str | None,
        typer.Option(
            "--array",
            metavar="FIRST-LAST[:STEP]",
            help="Run one task per index (AXC_ARRAY_INDEX); prints the array id.",
        ),
    ] = None,
) -> None:
    """Submit a job and print its id (so `JOB=$(axc submit -- ...)` works)."""
    if not command:
        render.print_error(
            "no command given: put the command after `--`, e.g. "
            "`axc submit --gpus 1 -- python train.py`"
        )
        raise typer.Exit(2)
    gpu_types = [t.strip() for item in gpu_type or [] for t in item.split(",") if t.strip()]
    with connect(ctx) as client:
        submit_ = client.submit_job
        if array is not None:
            if wait_:
                render.print_error("--wait takes one job; wait for array tasks one by one")
                raise typer.Exit(2)
            submit_ = functools.partial(client.submit_array, indices=array)
        job = submit_(
            project=project,
            name=name,
            command=command,
            workdir=os.path.abspath(workdir or os.getcwd()),
            env=_env_pairs(env or []),
            gpus_per_node=gpus,
            nodes=nodes,
            cpus_per_node=cpus,
            memory_mb_per_node=mem,
            time_limit_s=time_limit,
            priority=priority,
            gpu_types=gpu_types,
            output=output.value,
            idempotency_key=idempotency_key,
        )
        typer.echo(job.get("array_id") or job["id"])
        if wait_:
            sys.stdout.flush()
            _wait_and_exit(client, str(job["id"]), None)


def list_jobs(
    ctx: typer.Context,
    state: Annotated[
        list[JobState] | None,
        typer.Option(
            "--state", "-s", help="Only jobs in this state (repeatable).", show_default=False
        ),
    ] = None,
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project.")
    ] = None,
    mine: Annotated[bool, typer.Option("--mine", help="Only my jobs.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many jobs.")] = 50,
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Every matching job, fetching all pages.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List jobs, newest first (all states unless --state is given)."""
    states = [s.value for s in state or []]
    with connect(ctx) as client:
        if all_:
            jobs = list(client.iter_jobs(states, project, limit=max(limit, 100), mine=mine))
        else:
            jobs = list(client.list_jobs(states, project, limit=limit, mine=mine)["items"])
    if as_json:
        print_json(jobs)
    elif not jobs:
        render.err_console().print("no jobs")
    else:
        console = render.out_console()
        console.print(render.jobs_table(jobs, width=console.width))


def show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="Job id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False,
) -> None:
    """Show one job (spec, state and reason, placement, times, exit code, events), or an
    array's tasks per state when given an ``arr_`` id."""
    with connect(ctx) as client:
        if job_id.startswith("arr_"):
            view = client.get_array(job_id)
            if as_json:
                print_json(view)
            else:
                render.out_console().print(render.array_panel(view))
            return
        job = client.get_job(job_id)
    if as_json:
        print_json(job)
    else:
        render.out_console().print(render.job_panel(job))


def logs(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="Job id.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
    ] = False,
) -> None:
    """Print a job's log (stdout and stderr of its command) as raw bytes."""
    out = typer.get_binary_stream("stdout")
    offset = 0
    with connect(ctx) as client:
        while True:
            data, offset, state = client.read_log(job_id, offset)
            if data:
                out.write(data)
                out.flush()
                continue
            # Empty read: the log is drained up to now. Stop unless following a live job;
            # a terminal state seen on an empty read means nothing more will come.
            if not follow or state in TERMINAL_STATES:
                return
            time.sleep(_FOLLOW_PAUSE_S)


def cancel(
    ctx: typer.Context,
    job_ids: Annotated[list[str], typer.Argument(metavar="JOB...", help="Job ids.")],
) -> None:
    """Cancel jobs; prints each job's new state (exit 1 if any could not be cancelled)."""
    failed = False
    with connect(ctx) as client:
        for job_id in job_ids:
            try:
                if job_id.startswith("arr_"):
                    view = client.cancel_array(job_id)
                    counts = ", ".join(f"{n} {s}" for s, n in sorted(view["states"].items()))
                    render.out_console().print(f"{job_id}: {counts}", soft_wrap=True)
                    continue
                job = client.cancel_job(job_id)
            except ApiError as exc:
                if exc.status_code == 0:
                    raise
                render.print_error(f"{job_id}: {exc.detail}")
                failed = True
                continue
            line = Text.assemble(f"{job.get('id', job_id)}: ", render.state_text(job.get("state")))
            render.out_console().print(line, soft_wrap=True)
    if failed:
        raise typer.Exit(1)


def checkpoint(
    ctx: typer.Context,
    job_id: Annotated[
        str,
        typer.Argument(
            metavar="[JOB]",
            envvar="AXC_JOB_ID",
            help="Job id (default: $AXC_JOB_ID, set inside every job).",
            show_envvar=False,
        ),
    ],
) -> None:
    """Report, from inside a running job, that it has saved its work: if it is preempted,
    it loses only what it does from now on, so the scheduler stops it less readily."""
    with connect(ctx) as client:
        try:
            job = client.checkpoint_job(job_id)
        except ApiError as exc:
            if exc.status_code == 0:
                raise
            render.print_error(f"{job_id}: {exc.detail}")
            raise typer.Exit(1) from exc
    render.out_console().print(
        f"{job.get('id', job_id)}: checkpoint at {job.get('last_checkpoint_at')}",
        soft_wrap=True,
        markup=False,
    )


def wait(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="Job id.")],
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            parser=_timeout,
            metavar="DURATION",
            help="Give up after this long (seconds or 10m, 1h...); exit status 124.",
        ),
    ] = None,
) -> None:
    """Wait for a job to end; the exit status tells how it ended.

    0 if it succeeded, the job's own exit code (1..255) if it failed with one, 1 if it
    ended otherwise (cancelled, timed out, failed without a code), 124 on timeout.
    """
    with connect(ctx) as client:
        _wait_and_exit(client, job_id, timeout)
