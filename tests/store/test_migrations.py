"""Migrations create exactly the tables the models describe, on both backends."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from axcenter.store.db import Store
from axcenter.store.orm import Base


def test_migrations_match_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrate_is_idempotent(store: Store) -> None:
    store.migrate()
    tables = set(inspect(store.engine).get_table_names())
    assert {"jobs", "job_events", "device_leases", "api_tokens"} <= tables


def test_one_controller_per_store(db: tuple[str, str | None]) -> None:
    """Two control loops on one store would settle each other's runs: the second claim
    is refused with a message that says who holds it and what to do; once the first
    lets go, another may claim it."""
    from axcenter.store.db import AnotherController, Store

    url, schema = db
    first, second = Store(url, schema), Store(url, schema)
    try:
        first.claim_control()
        with pytest.raises(AnotherController, match=r"another axcenter .* controls"):
            second.claim_control()
        first.release_control()
        second.claim_control()
        with pytest.raises(AnotherController, match="stop it first"):
            first.claim_control()
    finally:
        first.dispose()
        second.dispose()
