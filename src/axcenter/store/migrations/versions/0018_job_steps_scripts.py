"""job steps (srun in an allocation) and batch scripts shipped with their jobs (issue 20)

- ``job_steps``: the steps run inside a running job's allocation (``axc srun``), one row
  per step ``JOB.STEP``: who started it, its command, state, times and exit code, as
  sacct's steps.
- ``jobs.script``: a batch script's content, submitted with its job (as sbatch does), so
  the job runs what was submitted whatever happens to the file.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import axcenter.store.types

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

UTC = axcenter.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("script", sa.Text(), nullable=True))
    op.create_table(
        "job_steps",
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", UTC, nullable=False),
        sa.Column("ended_at", UTC, nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("message", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_steps_job_id_jobs"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_job_steps_user_id_users"),
        sa.PrimaryKeyConstraint("job_id", "step", name="pk_job_steps"),
    )


def downgrade() -> None:
    op.drop_table("job_steps")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("script")
