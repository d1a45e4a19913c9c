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

# Jobs run as unix accounts of their own (docs/security.md). This test run's accounts and
# groups have a name prefix of their own, homes in a directory of their own (reachable by
# those accounts, unlike pytest's 0700 temporary directories), and are removed at the end.
TEST_PREFIX = os.environ.setdefault("AXC_UNIX_PREFIX", f"t{secrets.token_hex(2)}-")
os.environ.setdefault("AXC_UID_RANGE", "200000-299999")
TEST_HOMES = Path(os.environ.setdefault("AXC_HOME_ROOT", f"/tmp/axc-homes-{TEST_PREFIX}"))


def home_of(user: str) -> Path:
    """The home of axcenter user ``user``'s unix account (made at its first submission):
    where its jobs may write, and a test may look."""
    import pwd

    return Path(pwd.getpwnam(f"{TEST_PREFIX}{user}").pw_dir)


@pytest.fixture
def exchange(tmp_path: Path) -> Path:
    """A directory the jobs of any test account may write and the test may read (a
    test's own temporary directory is root's alone, as it should be)."""
    path = TEST_HOMES / f"exchange-{tmp_path.name}-{secrets.token_hex(3)}"
    path.mkdir(parents=True)
    path.chmod(0o1777)
    return path


#: what a test passes on to the services it starts, of its own environment
TEST_IDENTITY_ENV = ("AXC_UNIX_PREFIX", "AXC_UID_RANGE", "AXC_HOME_ROOT")


def service_env() -> dict[str, str]:
    """This process's environment for a service a test starts: no ``AXC_*`` setting of
    the developer's, but this run's unix identities (so its accounts are removed)."""
    return {
        k: v for k, v in os.environ.items() if not k.startswith("AXC_") or k in TEST_IDENTITY_ENV
    }


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the unix accounts and groups this run made, and their homes."""
    import grp
    import pwd
    import shutil
    import subprocess

    for entry in pwd.getpwall():
        if entry.pw_name.startswith(TEST_PREFIX):
            subprocess.run(["userdel", entry.pw_name], capture_output=True, check=False)
    for group in grp.getgrall():
        if group.gr_name.startswith(TEST_PREFIX):
            subprocess.run(["groupdel", group.gr_name], capture_output=True, check=False)
    shutil.rmtree(TEST_HOMES, ignore_errors=True)


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
