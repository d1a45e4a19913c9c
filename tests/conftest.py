"""Shared fixtures: real databases (a SQLite file and PostgreSQL), a real center.

PostgreSQL: the server on 127.0.0.1:5432 (trust auth, database ``test``); each test run
gets a fresh schema, dropped at the end. Set ``AXC_TEST_PG_URL`` to use another server.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from axcenter.store.db import Store

PG_URL = os.environ.get("AXC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    """(database URL, schema) for each backend; PostgreSQL gets a fresh schema per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'axcenter.db'}", None
        return
    schema = f"axc_test_{secrets.token_hex(6)}"
    try:
        conn = psycopg.connect(_pg_dsn(PG_URL), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL}: {exc}")
    with conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield PG_URL, schema
    with psycopg.connect(_pg_dsn(PG_URL), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def store(db: tuple[str, str | None]) -> Iterator[Store]:
    """A migrated, empty store on each backend."""
    url, schema = db
    s = Store(url, schema)
    s.migrate()
    yield s
    s.dispose()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[object]:
    """A real Slurm cluster, started by scripts/slurm (tests/slurm/cluster.py)."""
    from tests.slurm.cluster import start_cluster

    yield from start_cluster()


@pytest.fixture(scope="session")
def slurm_account(slurm_cluster: object) -> Iterator[object]:
    """A real unix account the Slurm tests' jobs run as (never root)."""
    from tests.slurm.cluster import make_account

    yield from make_account(slurm_cluster)  # type: ignore[arg-type]


@pytest.fixture
def slurm_shared(slurm_account: object) -> Iterator[object]:
    """A directory the Slurm jobs' account reaches, as a site's shared file system."""
    from tests.slurm.cluster import shared_dir

    yield from shared_dir(slurm_account)  # type: ignore[arg-type]
