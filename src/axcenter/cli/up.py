"""``axc up``: run a whole center in one process (API, control loop, engines)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from axcenter.cli.common import new_app

if TYPE_CHECKING:
    from axcenter.service.bootstrap import Credential
    from axcenter.service.center import Center
    from axcenter.settings import Settings

__all__ = ["commands", "up"]

#: how long a thread may hold the GIL while another waits for it (CPython's default is
#: 5 ms). The service's threads mostly wait on sockets and the database, and each wait
#: ends by taking the GIL back: while the control loop plans, the default makes every
#: such round trip of a submission wait up to 5 ms. Measured on PostgreSQL with jobs
#: running: 1 ms took sequential submissions from 376 to 416 jobs/s.
GIL_SWITCH_INTERVAL_S = 0.001
#: the most a request line and its headers may take before the server refuses them
H11_MAX_HEADER_BYTES = 64 * 1024
#: at a shutdown, requests still open after this long (pages' event streams, waits) are
#: cut: a stream would otherwise keep the server up until it ends by itself
SHUTDOWN_GRACE_S = 3


def up(
    data_dir: Annotated[
        Path | None, typer.Option(help="state directory (database, logs) [env AXC_DATA_DIR]")
    ] = None,
    host: Annotated[str | None, typer.Option(help="address to listen on [env AXC_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="port to listen on [env AXC_PORT]")] = None,
    gpus: Annotated[
        str | None,
        typer.Option(help="logical GPUs TYPE:GPUS[xNODES],... e.g. H100:8x4 [env AXC_LOCAL_GPUS]"),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL [env AXC_DATABASE_URL]")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="the center's configuration: node pools and engines [env AXC_CONFIG]"),
    ] = None,
    stop_jobs: Annotated[
        bool | None,
        typer.Option(
            "--stop-jobs/--keep-jobs",
            help="on exit, stop and requeue running jobs (default: keep them running, "
            "adopted at the next start) [env AXC_STOP_JOBS_ON_SHUTDOWN]",
        ),
    ] = None,
    identities: Annotated[
        str | None,
        typer.Option(
            help="who jobs run as: managed (an account per user, made by axcenter), mapped "
            "(accounts an operator maps) or single-user (this service's own, one user's "
            "jobs only) [env AXC_IDENTITIES]"
        ),
    ] = None,
    single_user: Annotated[
        str | None,
        typer.Option(help="single-user mode: the user whose jobs run [env AXC_SINGLE_USER]"),
    ] = None,
    unallocated_gpu_jobs: Annotated[
        str | None,
        typer.Option(
            help="GPU jobs of a project without an active allocation: free (run without "
            "charge, preemptible) or refuse [env AXC_UNALLOCATED_GPU_JOBS]"
        ),
    ] = None,
    demo: Annotated[bool, typer.Option(help="load a small demo center on first start")] = False,
    standby: Annotated[
        bool,
        typer.Option(
            help="wait for the center running on the same store and take over when it "
            "stops or dies (its jobs keep running and are adopted); serve reads meanwhile",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning")] = "info",
    operator_token: Annotated[
        bool,
        typer.Option(
            "--operator-token",
            help="print a new token for the center's operator and exit, without starting "
            "it (works while it runs; needs to read the data directory or the database)",
        ),
    ] = False,
) -> None:
    """Start the center: API, scheduler and engines in one process.

    Every start-up problem (the port taken, the configuration wrong, the database
    unreachable or controlled by another center) is reported before the center says it
    is up.
    """
    # Imported here: the server's dependencies would slow down every other `axc` command.
    import uvicorn

    from axcenter.api.app import create_app
    from axcenter.service.bootstrap import (
        DEMO_GPUS,
        ensure_operator,
        load_demo,
        reissue_operator_token,
    )
    from axcenter.service.center import AnotherController, Center
    from axcenter.settings import Settings

    flags: dict[str, Any] = {
        "data_dir": data_dir,
        "host": host,
        "port": port,
        "local_gpus": gpus,
        "database_url": database_url,
        "config": config,
        "stop_jobs_on_shutdown": stop_jobs,
        "identities": identities,
        "single_user": single_user,
        "unallocated_gpu_jobs": unallocated_gpu_jobs,
    }
    try:
        settings = Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValueError as exc:  # pydantic's, naming the setting at fault
        Console(stderr=True).print(f"axc up: {exc}")
        raise typer.Exit(2) from None
    if demo and settings.local_gpus is None:
        settings.local_gpus = DEMO_GPUS
    logging.basicConfig(  # --operator-token prints one line: no migration chatter
        level="WARNING" if operator_token else log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    console = Console(stderr=True)
    if operator_token:
        try:
            cred = reissue_operator_token(settings)
        except Exception as exc:  # any failure: one sentence, no traceback
            _fail(console, f"cannot open the center's database: {exc}", _DATABASE_HINT)
        typer.echo(f"{cred.user} ({cred.role}, {cred.organization}): {cred.token}")
        return
    sock = _listen(console, settings.host, settings.port)
    center: Center | None = None
    try:
        center = Center(settings)
        center.start(standby=standby)
    except (ValueError, AnotherController) as exc:  # the configuration, a second center
        sock.close()
        _fail(console, str(exc), "")
    except Exception as exc:  # as above
        sock.close()
        if center is not None:
            with contextlib.suppress(Exception):
                center.stop()
        _fail(console, f"the center could not start: {exc}", _DATABASE_HINT)
    fenced = False
    try:
        credentials = []
        url = f"http://{settings.host}:{settings.port}"
        if standby:
            console.print(
                f"[bold]axcenter[/] standby at [cyan]{url}[/]: serving reads; it takes over "
                "when the active center on this store stops"
            )
            center.on_active = lambda: console.print("standby: this center is now active")
        else:
            operator = ensure_operator(center.store)
            if operator is not None:
                credentials.append(operator)
            if demo:
                credentials += load_demo(center.store)
                center.control.policy_changed()  # the demo's grants and prices, now
            _announce(console, url, settings, center, credentials)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(center),
                host=settings.host,
                port=settings.port,
                log_level="warning",
                access_log=False,
                # idle kept-alive connections close; past this many connections the
                # server answers 503 instead of queueing (docs/security.md)
                timeout_keep_alive=settings.http_keep_alive_s,
                limit_concurrency=settings.http_max_connections,
                h11_max_incomplete_event_size=H11_MAX_HEADER_BYTES,
                # open pages' streams (service/live.py) and waits end at a shutdown
                timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
            )
        )
        # uvicorn re-raises the signal that stopped it once it has shut down; with the
        # default SIGTERM disposition that would kill us before the store is closed.
        signal.signal(signal.SIGTERM, lambda *_: None)

        def _fenced() -> None:  # another center controls the store now: stop serving
            nonlocal fenced
            fenced = True
            server.should_exit = True

        center.on_fenced = _fenced
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        server.run(sockets=[sock])
    finally:
        if fenced:
            console.print("stopping: another center took over; running jobs are its own now")
        elif settings.stop_jobs_on_shutdown:
            console.print("stopping: running jobs are stopped and requeued")
        else:
            console.print("stopping: running jobs keep running and are adopted at the next start")
        center.stop()
    if fenced:
        _fail(console, "another center took over this store: this one stopped", "")


_DATABASE_HINT = (
    "check --data-dir (AXC_DATA_DIR) and --database-url (AXC_DATABASE_URL); a second "
    "center on the same data directory or database is refused"
)


def _fail(console: Console, message: str, hint: str) -> NoReturn:
    console.print(f"[bold red]error:[/] {escape(message)}\n  {escape(hint)}", soft_wrap=True)
    raise typer.Exit(1)


def _listen(console: Console, host: str, port: int) -> socket.socket:
    """The API's listening socket, bound before anything starts: a taken port is
    reported before the center says it is up, with the setting that changes it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        _fail(console, f"cannot listen on {host}: {exc.strerror}", "set --host or AXC_HOST")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        taken = exc.errno == errno.EADDRINUSE
        _fail(
            console,
            f"cannot listen on {host}:{port}: "
            + ("the port is in use (another axcenter?)" if taken else str(exc.strerror)),
            "choose another port with --port or AXC_PORT"
            if taken
            else "choose another address with --host/--port or AXC_HOST/AXC_PORT",
        )
    sock.set_inheritable(True)
    return sock


def _announce(
    console: Console, url: str, settings: Settings, center: Center, creds: list[Credential]
) -> None:
    from rich.panel import Panel

    nodes = center.control.state.nodes.values()
    gpus = ", ".join(
        f"{n.name}: {n.gpu_count}x{n.gpu_type}{' (logical)' if n.logical else ''}" for n in nodes
    )
    console.print(
        Panel.fit(
            f"[bold]axcenter[/] is up at [cyan]{url}[/]\n"
            f"data: {settings.data_dir.resolve()}\nGPUs: {gpus}",
            title="axcenter",
        )
    )
    if creds:
        path = _write_tokens(settings.first_tokens_file, url, creds)
        console.print(
            f"[bold]tokens[/] of {', '.join(escape(c.user) for c in creds)}: written to "
            f"{escape(str(path))} (mode 0600, this account only); store them, then "
            "delete the file",
            soft_wrap=True,
        )


def _write_tokens(path: Path, url: str, creds: list[Credential]) -> Path:
    """The first-start tokens, in a file only this account reads (never in the log, which
    a supervisor or a job's neighbour may read): one shell ``export`` line to source."""
    lines = ["# axcenter: the tokens issued at first start; store them, then delete this file"]
    lines += [f"# {c.user} ({c.role}, {c.organization}): {c.token}" for c in creds]
    lines.append(f"export AXC_URL={url} AXC_TOKEN={creds[0].token}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(fd, 0o600)  # a file that existed keeps its mode otherwise
        out.write("\n".join(lines) + "\n")
    return path.resolve()


#: this module's command, as ``axcenter.cli.main`` loads it
commands = new_app()
commands.command("up")(up)
