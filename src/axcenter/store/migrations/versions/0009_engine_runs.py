"""jobs.engine_ref replaces jobs.pid (the execution contract, docs/engines.md)

An engine names a run by a reference of its own (a local run directory, a Slurm job id),
not by a process id; the control plane no longer signals processes itself. A job's
current run is ``JOB.ATTEMPT``, its attempt counted at admission.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("engine_ref", sa.String(length=200), nullable=True))
        batch_op.drop_column("pid")


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pid", sa.Integer(), nullable=True))
        batch_op.drop_column("engine_ref")
