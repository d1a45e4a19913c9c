"""Job commands (``submit`` has its own module): ``jobs``, ``show``, ``logs``, ``cancel``, ``wait``.

The functions here are plain Typer commands registered by ``axcenter.cli.main``. They get
their API client from ``ctx.obj``, a zero-argument opener that the app callback stores, so
the way clients are made (and replaced in tests) is decided in one place.
"""

from __future__ import annotations

import math
import time
from typing import Annotated

import typer
from rich.text import Text

from axcenter.cli import render
from axcenter.cli.common import connect, new_app, option_parser, print_json, wait_and_exit
from axcenter.cli.durations import parse_duration
from axcenter.client.http import TERMINAL_STATES, ApiError
from axcenter.model.jobs import JobState

__all__ = ["cancel", "commands", "list_jobs", "logs", "show", "wait"]

#: Pause between log reads that returned nothing while following a live job.
_FOLLOW_PAUSE_S = 0.3


# -- parsers for options -------------------------------------------------------------------


def _timeout(text: str) -> float:
    """Seconds, fractional allowed, or any duration form (``10m``)."""
    try:
        seconds = float(text)
    except ValueError:
        return float(parse_duration(text))
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("the timeout must be a finite number of seconds, zero or more")
    return seconds


# -- commands ------------------------------------------------------------------------------


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
    array's tasks per state when given an `arr_` id."""
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


def wait(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="Job id.")],
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            parser=option_parser(_timeout),
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
        wait_and_exit(client, job_id, timeout)


#: the commands of this module, as ``axcenter.cli.main`` loads them
commands = new_app()
commands.command("jobs")(list_jobs)
commands.command("show")(show)
commands.command("logs")(logs)
commands.command("cancel")(cancel)
commands.command("wait")(wait)
