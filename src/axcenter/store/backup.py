"""Backups of the store, and restores into an empty one.

SQLite: the online backup API (``sqlite3.Connection.backup``) copies a consistent
snapshot of the database page by page while the center keeps writing; the backup is a
SQLite file. PostgreSQL: ``pg_dump --format=custom`` of the center's schema (one
consistent snapshot: pg_dump reads in one repeatable-read transaction), restored with
``pg_restore`` (tables, then rows, then indexes, constraints and triggers, so the
ledger's append-only triggers do not refuse its own rows).

A restore goes into an empty store only (no table in the SQLite file, or in the
PostgreSQL schema): it never merges into, or overwrites, a center's data. It holds the
store's controller lock meanwhile, so no center starts on it half-restored. A backup
of a PostgreSQL schema restores into the same schema name of any database.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import inspect
from sqlalchemy.engine import make_url

from axcenter.store.db import Store

__all__ = ["BackupError", "backup", "restore"]

#: a SQLite file starts with this (the PostgreSQL custom format with ``PGDMP``)
_SQLITE_MAGIC = b"SQLite format 3\x00"
_PGDUMP_MAGIC = b"PGDMP"
#: pages copied per step of the online backup (the center's writers run between steps)
_PAGES_PER_STEP = 1024


class BackupError(Exception):
    """A backup or restore could not be made; the message says why in the operator's terms."""


def backup(store: Store, dest: Path) -> None:
    """Write a consistent backup of ``store`` to ``dest`` (replaced only once complete)."""
    if dest.exists() and dest.is_dir():
        raise BackupError(f"{dest} is a directory: name the backup file")
    partial = dest.with_name(f".{dest.name}.partial")
    try:
        # readable by its owner alone, as the store itself: it holds every tenant's data
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        os.chmod(partial, 0o600)  # whatever the file was
        if store.is_sqlite:
            _sqlite_backup(_sqlite_path(store), partial)
        else:
            _pg_dump(store, partial)
        with partial.open("rb") as f:
            os.fsync(f.fileno())
        partial.replace(dest)
    finally:
        partial.unlink(missing_ok=True)


def restore(store: Store, src: Path) -> None:
    """Restore the backup ``src`` into ``store``, which must be empty (no tables)."""
    if not src.is_file():
        raise BackupError(f"no backup file at {src}")
    with src.open("rb") as f:
        head = f.read(16)
    kind = "sqlite" if head.startswith(_SQLITE_MAGIC) else "postgresql"
    if kind == "postgresql" and not head.startswith(_PGDUMP_MAGIC):
        raise BackupError(f"{src} is not an axcenter backup (neither SQLite nor pg_dump's)")
    if (kind == "sqlite") != store.is_sqlite:
        raise BackupError(
            f"{src} is a backup of a {kind} store; this center's store is "
            f"{'SQLite' if store.is_sqlite else 'PostgreSQL'}"
        )
    store.claim_control()  # AnotherController if a center runs on it
    try:
        tables = inspect(store.engine).get_table_names(schema=store.schema)
        if tables:
            raise BackupError(
                f"the target store already holds {len(tables)} tables: a backup is restored "
                "into an empty one only (a new data directory, database or schema)"
            )
        store.engine.dispose()  # nothing of ours holds the file or the schema meanwhile
        if store.is_sqlite:
            _sqlite_restore(src, _sqlite_path(store))
        else:
            _pg_restore(store, src)
    finally:
        store.release_control()


# -- SQLite ---------------------------------------------------------------------------


def _sqlite_path(store: Store) -> Path:
    database = make_url(store.url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory database has nothing to back up")
    return Path(database)


def _sqlite_backup(path: Path, dest: Path) -> None:
    if not path.exists():
        raise BackupError(f"no database at {path}")
    source = sqlite3.connect(path, timeout=30)  # reads only (a WAL reader needs its -shm)
    target = sqlite3.connect(dest)
    try:
        source.backup(target, pages=_PAGES_PER_STEP)
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    finally:
        target.close()
        source.close()


def _sqlite_restore(src: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        if not source.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
        ).fetchone():
            raise BackupError(f"{src} is a SQLite file but not an axcenter backup")
        target = sqlite3.connect(path)
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode=WAL")
        finally:
            target.close()
    finally:
        source.close()


# -- PostgreSQL -----------------------------------------------------------------------


def _pg_env(store: Store) -> tuple[str, dict[str, str]]:
    """libpq's connection string for the store (no password in it) and the environment
    that carries the password, for pg_dump and pg_restore."""
    url = make_url(store.url)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    parts = {
        "host": url.host,
        "port": str(url.port) if url.port else None,
        "user": url.username,
        "dbname": url.database,
    }
    dsn = " ".join(f"{k}={v}" for k, v in parts.items() if v)
    return dsn, env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed (PostgreSQL's client tools)")
    return found


def _pg_dump(store: Store, dest: Path) -> None:
    dsn, env = _pg_env(store)
    done = subprocess.run(
        [
            _tool("pg_dump"),
            "--format=custom",
            f"--schema={store.schema or 'public'}",
            "--no-owner",
            f"--file={dest}",
            f"--dbname={dsn}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()}")


def _pg_restore(store: Store, src: Path) -> None:
    dsn, env = _pg_env(store)
    schema = store.schema or "public"
    listed = subprocess.run(
        [_tool("pg_restore"), "--list", str(src)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        raise BackupError(f"{src} is not a pg_dump archive: {listed.stderr.strip()}")
    if f" TABLE {schema} alembic_version " not in listed.stdout:
        raise BackupError(
            f"{src} holds no axcenter schema named {schema}: restore it with the schema it "
            "was taken from (AXC_DATABASE_SCHEMA)"
        )
    done = subprocess.run(
        [
            _tool("pg_restore"),
            "--clean",
            "--if-exists",  # the schema may exist (empty): it is made anew
            "--no-owner",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={dsn}",
            str(src),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()}")
