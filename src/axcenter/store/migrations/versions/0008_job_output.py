"""where a job's output goes (jobs.output)

``log`` (every job until now): the center's log file of the job. ``discard``: nowhere,
as Slurm's ``--output=/dev/null``, for many small jobs whose output nobody reads (a log
file per job costs an inode, and its creation, each).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("output", sa.String(length=16), nullable=False, server_default="log")
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("output")
