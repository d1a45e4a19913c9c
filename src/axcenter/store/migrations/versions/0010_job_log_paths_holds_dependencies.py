"""a job's output and error file name patterns (jobs.output_path, jobs.error_path), and
whether it is held or waits for other jobs (jobs.held, jobs.dependency)

Slurm's ``--output``/``--error`` patterns (``%j %A %a %x %u %N``), stored as the user
wrote them and expanded when the job starts (``axcenter.model.logpath``). NULL, as for
every job until now: the center's log of the job. ``held``: a pending job its owner or
an operator holds (``axc hold``); the scheduler passes it over until it is released.
``dependency``: Slurm's ``--dependency`` as written; ``dependency_pending``: the job still
waits for it, or for a free place under its array's ``%`` throttle (``array_throttle``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 06:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("output_path", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("error_path", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("dependency", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("dependency_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("array_throttle", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("array_throttle")
        batch_op.drop_column("dependency_pending")
        batch_op.drop_column("dependency")
        batch_op.drop_column("held")
        batch_op.drop_column("error_path")
        batch_op.drop_column("output_path")
