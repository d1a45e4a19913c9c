"""Job commands (``submit`` has its own module): ``jobs``, ``show``, ``logs``, ``cancel``, ``wait``.

The functions here are plain Typer commands registered by ``axcenter.cli.main``. They get
their API client from ``ctx.obj``, a zero-argument opener that the app callback stores, so
the way clients are made (and replaced in tests) is decided in one place.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer

from axcenter.cli import listing
from axcenter.cli.common import (
    EXIT_TIMEOUT,
    connect,
    exit_code_for,
    new_app,
    option_parser,
    print_error,
    print_json,
    wait_and_exit,
)
from axcenter.cli.durations import parse_duration, parse_time_limit
from axcenter.client.http import TERMINAL_STATES, ApiError, Client
from axcenter.model.jobs import TERMINAL, JobState

__all__ = [
    "cancel",
    "commands",
    "hold",
    "list_jobs",
    "logs",
    "release",
    "requeue",
    "show",
    "update",
    "wait",
]

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


def _words(items: list[str] | None) -> list[str]:
    """Values of a repeatable option that also takes comma-separated lists."""
    return [w.strip() for item in items or [] for w in item.split(",") if w.strip()]


UserOption = Annotated[
    list[str] | None,
    typer.Option(
        "--user", "-u", help="Only jobs of these users (repeatable, or a,b).", show_default=False
    ),
]
NameOption = Annotated[
    list[str] | None,
    typer.Option(
        "--name", "-n", help="Only jobs of these names (repeatable, or a,b).", show_default=False
    ),
]
ProjectOption = Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")]


def list_jobs(
    ctx: typer.Context,
    state: Annotated[
        list[JobState] | None,
        typer.Option(
            "--state", "-s", help="Only jobs in this state (repeatable).", show_default=False
        ),
    ] = None,
    project: ProjectOption = None,
    user: UserOption = None,
    name: NameOption = None,
    mine: Annotated[bool, typer.Option("--mine", help="Only my jobs.")] = False,
    start: Annotated[
        bool,
        typer.Option(
            "--start",
            help="Pending jobs in scheduling order, with why each waits and its estimated "
            "start (squeue --start).",
        ),
    ] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many jobs.")] = 50,
    all_: Annotated[
        bool, typer.Option("--all", "-a", help="Every matching job, fetching all pages.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List jobs, newest first, or with --start the pending ones in scheduling order.

    All states unless --state is given. --start lists the pending jobs in the order the
    scheduler considers them, each with why it waits and, where the scheduler reserved
    one, its estimated start (squeue --start)."""
    states = [s.value for s in state or []]
    users, names = _words(user), _words(name)
    with connect(ctx) as client:
        if start:
            if states and states != [JobState.PENDING.value]:
                raise typer.BadParameter("--start lists pending jobs only", param_hint="'--state'")
            me = client.whoami().get("name") if mine else None
            jobs = _queue(client, project, [*users, *([me] if me else [])], names, limit, all_)
        elif all_:
            jobs = list(
                client.iter_jobs(
                    states, project, limit=max(limit, 100), mine=mine, users=users, names=names
                )
            )
        else:
            page = client.list_jobs(
                states, project, limit=limit, mine=mine, users=users, names=names
            )
            jobs = list(page["items"])
    if as_json:
        print_json(jobs)
    elif not jobs:
        typer.echo("no jobs", err=True)
    elif start:
        typer.echo(listing.queue_table(jobs, listing.terminal_width()))
    else:
        typer.echo(listing.jobs_table(jobs, listing.terminal_width()))


def _queue(
    client: Client,
    project: str | None,
    users: list[str],
    names: list[str],
    limit: int,
    all_: bool,
) -> list[dict[str, Any]]:
    """The visible queue in scheduling order, filtered here (positions stay the queue's)."""
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = client.queue(offset=offset, limit=500)
        for item in page.get("items", []):
            if (
                (not project or item.get("project") == project)
                and (not users or item.get("user") in users)
                and (not names or item.get("name") in names)
            ):
                found.append(item)
                if len(found) >= limit and not all_:
                    return found
        offset += 500
        if offset >= int(page.get("total", 0)):
            return found


def show(
    ctx: typer.Context,
    job_id: Annotated[str, typer.Argument(metavar="JOB", help="Job id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the job as JSON.")] = False,
    script: Annotated[
        bool, typer.Option("--script", help="Print the batch script submitted with the job.")
    ] = False,
) -> None:
    """Show one job (spec, state and reason, placement, times, exit code, events, steps),
    or an array's tasks per state when given an `arr_` id."""
    with connect(ctx) as client:
        view = (
            client.get_job(job_id) if script or not _is_array(job_id) else client.get_array(job_id)
        )
    if script:
        if not view.get("script"):
            print_error(f"{job_id} was not submitted from a batch script")
            raise typer.Exit(1)
        typer.echo(view["script"], nl=False)
        return
    if as_json:
        print_json(view)
        return
    from axcenter.cli import render

    panel = render.array_panel(view) if _is_array(job_id) else render.job_panel(view)
    render.out_console().print(panel)


def logs(
    ctx: typer.Context,
    job_id: Annotated[
        str, typer.Argument(metavar="JOB", help="Job id, ARRAY_INDEX task, or array id.")
    ],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing until the job ends.")
    ] = False,
) -> None:
    """Print a job's log (stdout and stderr of its command) as raw bytes.

    For an array, each task's log in index order, under a ==> ARRAY_INDEX <== line."""
    out = typer.get_binary_stream("stdout")
    with connect(ctx) as client:
        if _is_array(job_id):
            if follow:
                raise typer.BadParameter(
                    f"follow one task at a time: axc logs {job_id}_INDEX --follow",
                    param_hint="'--follow'",
                )
            tasks = sorted(client.iter_jobs(array=job_id, limit=1000), key=_index)
            if not tasks:
                raise ApiError(404, f"no array {job_id!r}")
            for task in tasks:
                out.write(f"==> {listing.job_ref(task)} <==\n".encode())
                if task.get("output") == "discard":
                    out.write(b"(output discarded)\n")
                    continue
                _copy_log(client, str(task["id"]), out, follow=False)
            return
        _copy_log(client, job_id, out, follow=follow)


def _copy_log(client: Client, job_id: str, out: Any, *, follow: bool) -> None:
    offset = 0
    told = False
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
        if not told and state in (JobState.PENDING, JobState.ADMITTED, JobState.PREEMPTED):
            typer.secho(f"{job_id} is {state}: waiting for it to start", fg="yellow", err=True)
            told = True
        time.sleep(_FOLLOW_PAUSE_S)


def _is_array(ref: str) -> bool:
    """An array's own id (``arr_…``), not one of its tasks (``arr_…_INDEX``)."""
    return ref.startswith("arr_") and ref.count("_") == 1


def _index(job: dict[str, Any]) -> int:
    return int(job.get("array_index") or 0)


#: states a job can be cancelled in, the default of a cancel by filter
_CANCELLABLE = [JobState.PENDING, JobState.ADMITTED, JobState.RUNNING, JobState.PREEMPTED]


def cancel(
    ctx: typer.Context,
    job_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[JOB...]",
            help="Job ids, arrays (arr_…) or array tasks (arr_…_INDEX).",
            show_default=False,
        ),
    ] = None,
    user: UserOption = None,
    name: NameOption = None,
    state: Annotated[
        list[JobState] | None,
        typer.Option(
            "--state",
            "-s",
            help="With no JOB: only jobs in this state (default: all that have not ended).",
            show_default=False,
        ),
    ] = None,
    project: ProjectOption = None,
) -> None:
    """Cancel jobs by id, or every job that matches the filters.

    The filters (--user, --name, --state, --project) select your own jobs unless --user
    names others, as scancel. Prints each job's new state; exits 1 if any could not be
    cancelled."""
    filtered = bool(user or name or state or project)
    if job_ids and filtered:
        raise typer.BadParameter("give job ids or filters, not both", param_hint="'JOB...'")
    if not job_ids and not filtered:
        raise typer.BadParameter(
            "name the jobs, or filter them (--user, --name, --state, --project)",
            param_hint="'JOB...'",
        )
    failed = False
    with connect(ctx) as client:
        if filtered:
            states = [s.value for s in state or _CANCELLABLE]
            users = _words(user)
            matched = client.iter_jobs(
                states, project, limit=500, mine=not users, users=users, names=_words(name)
            )
            job_ids = [str(job["id"]) for job in matched]
            if not job_ids:
                typer.echo("no job matches", err=True)
                return
        for job_id in job_ids or []:
            try:
                if _is_array(job_id):
                    view = client.cancel_array(job_id)
                    counts = ", ".join(f"{n} {s}" for s, n in sorted(view["states"].items()))
                    typer.echo(f"{job_id}: {counts}")
                    continue
                job = client.cancel_job(job_id)
            except ApiError as exc:
                if exc.status_code == 0:
                    raise
                print_error(f"{job_id}: {exc.detail}")
                failed = True
                continue
            typer.echo(listing.state_line(job, job_id))
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
            print_error(f"{job_id}: {exc.detail}")
            raise typer.Exit(1) from exc
    typer.echo(f"{job.get('id', job_id)}: checkpoint at {job.get('last_checkpoint_at')}")


def wait(
    ctx: typer.Context,
    job_id: Annotated[
        str, typer.Argument(metavar="JOB", help="Job id, ARRAY_INDEX task, or array id.")
    ],
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
    """Wait for a job (or every task of an array) to end; the exit status tells how.

    0 if it succeeded, the job's own exit code (1..255) if it failed with one, 1 if it
    ended otherwise (cancelled, timed out, failed without a code), 124 on timeout. For
    an array: 0 if every task succeeded, else the highest of its tasks' statuses.
    """
    with connect(ctx) as client:
        if not _is_array(job_id):
            wait_and_exit(client, job_id, timeout)
        ids = client.get_array(job_id, ids=True).get("job_ids") or []
        deadline = None if timeout is None else time.monotonic() + timeout
        worst = 0
        ends: dict[str, int] = {}
        for task_id in ids:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            job = client.wait_job(str(task_id), left)
            code = exit_code_for(job)
            worst = max(worst, code)
            ends[str(job.get("state"))] = ends.get(str(job.get("state")), 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(ends.items()))
    color = "green" if worst == 0 else "yellow" if worst == EXIT_TIMEOUT else "red"
    typer.secho(f"{job_id}: {summary}", fg=color, err=True)
    raise typer.Exit(worst)


def _each(
    ctx: typer.Context,
    refs: list[str],
    act: Callable[[Client, str], Any],
    array_states: tuple[Sequence[JobState], str],
) -> None:
    """``act`` on every job, printing each one's state and reason; exit 1 if one fails.
    An array's id stands for its tasks in ``array_states`` (the states, and how to say
    them), as Slurm's array job id does."""
    failed = False
    with connect(ctx) as client:
        for ref in refs:
            try:
                job_ids = _tasks(client, ref, array_states) if _is_array(ref) else [ref]
            except ApiError as exc:
                if exc.status_code == 0:
                    raise
                print_error(f"{ref}: {exc.detail}")
                failed = True
                continue
            for job_id in job_ids:
                try:
                    job = act(client, job_id)
                except ApiError as exc:
                    if exc.status_code == 0:
                        raise
                    print_error(f"{job_id}: {exc.detail}")
                    failed = True
                    continue
                typer.echo(listing.state_line(job, job_id, reason=True))
    if failed:
        raise typer.Exit(1)


def _tasks(
    client: Client, array_id: str, array_states: tuple[Sequence[JobState], str]
) -> list[str]:
    """The ids of an array's tasks in some states, by index; an ``ApiError`` if none is."""
    states, said = array_states
    client.get_array(array_id)  # 404 for no such array
    found = client.iter_jobs([s.value for s in states], array=array_id, limit=500)
    tasks = sorted(found, key=_index)
    if not tasks:
        raise ApiError(409, f"no task of array {array_id} is {said}")
    return [str(task["id"]) for task in tasks]


JobsArgument = Annotated[
    list[str],
    typer.Argument(
        metavar="JOB...",
        help="Job ids, array tasks (arr_…_INDEX) or arrays (arr_…: the tasks it applies to).",
    ),
]
_PENDING = ([JobState.PENDING], "pending")
#: what can be requeued: a job that holds devices or has ended
_REQUEUABLE = ([JobState.ADMITTED, JobState.RUNNING, *sorted(TERMINAL)], "running or ended")


def hold(ctx: typer.Context, job_ids: JobsArgument) -> None:
    """Keep pending jobs from starting, in their place in the queue (scontrol hold)."""
    _each(ctx, job_ids, lambda client, job_id: client.hold_job(job_id), _PENDING)


def release(ctx: typer.Context, job_ids: JobsArgument) -> None:
    """Let held jobs start again (scontrol release)."""
    _each(ctx, job_ids, lambda client, job_id: client.release_job(job_id), _PENDING)


def requeue(
    ctx: typer.Context,
    job_ids: JobsArgument,
    hold: Annotated[
        bool, typer.Option("--hold", help="Come back held (scontrol requeuehold).")
    ] = False,
) -> None:
    """Put jobs that ran or ended back in the queue, keeping their ids and history
    (scontrol requeue): a running job's run is stopped first."""
    _each(ctx, job_ids, lambda client, job_id: client.requeue_job(job_id, hold=hold), _REQUEUABLE)


def update(
    ctx: typer.Context,
    job_ids: JobsArgument,
    time_limit: Annotated[
        int | None,
        typer.Option(
            "--time",
            "-t",
            parser=option_parser(parse_time_limit),
            metavar="TIME",
            help="A new time limit (pending jobs): 90 (minutes), 1-00:00:00, 2h...",
        ),
    ] = None,
    priority: Annotated[
        int | None, typer.Option("--priority", help="A new priority (pending jobs).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-J", help="A new name.")] = None,
) -> None:
    """Change jobs' time limit or priority while they wait, or their name (scontrol update)."""
    if time_limit is None and priority is None and name is None:
        raise typer.BadParameter("give --time, --priority or --name", param_hint="'JOB...'")
    changes = {"time_limit_s": time_limit, "priority": priority, "name": name}
    renaming_only = time_limit is None and priority is None  # a name changes in any state
    states = (list(JobState), "of any state") if renaming_only else _PENDING
    _each(ctx, job_ids, lambda client, job_id: client.update_job(job_id, **changes), states)


#: the commands of this module, as ``axcenter.cli.main`` loads them
commands = new_app()
commands.command("jobs")(list_jobs)
commands.command("show")(show)
commands.command("logs")(logs)
commands.command("cancel")(cancel)
commands.command("wait")(wait)
commands.command("checkpoint")(checkpoint)
commands.command("hold")(hold)
commands.command("release")(release)
commands.command("update")(update)
commands.command("requeue")(requeue)
