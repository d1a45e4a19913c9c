"""``axc backup`` of a running center and ``axc restore`` into an empty store: the
restored center's every table (jobs, events, ledger, balances, accounts) equals the
original's, and a fresh ``axc up`` on it serves the same jobs and charges. Both stores."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from axcenter.store.db import Store
from axcenter.store.orm import Base
from tests.conftest import PG_URL, _pg_dsn
from tests.e2e.conftest import Service, stop_supervisors

PROJECT = "hanbit-adas"  # from the demo data


@pytest.fixture
def fresh_store(db: tuple[str, str | None], tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """An empty store of the same kind: a new SQLite file, or a new PostgreSQL database
    (a restore keeps the schema's name)."""
    _, schema = db
    if schema is None:
        yield f"sqlite:///{tmp_path / 'restored' / 'axcenter.db'}", None
        return
    name = f"axc_restore_{secrets.token_hex(4)}"
    with psycopg.connect(_pg_dsn(PG_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_URL.rsplit("/", 1)[0] + f"/{name}", schema
    with psycopg.connect(_pg_dsn(PG_URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def _tables(url: str, schema: str | None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of ours, in primary-key order."""
    store = Store(url, schema)
    try:
        with store.read() as session:
            return {
                table.name: [
                    tuple(row)
                    for row in session.execute(
                        select(table).order_by(*table.primary_key.columns)
                    ).all()
                ]
                for table in Base.metadata.sorted_tables
            }
    finally:
        store.dispose()


def test_backup_restores_into_a_fresh_center_with_equal_ledger_and_jobs(
    service: Service,
    db: tuple[str, str | None],
    fresh_store: tuple[str, str | None],
    tmp_path: Path,
) -> None:
    commands = [["true"], ["sh", "-c", "sleep 0.3; exit 3"], ["sleep", "0.5"]]
    with service.api() as api:
        ids = [
            api.post("/jobs", json={"project": PROJECT, "command": c, "gpus_per_node": 1}).json()[
                "id"
            ]
            for c in commands
        ]
        jobs = [api.get(f"/jobs/{i}/wait", params={"timeout": 30}).json() for i in ids]
        charges = [api.get(f"/jobs/{i}/charges").json() for i in ids]
    assert [j["state"] for j in jobs] == ["succeeded", "failed", "succeeded"]
    assert any(c["items"] for c in charges)  # there is money to compare

    backup = tmp_path / "center.backup"
    done = service.axc("backup", str(backup), "--data-dir", str(service.data_dir), check=True)
    assert "backed up" in done.stdout
    assert backup.stat().st_mode & 0o077 == 0  # its owner's alone: it holds every tenant's data
    service.stop()
    original = _tables(*db)
    assert original["ledger"] and original["jobs"]

    url, schema = fresh_store
    env = {**service.env, "AXC_DATABASE_URL": url}
    restored_dir = tmp_path / "restored-data"
    args = ["restore", str(backup), "--data-dir", str(restored_dir)]
    done = Service(data_dir=restored_dir, env=env, gpus=service.gpus).axc(*args, check=True)
    assert _tables(url, schema) == original

    # a second restore into what is no longer empty is refused, and changes nothing
    again = Service(data_dir=restored_dir, env=env, gpus=service.gpus).axc(*args)
    assert again.returncode == 1
    assert "empty" in again.stderr
    assert _tables(url, schema) == original

    fresh = Service(data_dir=restored_dir, env=env, gpus=service.gpus, token=service.token)
    fresh.start()
    try:
        with fresh.api() as api:
            assert [api.get(f"/jobs/{i}").json()["state"] for i in ids] == [
                j["state"] for j in jobs
            ]
            assert [api.get(f"/jobs/{i}/charges").json() for i in ids] == charges
    finally:
        fresh.stop()
        stop_supervisors(restored_dir)


def test_restore_refuses_a_file_that_is_no_backup(service: Service, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a backup")
    done = service.axc("restore", str(bogus), "--data-dir", str(tmp_path / "other"))
    assert done.returncode == 1
    assert "not an axcenter backup" in done.stderr
