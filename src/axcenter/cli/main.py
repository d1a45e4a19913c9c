"""The ``axc`` application: global options, error handling, and command registration.

How commands get an API client: the app callback stores in ``ctx.obj`` a zero-argument
opener that resolves the config (``--url``/``--token``, then ``AXC_URL``/``AXC_TOKEN``, then
the config file) and calls the module-level ``client_factory``. Tests and embedders swap
``client_factory`` to inject a transport; nothing else needs patching.

Expected failures never show a traceback: ``ApiError`` prints ``error: <detail>`` on stderr
and exits 1; a missing configuration and bad local input exit 2.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from axcenter import __version__
from axcenter.cli.common import connect, plain_help, print_error, print_json
from axcenter.client import config
from axcenter.client.http import ApiError

if TYPE_CHECKING:
    from axcenter.client.http import Client

__all__ = ["ClientFactory", "app", "client_factory", "default_client_factory"]

ClientFactory = Callable[[config.Config], "Client"]


#: seconds to keep retrying while the server is unavailable (default: the client's)
ENV_RETRY_S = "AXC_RETRY_S"


def default_client_factory(cfg: config.Config) -> Client:
    """A real HTTP client for ``cfg``: it retries while the server is unavailable (for
    ``AXC_RETRY_S`` seconds, 60 by default), saying so on stderr."""
    from axcenter.client.http import RETRY_S, Client

    try:
        retry_s = float(os.environ.get(ENV_RETRY_S) or RETRY_S)
    except ValueError:
        print_error(f"{ENV_RETRY_S} must be a number of seconds")
        raise typer.Exit(EXIT_USAGE) from None
    return Client(cfg.url, cfg.token, retry_s=retry_s, on_retry=lambda m: print(m, file=sys.stderr))


#: How every command makes its client. Replace it to inject a ``Transport``
#: (``axcenter.client.transport``; the tests' ``HttpxTransport`` answers in process):
#: ``main.client_factory = lambda cfg: Client(cfg.url, cfg.token, transport=mock)``.
client_factory: ClientFactory = default_client_factory

#: Exit status for problems found locally before any request (bad input, no config).
EXIT_USAGE = 2


def _api_message(exc: ApiError) -> str:
    if exc.status_code == 401:
        return f"{exc.detail} (run `axc login` or set {config.ENV_TOKEN})"
    return exc.detail


#: Every command but these three lives in a module imported only when it is named (Click's
#: lazy group): ``axc submit`` does not load Rich tables, the price book or the simulator,
#: and ``axc --help`` lists them from here without importing any.
#: name -> (module, attribute, short help). The attribute is a ``typer.Typer`` holding the
#: command of that name, or a sub-app (a group of commands); the short help is the
#: command's own (tests/cli/test_commands.py checks that they agree).
_COMMANDS: dict[str, tuple[str, str, str]] = {
    "submit": (
        "axcenter.cli.submit",
        "commands",
        "Submit a job, an array or a batch script and print its id (so `JOB=$(axc submit "
        "...)` works).",
    ),
    "jobs": (
        "axcenter.cli.jobs",
        "commands",
        "List jobs, newest first, or with --start the pending ones in scheduling order.",
    ),
    "show": (
        "axcenter.cli.jobs",
        "commands",
        "Show one job (spec, state and reason, placement, times, exit code, events, steps), "
        "or an array's tasks per state when given an `arr_` id.",
    ),
    "logs": (
        "axcenter.cli.jobs",
        "commands",
        "Print a job's log (stdout and stderr of its command) as raw bytes.",
    ),
    "cancel": (
        "axcenter.cli.jobs",
        "commands",
        "Cancel jobs by id, or every job that matches the filters.",
    ),
    "wait": (
        "axcenter.cli.jobs",
        "commands",
        "Wait for a job (or every task of an array) to end; the exit status tells how.",
    ),
    "checkpoint": (
        "axcenter.cli.jobs",
        "commands",
        "Report, from inside a running job, that it has saved its work: if it is preempted, "
        "it loses only what it does from now on, so the scheduler stops it less readily.",
    ),
    "hold": (
        "axcenter.cli.jobs",
        "commands",
        "Keep pending jobs from starting, in their place in the queue (scontrol hold).",
    ),
    "release": (
        "axcenter.cli.jobs",
        "commands",
        "Let held jobs start again (scontrol release).",
    ),
    "update": (
        "axcenter.cli.jobs",
        "commands",
        "Change jobs' time limit or priority while they wait, or their name (scontrol update).",
    ),
    "requeue": (
        "axcenter.cli.jobs",
        "commands",
        "Put jobs that ran or ended back in the queue, keeping their ids and history "
        "(scontrol requeue): a running job's run is stopped first.",
    ),
    "salloc": (
        "axcenter.cli.steps",
        "commands",
        "Hold an allocation and run a shell (or CMD) here with AXC_JOB_ID set, so `axc "
        "srun` runs in it (Slurm's salloc); leaving it releases the GPUs.",
    ),
    "srun": (
        "axcenter.cli.steps",
        "commands",
        "Run a command inside a running job's allocation (Slurm's srun in a job or under "
        "salloc): as the job's user, on its GPUs, with its environment.",
    ),
    "acct": (
        "axcenter.cli.reports",
        "commands",
        "Jobs that ran in a period with elapsed time, GPU-hours and won charged (sacct).",
    ),
    "backup": (
        "axcenter.cli.backup",
        "commands",
        "Back up the center's store to FILE, running or not.",
    ),
    "restore": (
        "axcenter.cli.backup",
        "commands",
        "Restore a backup into an empty store, for `axc up` to start on.",
    ),
    "up": (
        "axcenter.cli.up",
        "commands",
        "Start the center: API, scheduler and engines in one process.",
    ),
}
_GROUPS: dict[str, tuple[str, str, str]] = {
    "quota": (
        "axcenter.cli.policy",
        "quota_app",
        "GPU quotas of projects: guaranteed (nominal), borrowing and lending limits.",
    ),
    "cohort": (
        "axcenter.cli.policy",
        "cohort_app",
        "Cohorts: groups of projects that lend idle quota to each other.",
    ),
    "project": ("axcenter.cli.projects", "app", "Projects: members, allocations, limits."),
    "reservation": (
        "axcenter.cli.policy",
        "reservation_app",
        "Reservations: devices held for one project during a time window.",
    ),
    "export": ("axcenter.cli.export", "app", "Export data from the center."),
    "report": (
        "axcenter.cli.reports",
        "app",
        "Usage reports, burn-downs, settlements and statements.",
    ),
    "program": (
        "axcenter.cli.programs",
        "app",
        "Funding programs: budgets, rules, surveys, obligations.",
    ),
    "org": ("axcenter.cli.orgs", "app", "Organizations: companies and institutes."),
    "user": ("axcenter.cli.users", "app", "Users, roles and API tokens."),
    "alloc": ("axcenter.cli.alloc", "app", "Allocation requests, review and grant balances."),
    "template": (
        "axcenter.cli.templates",
        "app",
        "Job templates of a project: keep, list, show, use, delete.",
    ),
    "grant": ("axcenter.cli.grants", "app", "Grants: tranches, progress reports, use, take-back."),
    "survey": ("axcenter.cli.surveys", "app", "Outcome surveys: answers of funded projects."),
    "price": ("axcenter.cli.prices", "app", "The price book: won per GPU-hour."),
    "sim": (
        "axcenter.cli.sim",
        "app",
        "Replay traces in simulated time: compare policies, plan capacity, make traces.",
    ),
}


class _AxcGroup(TyperGroup):
    """Turns the errors users are expected to meet into one-line messages and exit codes,
    and loads the commands of ``_COMMANDS`` and ``_GROUPS`` when they are used."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_help(self)

    def list_commands(self, ctx: Any) -> list[str]:
        return [*_COMMANDS, *super().list_commands(ctx), *_GROUPS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return plain_help(self._load(ctx, cmd_name))

    def _load(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in _COMMANDS:
            module, attribute, _ = _COMMANDS[cmd_name]
            holder = getattr(importlib.import_module(module), attribute)
            return typer.main.get_group(holder).get_command(ctx, cmd_name)
        if cmd_name in _GROUPS:
            module, attribute, _ = _GROUPS[cmd_name]
            # a group even with one command (``axc export history``), as add_typer made it
            command = typer.main.get_group(getattr(importlib.import_module(module), attribute))
            command.name = cmd_name
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list of ``axc --help``, from the tables above (imports nothing)."""
        lazy = {name: text for name, (_, _, text) in {**_COMMANDS, **_GROUPS}.items()}
        rows = []
        for name in self.list_commands(ctx):
            text = lazy.get(name)
            if text is None:
                command = super().get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                text = command.get_short_help_str(limit=1000)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: Any) -> Any:  # ``ctx`` is Click's Context, private in Typer
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            print_error(_api_message(exc))
            raise typer.Exit(1) from None
        except config.ConfigError as exc:
            print_error(str(exc))
            raise typer.Exit(EXIT_USAGE) from None


app = typer.Typer(
    cls=_AxcGroup,
    name="axc",
    help="axcenter: submit and follow jobs on the shared GPU cluster.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals would include the token
    rich_markup_mode=None,  # help as written, and fast (cli/common.py: new_app)
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"axc {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help=f"Server URL, e.g. http://127.0.0.1:8080 (default: ${config.ENV_URL}, "
            "then the `axc login` config).",
            show_default=False,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help=f"API token (default: ${config.ENV_TOKEN}, then the `axc login` config).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """axcenter: submit and follow jobs on the shared GPU cluster."""
    # Resolved lazily: `axc login` must work before any config exists.
    ctx.obj = lambda: client_factory(config.resolve(url, token))


@app.command()
def login(
    ctx: typer.Context,
    url: Annotated[
        str | None, typer.Option("--url", help="Server URL.", show_default=False)
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="API token; prompted (hidden) if absent.", show_default=False),
    ] = None,
) -> None:
    """Check a token against the server and save URL and token to the config file."""
    root = ctx.find_root().params
    try:
        stored_url = config.load_file().get("url")
    except config.ConfigError:  # a broken file is what login is there to replace
        stored_url = None
    url = (
        url
        or root.get("url")
        or os.environ.get(config.ENV_URL)
        or stored_url
        or typer.prompt("axcenter URL", default="http://127.0.0.1:8080")
    )
    token = (
        token
        or root.get("token")
        or os.environ.get(config.ENV_TOKEN)
        or typer.prompt("API token", hide_input=True)
    )
    from rich.markup import escape

    from axcenter.cli import render

    cfg = config.Config(url=config.normalize_url(url), token=token.strip())
    with client_factory(cfg) as client:
        me = client.whoami()
    path = config.save(cfg)
    render.out_console().print(
        f"logged in to {escape(cfg.url)} as [bold]{escape(str(me.get('name', '?')))}[/] "
        f"({escape(str(me.get('role', '?')))}, {escape(str(me.get('organization', '?')))}); "
        f"saved to {escape(str(path))}",
        soft_wrap=True,
    )


@app.command()
def whoami(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show who the configured token belongs to."""
    with connect(ctx) as client:
        me = client.whoami()
        server = client.url
    if as_json:
        print_json(me)
        return
    from rich.markup import escape

    from axcenter.cli import render

    name, user_id, role, org = (
        escape(str(me.get(key, "?"))) for key in ("name", "id", "role", "organization")
    )
    render.out_console().print(
        f"[bold]{name}[/] ({user_id}), {role} in {org} at {escape(server)}", soft_wrap=True
    )


@app.command()
def cluster(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show nodes, which job, user and project holds each GPU, and queue totals."""
    with connect(ctx) as client:
        state = client.cluster()
    if as_json:
        print_json(state)
    else:
        from axcenter.cli import render

        render.out_console().print(render.cluster_view(state))


if __name__ == "__main__":  # python -m axcenter.cli.main
    app()
