"""when a running job last reported a checkpoint (jobs.last_checkpoint_at)

A job reports a checkpoint from inside (``axc checkpoint``, or ``POST
/api/v1/jobs/{id}/checkpoint``); the scheduler counts a preemption victim's loss from
there (docs/scheduling.md, "What reclaim weighs"). NULL: never reported.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 06:00:00
"""

import sqlalchemy as sa
from alembic import op

import axcenter.store.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "last_checkpoint_at",
                axcenter.store.types.UTCDateTime(timezone=True),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("last_checkpoint_at")
