"""``axc backup`` and ``axc restore``: the center's store to a file and back.

They open the store as ``axc up`` does (``--data-dir``, ``--database-url``, the
``AXC_*`` environment), not the API: whoever can read the data directory or reach the
database may back it up, while the center runs (a consistent snapshot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from axcenter.cli.common import new_app, print_error

__all__ = ["commands"]

DataDir = Annotated[
    Path | None, typer.Option(help="state directory (database, logs) [env AXC_DATA_DIR]")
]
DatabaseUrl = Annotated[str | None, typer.Option(help="SQLAlchemy URL [env AXC_DATABASE_URL]")]
DatabaseSchema = Annotated[
    str | None, typer.Option(help="PostgreSQL schema [env AXC_DATABASE_SCHEMA]")
]


def _settings(data_dir: Path | None, url: str | None, schema: str | None) -> Any:
    from axcenter.settings import Settings

    flags: dict[str, Any] = {"data_dir": data_dir, "database_url": url, "database_schema": schema}
    return Settings(**{k: v for k, v in flags.items() if v is not None})


def backup(
    file: Annotated[Path, typer.Argument(help="the backup file to write")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    database_schema: DatabaseSchema = None,
) -> None:
    """Back up the center's store to FILE, running or not.

    SQLite: a database file made by SQLite's online backup; PostgreSQL: pg_dump's custom
    format of the center's schema. Either is a consistent snapshot."""
    from axcenter.service import backup as service

    try:
        service.backup(_settings(data_dir, database_url, database_schema), file)
    except (service.BackupError, OSError) as exc:
        print_error(f"backup failed: {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"backed up to {file} ({file.stat().st_size} bytes)")


def restore(
    file: Annotated[Path, typer.Argument(help="a file written by `axc backup`")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    database_schema: DatabaseSchema = None,
) -> None:
    """Restore a backup into an empty store, for `axc up` to start on.

    The store is a new data directory, database or schema; start the center on it with
    `axc up` and the same options."""
    from axcenter.service import backup as service

    try:
        service.restore(_settings(data_dir, database_url, database_schema), file)
    except (service.BackupError, service.AnotherController, OSError) as exc:
        print_error(f"restore failed: {exc}")
        raise typer.Exit(1) from None
    typer.echo(f"restored {file}: start the center with `axc up` on the same store")


#: this module's commands, as ``axcenter.cli.main`` loads them
commands = new_app()
commands.command("backup")(backup)
commands.command("restore")(restore)
