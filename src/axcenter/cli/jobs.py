"""Job commands (``submit`` has its own module): ``jobs``, ``show``, ``logs``, ``cancel``, ``wait``.

The functions here are plain Typer commands registered by ``axcenter.cli.main``. They get
their API client from ``ctx.obj``, a zero-argument opener that the app callback stores, so
the way clients are made (and replaced in tests) is decided in one place.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.text import Text

from axcenter.cli import render
from axcenter.cli.durations import format_duration, parse_duration
from axcenter.client.http import TERMINAL_STATES, ApiError, Client
from axcenter.model.jobs import JobState

__all__ = [
    "EXIT_TIMEOUT",
    "cancel",
    "connect",
    "exit_code_for",
    "list_jobs",
    "logs",
    "print_json",
    "show",
    "wait",
    "wait_and_exit",
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


def wait_and_exit(client: Client, job_id: str, timeout: float | None) -> None:
    job = client.wait_job(job_id, timeout)
    code = exit_code_for(job)
    style = "green" if code == 0 else "yellow" if code == EXIT_TIMEOUT else "red"
    render.err_console().print(_describe_end(job, timeout), style=style, soft_wrap=True)
    raise typer.Exit(code)


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
        wait_and_exit(client, job_id, timeout)
