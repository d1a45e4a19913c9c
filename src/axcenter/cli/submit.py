"""``axc submit``: a job, an array or a batch script, with Slurm's options and formats.

Three ways to say what runs:

* ``axc submit [OPTIONS] -- CMD ARGS...``: the command, as ``srun`` takes it;
* ``axc submit [OPTIONS] script.sh ARGS...``: a batch script whose ``#SBATCH`` and
  ``#AXC`` directives are read as options (``axcenter.cli.batch``; the command line wins);
  its content is shipped with the job, as sbatch does: the job runs what was submitted,
  through the interpreter of its ``#!`` line, whatever becomes of the file, and its
  account needs no access to it (``axc show --script JOB`` prints it);
* ``axc submit --wrap 'CMD'``: a shell command line, as ``sbatch --wrap``.

Options keep Slurm's spellings and formats where Slurm has them (``--time``/``-t`` with
``90`` meaning 90 minutes, ``--gres=gpu:TYPE:N``, ``--array=1,3,5-9:2``, ``--output`` and
``--error`` patterns, ``-J``, ``-A``, ``-D``, ``-W``); ``--gpus`` is per node, as
axcenter always had it (Slurm's ``--gpus-per-node``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand

from axcenter.cli import batch
from axcenter.cli.common import connect, new_app, option_parser, print_error, wait_and_exit
from axcenter.cli.durations import (
    DURATION_FORMS,
    parse_gpus,
    parse_memory,
    parse_time_limit,
)
from axcenter.client.http import ApiError
from axcenter.model.arrays import parse_array
from axcenter.model.dependencies import DEPENDENCY_FORMS, parse_dependency
from axcenter.model.logpath import LOG_SYMBOLS, check_log_pattern

__all__ = ["SubmitCommand", "commands", "submit"]

#: ``--output`` values that are not file name patterns
_DISCARD = {"discard", "/dev/null"}
_LOG = "log"
#: options whose several values add up instead of the command line replacing them
_MERGED = {"env", "export"}


class SubmitCommand(TyperCommand):
    """Notes whether the command came after ``--``: only a command given without it may
    be a batch script whose directives are read (``-- script.sh`` runs it as is, as
    ``srun script.sh`` would)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # Typer's own Click
        given = list(args)
        rest = super().parse_args(ctx, args)
        command = ctx.params.get("command") or []
        if "--" in given:
            after = given[given.index("--") + 1 :]
            ctx.meta["axc.after_dashes"] = bool(command) and after == list(command)
        return rest


def _time(text: str) -> int:
    seconds = parse_time_limit(text)
    if seconds <= 0:
        raise ValueError(f"the time limit must be more than zero: use {DURATION_FORMS}")
    return seconds


def _array(text: str) -> str:
    parse_array(text)  # refused here, in the user's terms, before any request
    return text.strip()


def _dependency(text: str) -> str:
    parse_dependency(text)  # refused here, in the user's terms, before any request
    return text.strip()


def _pattern(text: str) -> str:
    if text.strip() in _DISCARD or text.strip() == _LOG:
        return text.strip()
    try:
        check_log_pattern(text)
    except ValueError as exc:
        raise ValueError(f"{exc} (patterns may use {LOG_SYMBOLS})") from None
    return text


def _env_pairs(items: list[str], option: str = "--env") -> dict[str, str]:
    env: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key or key != key.strip():
            raise typer.BadParameter(f"{item!r}: use KEY=VALUE or KEY", param_hint=f"'{option}'")
        if not sep:  # KEY alone passes this shell's value through, like `docker run -e`
            if key not in os.environ:
                raise typer.BadParameter(
                    f"{key} is not set here; use {key}=VALUE", param_hint=f"'{option}'"
                )
            value = os.environ[key]
        env[key] = value
    return env


def _export(items: list[str]) -> tuple[dict[str, str], list[str]]:
    """Slurm's ``--export=ALL|NONE|[ALL,]VAR[=VALUE],...``: the variables it names, and
    a note for ``ALL`` (axcenter passes only the variables named)."""
    pairs: list[str] = []
    notes: list[str] = []
    for item in items:
        for word in item.split(","):
            if word.upper() == "ALL":
                notes.append(
                    "--export=ALL: axcenter passes only the variables you name "
                    "(--export=VAR or --env VAR), not your whole environment"
                )
            elif word and word.upper() != "NONE":
                pairs.append(word)
    return _env_pairs(pairs, "--export"), notes


def submit(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SCRIPT [ARGS] | -- CMD",
            help="A batch script (its #SBATCH/#AXC lines are read) or, after `--`, the "
            "command to run.",
            show_default=False,
        ),
    ] = None,
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", "--account", "-A", help="Project name or prj_ id."),
    ] = None,
    gpus: Annotated[
        str | None,
        typer.Option(
            "--gpus",
            "-g",
            "--gpus-per-node",
            metavar="[TYPE:]N",
            help="GPUs per node, optionally of one type (H100:2). Default 1.",
            show_default=False,
        ),
    ] = None,
    gres: Annotated[
        str | None,
        typer.Option("--gres", metavar="gpu[:TYPE][:N]", help="Slurm's form of --gpus."),
    ] = None,
    gpus_total: Annotated[
        int | None,
        typer.Option("--gpus-total", min=0, hidden=True, help="#SBATCH --gpus: all nodes."),
    ] = None,
    gpu_type: Annotated[
        list[str] | None,
        typer.Option(
            "--gpu-type",
            help="Accepted GPU type (repeatable, or comma-separated); default: any.",
            show_default=False,
        ),
    ] = None,
    nodes: Annotated[int, typer.Option("--nodes", "-N", min=1, help="Nodes (gang).")] = 1,
    cpus: Annotated[
        int | None,
        typer.Option("--cpus", "-c", "--cpus-per-task", min=1, help="CPUs per node."),
    ] = None,
    mem: Annotated[
        int | None,
        typer.Option(
            "--mem",
            parser=option_parser(parse_memory),
            metavar="SIZE",
            help="Memory per node: 16G, 512M, MB.",
        ),
    ] = None,
    time_limit: Annotated[
        int | None,
        typer.Option(
            "--time",
            "-t",
            "--time-limit",
            parser=option_parser(_time),
            metavar="TIME",
            help=f"Wall-clock limit: {DURATION_FORMS}.",
        ),
    ] = None,
    priority: Annotated[int, typer.Option("--priority", help="Higher runs first.")] = 0,
    name: Annotated[
        str | None, typer.Option("--name", "-n", "--job-name", "-J", help="A label.")
    ] = None,
    workdir: Annotated[
        str | None,
        typer.Option(
            "--workdir",
            "-w",
            "--chdir",
            "-D",
            help="Working directory on the center (relative: to the current one); "
            "default: your home there.",
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            metavar="KEY=VALUE",
            help="Environment variable (repeatable); KEY alone copies it from here.",
            show_default=False,
        ),
    ] = None,
    export: Annotated[
        list[str] | None,
        typer.Option(
            "--export",
            metavar="VAR[=VALUE],...",
            help="Slurm's form of --env (ALL and NONE: only the variables named).",
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
        str,
        typer.Option(
            "--output",
            "-o",
            parser=option_parser(_pattern),
            metavar="PATTERN",
            help="Where stdout (and stderr, unless --error) goes: the center's log of the "
            f"job (log, read by `axc logs`), nowhere (discard or /dev/null), or a file "
            f"pattern relative to the working directory, with {LOG_SYMBOLS}.",
        ),
    ] = _LOG,
    error: Annotated[
        str | None,
        typer.Option(
            "--error",
            "-e",
            parser=option_parser(_pattern),
            metavar="PATTERN",
            help="Where stderr goes, as --output; default: with stdout.",
        ),
    ] = None,
    wait_: Annotated[
        bool, typer.Option("--wait", "-W", help="Wait for the job and exit like `axc wait`.")
    ] = False,
    hold: Annotated[
        bool,
        typer.Option("--hold", "-H", help="Submit held: it waits until `axc release JOB`."),
    ] = False,
    exclusive: Annotated[
        bool,
        typer.Option(
            "--exclusive",
            help="Whole nodes: every GPU, CPU and MB of each node (their size must be one).",
        ),
    ] = False,
    dependency: Annotated[
        str | None,
        typer.Option(
            "--dependency",
            "-d",
            parser=option_parser(_dependency),
            metavar="DEP",
            help=f"Start only after other jobs: {DEPENDENCY_FORMS}.",
        ),
    ] = None,
    array: Annotated[
        str | None,
        typer.Option(
            "--array",
            "-a",
            parser=option_parser(_array),
            metavar="INDICES",
            help="One task per index (AXC_ARRAY_INDEX): 0-15, 0-15:4, 1,3,5; prints the array id.",
        ),
    ] = None,
    wrap: Annotated[
        str | None,
        typer.Option("--wrap", metavar="'CMD'", help="Run this shell command line (sh -c)."),
    ] = None,
) -> None:
    """Submit a job, an array or a batch script and print its id (so
    `JOB=$(axc submit ...)` works)."""
    params = dict(ctx.params)
    words = list(command or [])
    if wrap is not None:
        if words:
            _usage("give a command or --wrap, not both")
        words = ["/bin/sh", "-c", wrap]
    elif not ctx.meta.get("axc.after_dashes") and words and os.path.isfile(words[0]):
        params, words = _from_script(ctx, params, words)
    if not words:
        _usage(
            "no command given: put the command after `--`, e.g. "
            "`axc submit --gpus 1 -- python train.py`, or name a batch script"
        )
    _send(ctx, params, words)


def _usage(message: str) -> NoReturn:
    print_error(message)
    raise typer.Exit(2)


def _from_script(
    ctx: typer.Context, params: dict[str, Any], words: list[str]
) -> tuple[dict[str, Any], list[str]]:
    """Read a batch script's directives into ``params`` (the command line's own options
    win) and the command that runs it."""
    path = Path(words[0])
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        _usage(f"cannot read batch script {path}: {exc.strerror}")
    except UnicodeDecodeError:
        _usage(f"{path}: a batch script is text (UTF-8); this file is not")
    first = text.splitlines()[0] if text else ""
    if not first.startswith("#!") or not first[2:].strip():
        _usage(
            f"{path}: the first line of a batch script must be #! and its interpreter, "
            "e.g. #!/bin/bash (as sbatch asks); to run it as a command, put it after `--`"
        )
    try:
        translation = batch.translate(batch.read_directives(text))
    except ValueError as exc:
        _usage(f"{path}: {exc}")
    if translation.refused:
        _usage(
            f"{path}: cannot run this script as it asks:\n  "
            + "\n  ".join(translation.refused)
            + "\n(remove or change these lines, or give other options on the command line)"
        )
    for note in translation.ignored:
        typer.secho(f"{path}: {note}", fg="yellow", err=True)
    command = ctx.command
    from_script: dict[str, Any] = {}
    merged: dict[str, list[str]] = {}
    for directive, args in translation.args:
        try:
            sub = command.make_context(ctx.info_name, [*args, "--", "true"], parent=ctx.parent)
        except typer.TyperException as exc:
            message = getattr(exc, "format_message", exc.__str__)()
            _usage(f"{path}: {directive.where}: {message}")
        for key, value in sub.params.items():
            if not _given(sub, key):
                continue
            if key in _MERGED:
                merged.setdefault(key, []).extend(value)
            else:
                from_script[key] = value  # a later line wins, as in sbatch
    out = dict(params)
    for key, value in from_script.items():
        if not _given(ctx, key):
            out[key] = value
    for key, values in merged.items():
        out[key] = [*values, *(params.get(key) or [])]  # the command line's come last
    out["script"] = text
    return out, [str(path.resolve()), *words[1:]]


def _given(ctx: Any, key: str) -> bool:
    """Whether option ``key`` was written on this context's command line."""
    source = ctx.get_parameter_source(key)
    return source is not None and source.name == "COMMANDLINE"


def _gpu_request(params: dict[str, Any]) -> tuple[int, list[str]]:
    """GPUs per node and accepted types from --gpus/--gres/--gpus-total/--gpu-type."""
    types = [t.strip() for item in params.get("gpu_type") or [] for t in item.split(",")]
    types = [t for t in types if t]
    per_node = 1
    for option, key, gres in (("--gres", "gres", True), ("--gpus", "gpus", False)):
        if params.get(key) is None:
            continue
        try:
            gpu_type, per_node = parse_gpus(params[key], gres=gres)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=f"'{option}'") from None
        if gpu_type:
            types = [gpu_type]
    total = params.get("gpus_total")
    if total is not None:
        nodes = params.get("nodes") or 1
        if total % nodes:
            raise typer.BadParameter(
                f"{total} GPUs do not divide evenly over {nodes} nodes; "
                "use --gpus-per-node (GPUs on each node)",
                param_hint="'--gpus'",
            )
        per_node = total // nodes
    return per_node, types


def _send(ctx: typer.Context, params: dict[str, Any], command: list[str]) -> None:
    gpus, gpu_types = _gpu_request(params)
    env, notes = _export(params.get("export") or [])
    env.update(_env_pairs(params.get("env") or []))
    for note in notes:
        typer.secho(note, fg="yellow", err=True)
    output = params["output"]
    fields: dict[str, Any] = {
        "project": params.get("project"),
        "name": params.get("name"),
        "command": command,
        # none given: the job's user's home on the center (this may be another machine)
        "workdir": os.path.abspath(params["workdir"]) if params.get("workdir") else None,
        "env": env,
        "gpus_per_node": gpus,
        "nodes": params.get("nodes"),
        "cpus_per_node": params.get("cpus"),
        "memory_mb_per_node": params.get("mem"),
        "time_limit_s": params.get("time_limit"),
        "priority": params.get("priority"),
        "gpu_types": gpu_types,
        "output": "discard" if output in _DISCARD else "log",
        "output_path": None if output in _DISCARD or output == _LOG else output,
        "error_path": params.get("error"),
        "held": params.get("hold") or None,
        "exclusive": params.get("exclusive") or None,
        "dependency": params.get("dependency"),
        "idempotency_key": params.get("idempotency_key"),
        "script": params.get("script"),
    }
    if fields["error_path"] in _DISCARD or fields["error_path"] == _LOG:
        _usage("--error takes a file name pattern; stderr goes with stdout without it")
    try:
        _submit(ctx, fields, params)
    except ApiError as exc:
        if exc.status_code != 422:
            raise
        raise ApiError(exc.status_code, _in_option_terms(exc.detail)) from None


#: the API's job fields as ``axc submit`` spells them, for the server's refusals
_OPTIONS = {
    "project": "--project",
    "name": "--name",
    "command": "the command",
    "workdir": "--workdir",
    "env": "--env",
    "gpus_per_node": "--gpus",
    "nodes": "--nodes",
    "cpus_per_node": "--cpus",
    "memory_mb_per_node": "--mem",
    "time_limit_s": "--time",
    "priority": "--priority",
    "gpu_types": "--gpu-type",
    "output_path": "--output",
    "error_path": "--error",
    "dependency": "--dependency",
    "exclusive": "--exclusive",
    "indices": "--array",
    "idempotency_key": "--idempotency-key",
    "script": "the batch script",
}


def _in_option_terms(detail: str) -> str:
    """``gpus_per_node: 5 GPUs ...`` as ``--gpus (gpus_per_node): 5 GPUs ...``: the option
    the user wrote, then the API's field (what scripts and the API's users know)."""
    field, sep, rest = detail.partition(": ")
    option = _OPTIONS.get(field)
    return f"{option} ({field}): {rest}" if sep and option else detail


def _submit(ctx: typer.Context, fields: dict[str, Any], params: dict[str, Any]) -> None:
    array, wait_ = params.get("array"), params.get("wait_")
    if wait_ and params.get("hold"):
        _usage("--wait and --hold: a held job would never end; release it first")
    with connect(ctx) as client:
        if array is not None:
            if wait_:
                _usage("--wait takes one job; wait for the array with `axc wait ARRAY_ID`")
            job = client.submit_array(indices=array, **fields)
        else:
            job = client.submit_job(**fields)
        typer.echo(job.get("array_id") or job["id"])
        if wait_:
            sys.stdout.flush()
            wait_and_exit(client, str(job["id"]), None)


#: this module's command, as ``axcenter.cli.main`` loads it
commands = new_app()
commands.command("submit", cls=SubmitCommand, context_settings={"allow_interspersed_args": False})(
    submit
)
