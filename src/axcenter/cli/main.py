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
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from axcenter import __version__
from axcenter.cli import (
    alloc,
    export,
    jobs,
    orgs,
    policy,
    prices,
    programs,
    projects,
    render,
    reports,
    users,
)
from axcenter.cli.up import up
from axcenter.client import config
from axcenter.client.http import ApiError, Client

__all__ = ["ClientFactory", "app", "client_factory", "default_client_factory"]

ClientFactory = Callable[[config.Config], Client]


def default_client_factory(cfg: config.Config) -> Client:
    """A real HTTP client for ``cfg``."""
    return Client(cfg.url, cfg.token)


#: How every command makes its client. Replace it to inject e.g. an ``httpx.MockTransport``:
#: ``main.client_factory = lambda cfg: Client(cfg.url, cfg.token, transport=mock)``.
client_factory: ClientFactory = default_client_factory

#: Exit status for problems found locally before any request (bad input, no config).
EXIT_USAGE = 2


def _api_message(exc: ApiError) -> str:
    if exc.status_code == 401:
        return f"{exc.detail} (run `axc login` or set {config.ENV_TOKEN})"
    return exc.detail


#: sub-apps imported only when named: ``axc sim`` pulls in the scheduler and the
#: simulator, which no other command needs (``axc submit`` starts twice as fast without)
_LAZY_APPS = {"sim": "axcenter.cli.sim"}


class _AxcGroup(TyperGroup):
    """Turns the errors users are expected to meet into one-line messages and exit codes,
    and loads the sub-apps of ``_LAZY_APPS`` when they are used (Click's lazy group)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *_LAZY_APPS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        module = _LAZY_APPS.get(cmd_name)
        if module is None:
            return super().get_command(ctx, cmd_name)
        command = typer.main.get_command(importlib.import_module(module).app)
        command.name = cmd_name
        return command

    def invoke(self, ctx: Any) -> Any:  # ``ctx`` is Click's Context, private in Typer
        try:
            return super().invoke(ctx)
        except ApiError as exc:
            render.print_error(_api_message(exc))
            raise typer.Exit(1) from None
        except config.ConfigError as exc:
            render.print_error(str(exc))
            raise typer.Exit(EXIT_USAGE) from None


app = typer.Typer(
    cls=_AxcGroup,
    name="axc",
    help="axcenter: submit and follow jobs on the shared GPU cluster.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals would include the token
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
    with jobs.connect(ctx) as client:
        me = client.whoami()
        server = client.url
    if as_json:
        jobs.print_json(me)
        return
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
    with jobs.connect(ctx) as client:
        state = client.cluster()
    if as_json:
        jobs.print_json(state)
    else:
        render.out_console().print(render.cluster_view(state))


app.command("submit", context_settings={"allow_interspersed_args": False})(jobs.submit)
app.command("jobs")(jobs.list_jobs)
app.command("show")(jobs.show)
app.command("logs")(jobs.logs)
app.command("cancel")(jobs.cancel)
app.command("checkpoint")(jobs.checkpoint)
app.command("wait")(jobs.wait)
app.command("up")(up)
app.add_typer(policy.quota_app, name="quota")
app.add_typer(policy.cohort_app, name="cohort")
app.add_typer(projects.app, name="project", help="Projects: members, allocations, limits.")
app.add_typer(policy.reservation_app, name="reservation")
app.add_typer(export.app, name="export")
app.add_typer(reports.app, name="report")
app.add_typer(programs.app, name="program")
app.add_typer(orgs.app, name="org")
app.add_typer(users.app, name="user")
app.add_typer(alloc.app, name="alloc")
app.add_typer(prices.app, name="price")
