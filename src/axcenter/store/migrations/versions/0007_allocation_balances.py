"""running balances of allocations (allocation_balances)

What an allocation has left was summed from its whole ledger (three rows per funded run)
at every admission and every control cycle, so it cost more the longer the center ran.
``allocation_balances`` keeps the sums per allocation and GPU type: ``held_*`` (holds
minus releases) and ``charged_*`` (charges), in won and GPU-seconds.

A trigger on ``ledger`` adds every inserted row to its sums in the inserting transaction,
whatever inserts it (the ledger code, a test builder, an ad-hoc session), with an upsert
that adds in the database (``SET x = x + excluded.x``): concurrent transactions on
PostgreSQL serialise on the row and neither loses the other's amount. The ledger is
append-only (0005), so inserts are the only changes to follow. The table is then filled
from the existing ledger; on PostgreSQL the trigger is created first, and creating it
locks the ledger against inserts until this migration commits, so no row is missed or
counted twice.

SQLite: as for 0005's triggers, a later batch migration that rebuilds ``ledger`` drops
this trigger with the old table; such a migration must create it again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

#: adds the NEW ledger row to its allocation's and GPU type's sums (held: holds minus
#: releases; charged: charges), in the database, so concurrent inserts add up
UPSERT = """
    INSERT INTO allocation_balances
        (allocation_id, gpu_type, held_won, charged_won, held_gpu_seconds, charged_gpu_seconds)
    VALUES (
        NEW.allocation_id,
        NEW.gpu_type,
        CASE NEW.kind WHEN 'release' THEN -NEW.amount_won WHEN 'charge' THEN 0
            ELSE NEW.amount_won END,
        CASE NEW.kind WHEN 'charge' THEN NEW.amount_won ELSE 0 END,
        CASE NEW.kind WHEN 'release' THEN -NEW.gpu_seconds WHEN 'charge' THEN 0
            ELSE NEW.gpu_seconds END,
        CASE NEW.kind WHEN 'charge' THEN NEW.gpu_seconds ELSE 0 END
    )
    ON CONFLICT (allocation_id, gpu_type) DO UPDATE SET
        held_won = allocation_balances.held_won + excluded.held_won,
        charged_won = allocation_balances.charged_won + excluded.charged_won,
        held_gpu_seconds = allocation_balances.held_gpu_seconds + excluded.held_gpu_seconds,
        charged_gpu_seconds
            = allocation_balances.charged_gpu_seconds + excluded.charged_gpu_seconds
"""

#: the same sums over the ledger as it stands
BACKFILL = """
    INSERT INTO allocation_balances
        (allocation_id, gpu_type, held_won, charged_won, held_gpu_seconds, charged_gpu_seconds)
    SELECT
        allocation_id,
        gpu_type,
        SUM(CASE kind WHEN 'release' THEN -amount_won WHEN 'charge' THEN 0 ELSE amount_won END),
        SUM(CASE kind WHEN 'charge' THEN amount_won ELSE 0 END),
        SUM(
            CASE kind WHEN 'release' THEN -gpu_seconds WHEN 'charge' THEN 0 ELSE gpu_seconds END
        ),
        SUM(CASE kind WHEN 'charge' THEN gpu_seconds ELSE 0 END)
    FROM ledger
    GROUP BY allocation_id, gpu_type
"""


def upgrade() -> None:
    op.create_table(
        "allocation_balances",
        sa.Column("allocation_id", sa.String(length=32), nullable=False),
        sa.Column("gpu_type", sa.String(length=32), nullable=False),
        sa.Column("held_won", sa.BigInteger(), nullable=False),
        sa.Column("charged_won", sa.BigInteger(), nullable=False),
        sa.Column("held_gpu_seconds", sa.BigInteger(), nullable=False),
        sa.Column("charged_gpu_seconds", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_allocation_balances_allocation_id_allocations"),
        ),
        sa.PrimaryKeyConstraint("allocation_id", "gpu_type", name=op.f("pk_allocation_balances")),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"CREATE TRIGGER ledger_balances AFTER INSERT ON ledger BEGIN {UPSERT}; END")
    else:
        op.execute(
            f"""
            CREATE FUNCTION axc_ledger_balances() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                {UPSERT};
                RETURN NULL;
            END
            $$
            """
        )
        op.execute(
            "CREATE TRIGGER ledger_balances AFTER INSERT ON ledger "
            "FOR EACH ROW EXECUTE FUNCTION axc_ledger_balances()"
        )
    op.execute(BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_balances")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_balances ON ledger")
        op.execute("DROP FUNCTION IF EXISTS axc_ledger_balances()")
    op.drop_table("allocation_balances")
