"""What every ``axc`` command shares, kept light: the API client of this invocation, JSON
output, error lines, times in the center's zone and ``axc wait``'s exit status.

Times are shown in the center's time zone, with the zone's name (``2026-12-07 21:05
KST``): the server names its zone in every answer to a read (``X-AXC-Time-Zone``,
``api/guard.py``), so no command spends a request to learn it (``when``).

Nothing here imports Rich (or ``http.client``, which ``axcenter.client`` loads when a
client is made), so a command that fails on bad input, or prints only an id, starts
without them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from typer.core import TyperArgument

from axcenter.cli.durations import format_duration
from axcenter.client.http import TERMINAL_STATES
from axcenter.model.jobs import JobState

if TYPE_CHECKING:
    from axcenter.client.http import Client

T = TypeVar("T")

__all__ = [
    "EXIT_TIMEOUT",
    "center_zone",
    "connect",
    "count",
    "exit_code_for",
    "new_app",
    "option_parser",
    "plain_help",
    "print_error",
    "print_json",
    "shifted",
    "wait_and_exit",
    "when",
]

ClientOpener = Callable[[], "Client"]


#: the client of this invocation, whose answers name the center's time zone
_client: Client | None = None


def connect(ctx: typer.Context) -> Client:
    """The API client for this invocation (see ``axcenter.cli.main.client_factory``)."""
    global _client  # noqa: PLW0603 (one invocation, one client)
    opener: ClientOpener | None = ctx.obj
    if opener is None:
        raise RuntimeError("axc commands must run under the axc app callback")
    _client = opener()
    return _client


def center_zone() -> tzinfo:
    """The center's time zone as its latest answer named it; UTC before any answer, or
    for a name this machine's zone database does not know."""
    name = _client.time_zone if _client is not None else None
    if not name or name == "UTC":
        return UTC
    from zoneinfo import ZoneInfo  # noqa: PLC0415 (only commands that print times)

    try:
        return ZoneInfo(name)
    except (ValueError, OSError):
        return UTC


def when(moment: datetime | None, *, seconds: bool = False) -> str:
    """``moment`` in the center's zone with the zone's name: ``2026-12-07 21:05 KST``
    (``-`` for none)."""
    if moment is None:
        return "-"
    local = moment.astimezone(center_zone())
    return f"{local:%Y-%m-%d %H:%M:%S %Z}" if seconds else f"{local:%Y-%m-%d %H:%M %Z}"


def option_parser(parse: Callable[[str], T]) -> Callable[[str], T]:
    """``parse`` as a Typer option parser: its ``ValueError`` becomes the usage error's
    message (``Invalid value for '--time': invalid duration 'soon': use ...``), as every
    Typer version shows it."""

    def parser(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parser


def shifted(moment: datetime, seconds: float, option: str) -> datetime:
    """``moment`` moved by ``seconds``, or a usage error naming ``option`` when that
    leaves the calendar (years 1 to 9999)."""
    try:
        return moment + timedelta(seconds=seconds)
    except OverflowError:
        years = f"{abs(seconds) / (365.25 * 86400):,.0f} years"
        span = (
            f"{years} after {moment:%Y-%m-%d} is after the year 9999"
            if seconds > 0
            else f"{years} before {moment:%Y-%m-%d} is before the year 1"
        )
        raise typer.BadParameter(span, param_hint=f"'{option}'") from None


def count(n: int, noun: str) -> str:
    """``1 job``, ``2 jobs``: a number and its noun (plural by an ``s``)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def new_app(**settings: Any) -> typer.Typer:
    """A Typer app (a command group, or a module's commands) as ``axc`` loads them: no
    completion options of its own (``axc --install-completion`` covers all) and help
    printed as written: Rich markup would eat ``[env AXC_PORT]`` or ``TYPE[xNODES]``, and
    Rich's help formatter costs every ``--help`` a tenth of a second to import."""
    return typer.Typer(**{"add_completion": False, "rich_markup_mode": None, **settings})


class _PlainArgument(TyperArgument):
    """An argument named in help as written: ``JOB``, ``[JOB]``, ``JOB...``; Typer's
    own wraps a required one in braces in the usage line (``{JOB}``)."""

    def make_metavar(self, ctx: Any, *, usage: bool = False) -> str:
        var = self.metavar or (self.name or "").upper()
        if self.nargs != 1 and "..." not in var:
            var += "..."
        if usage and not self.required and not var.startswith("["):
            var = f"[{var}]"
        return var


def plain_help(command: Any) -> Any:
    """Name every placeholder of ``command`` (and of its sub-commands) as Click and
    Slurm's manuals do: ``--user USER``, ``--nodes NODES``, ``--state [a|b]``, ``JOB``.
    Typer's own are ``<str>``, ``<int range>``, ``<a|b>`` and ``{JOB}``, which read as
    markup. Returns ``command``."""
    for param in getattr(command, "params", ()):
        if isinstance(param, TyperArgument):
            param.__class__ = _PlainArgument
        elif param.metavar is None and not getattr(param, "is_flag", False):
            choices = getattr(param.type, "choices", None)
            if choices:
                param.metavar = f"[{'|'.join(str(c) for c in choices)}]"
            else:
                param.metavar = (param.name or "value").upper()
    for sub in getattr(command, "commands", {}).values():
        plain_help(sub)
    return command


def print_json(value: Any) -> None:
    """Machine-readable output: plain JSON on stdout, no Rich markup or wrapping."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def print_error(message: str) -> None:
    """``error: message`` on stderr, ``error:`` in red on a terminal, never re-wrapped
    (scripts grep for it)."""
    typer.echo(f"{typer.style('error:', fg='red', bold=True)} {message}", err=True)


#: ``axc wait`` exit status when the job is still not finished at the timeout (as timeout(1)).
EXIT_TIMEOUT = 124


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


def wait_and_exit(client: Client, job_id: str, timeout: float | None) -> NoReturn:
    job = client.wait_job(job_id, timeout)
    code = exit_code_for(job)
    color = "green" if code == 0 else "yellow" if code == EXIT_TIMEOUT else "red"
    typer.secho(_describe_end(job, timeout), fg=color, err=True)
    raise typer.Exit(code)
