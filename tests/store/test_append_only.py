"""The audit log and the ledger are append-only in the database itself (migration 0005):
UPDATE and DELETE fail on both backends (and TRUNCATE on PostgreSQL), whoever tries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from axcenter.model.ids import new_id
from axcenter.store import orm
from axcenter.store.accounts import create_organization
from axcenter.store.db import Store
from axcenter.store.types import utcnow


def _rows(store: Store) -> None:
    """One audit row and one ledger row (with what the ledger row refers to)."""
    now = utcnow()
    with store.write() as s:
        org = create_organization(s, "Daeil")
        program = orm.Program(id=new_id("prg"), name="AX", budget_won=10**9)
        project = orm.Project(
            id=new_id("prj"), name="vision", organization_id=org.id, sector="manufacturing"
        )
        s.add_all([program, project])
        s.flush()
        allocation = orm.Allocation(
            id=new_id("alc"),
            project_id=project.id,
            program_id=program.id,
            starts_at=now,
            ends_at=now + timedelta(days=30),
            status="active",
            on_exhaustion="stop",
        )
        s.add(allocation)
        s.flush()
        s.add(
            orm.LedgerEntry(
                at=now,
                kind="charge",
                allocation_id=allocation.id,
                program_id=program.id,
                project_id=project.id,
                gpu_type="A100",
                gpu_seconds=3600,
                amount_won=2800,
                public_won=2240,
                copay_won=560,
            )
        )
        s.add(
            orm.AuditEntry(
                at=now, action="grant.create", object_type="allocation", object_id=allocation.id,
                details={"won": 2800},
            )
        )  # fmt: skip


TABLES = [orm.AuditEntry, orm.LedgerEntry]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.__tablename__)
def test_update_and_delete_are_refused(store: Store, table: type[orm.Base]) -> None:
    _rows(store)
    column = table.__table__.c.at  # type: ignore[attr-defined]
    for statement in (
        update(table).values({column: utcnow() + timedelta(days=1)}),
        delete(table),
    ):
        with pytest.raises(DBAPIError, match="append-only"), store.write() as s:
            s.execute(statement)
    with store.read() as s:
        assert s.scalar(select(func.count()).select_from(table)) == 1
        assert s.scalar(select(column)) <= utcnow()
    # appending still works
    extra = orm.AuditEntry(at=utcnow(), action="x", object_type="y", object_id="z", details={})
    with store.write() as s:
        s.add(extra)


def test_raw_sql_and_truncate_are_refused(store: Store) -> None:
    _rows(store)
    statements = ["UPDATE ledger SET amount_won = 0", "DELETE FROM audit_log"]
    if not store.is_sqlite:
        statements += ["TRUNCATE ledger", "TRUNCATE audit_log"]
    for sql in statements:
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text(sql))
    with store.read() as s:
        assert s.scalar(select(orm.LedgerEntry.amount_won)) == 2800
        assert s.scalar(select(func.count()).select_from(orm.AuditEntry)) == 1
