"""accrual charges: the ledger's ``accrual`` entries, counted by ``allocation_balances``,
at most one per job and moment; runs' GPU utilisation (``run_gpu_usage``)

A long run is charged as it runs (docs/accounting.md, "Accrual"): at each period's end an
``accrual`` entry charges what the run used since the previous one and shrinks its hold
by the same usage at list price. One row does both, so the balance trigger (0007) learns
the kind: ``charged_*`` grows by the entry's won and GPU-seconds, ``held_*`` shrinks by
its ``list_won`` and GPU-seconds.

``ux_ledger_accrual`` makes the entry's time its watermark: a run is accrued through a
moment once, whatever posts it (a restarted or a second controller), the database
refusing a second row for the same job and moment.

``run_gpu_usage``: how busy each run kept its GPUs, as its engine summarised it at its end
(samples, mean and peak utilisation, peak memory, idle samples).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import axcenter.store.types

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

UPSERT = """
    INSERT INTO allocation_balances
        (allocation_id, gpu_type, held_won, charged_won, held_gpu_seconds, charged_gpu_seconds)
    VALUES (
        NEW.allocation_id,
        NEW.gpu_type,
        CASE NEW.kind WHEN 'release' THEN -NEW.amount_won WHEN 'charge' THEN 0
            WHEN 'accrual' THEN -COALESCE(NEW.list_won, 0) ELSE NEW.amount_won END,
        CASE NEW.kind WHEN 'charge' THEN NEW.amount_won WHEN 'accrual' THEN NEW.amount_won
            ELSE 0 END,
        CASE NEW.kind WHEN 'release' THEN -NEW.gpu_seconds WHEN 'charge' THEN 0
            WHEN 'accrual' THEN -NEW.gpu_seconds ELSE NEW.gpu_seconds END,
        CASE NEW.kind WHEN 'charge' THEN NEW.gpu_seconds WHEN 'accrual' THEN NEW.gpu_seconds
            ELSE 0 END
    )
    ON CONFLICT (allocation_id, gpu_type) DO UPDATE SET
        held_won = allocation_balances.held_won + excluded.held_won,
        charged_won = allocation_balances.charged_won + excluded.charged_won,
        held_gpu_seconds = allocation_balances.held_gpu_seconds + excluded.held_gpu_seconds,
        charged_gpu_seconds
            = allocation_balances.charged_gpu_seconds + excluded.charged_gpu_seconds
"""

#: 0007's, which knows no accrual
BEFORE = (
    UPSERT.replace("\n            WHEN 'accrual' THEN -COALESCE(NEW.list_won, 0)", "")
    .replace(" WHEN 'accrual' THEN NEW.amount_won\n           ", "")
    .replace("\n            WHEN 'accrual' THEN -NEW.gpu_seconds", "")
    .replace(" WHEN 'accrual' THEN NEW.gpu_seconds\n           ", "")
)


def _trigger(upsert: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_balances")
        op.execute(f"CREATE TRIGGER ledger_balances AFTER INSERT ON ledger BEGIN {upsert}; END")
    else:
        op.execute(
            f"""
            CREATE OR REPLACE FUNCTION axc_ledger_balances() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                {upsert};
                RETURN NULL;
            END
            $$
            """
        )


def upgrade() -> None:
    _trigger(UPSERT)
    accrual = sa.text("kind = 'accrual'")
    op.create_index(
        "ux_ledger_accrual",
        "ledger",
        ["job_id", "at"],
        unique=True,
        sqlite_where=accrual,
        postgresql_where=accrual,
    )
    op.create_table(
        "run_gpu_usage",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("ended_at", axcenter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("util_mean_pct", sa.Integer(), nullable=False),
        sa.Column("util_max_pct", sa.Integer(), nullable=False),
        sa.Column("memory_max_mib", sa.Integer(), nullable=False),
        sa.Column("idle_samples", sa.Integer(), nullable=False),
        sa.Column("sample_s", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_run_gpu_usage_job_id_jobs")),
        sa.PrimaryKeyConstraint("job_id", "attempt", name=op.f("pk_run_gpu_usage")),
    )


def downgrade() -> None:
    op.drop_table("run_gpu_usage")
    op.drop_index("ux_ledger_accrual", "ledger")
    _trigger(BEFORE)
