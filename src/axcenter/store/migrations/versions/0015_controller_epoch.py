"""the controller's epoch (a fencing token for one active controller per store), and
the pending jobs' partial indexes for the queue view

One row. Each controller that takes the store (``Store.claim_control``, then
``Store.take_epoch``) adds one to ``epoch`` and keeps its value; every write transaction
of a controller first checks that the row still holds its value (``Store.fence``), so a
controller that lost its lock while it lived (a standby took over) cannot write.

``ix_jobs_pending_order`` holds each project's pending jobs in queue order (priority
class, submission, id), ``ix_jobs_pending_user`` each user's: the queue view walks the
queue without sorting the backlog (``service/queue.py``). Partial: they hold only the
pending jobs, so they stay small and cost a submission little.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import axcenter.store.types

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "controller",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("claimed_at", axcenter.store.types.UTCDateTime(timezone=True), nullable=True),
    )
    op.bulk_insert(table, [{"id": 1, "epoch": 0, "holder": "", "claimed_at": None}])
    pending = sa.text("state = 'pending'")
    op.create_index(
        "ix_jobs_pending_order",
        "jobs",
        ["project_id", sa.text("priority DESC"), "submitted_at", "id", "state"],
        sqlite_where=pending,
        postgresql_where=pending,
    )
    op.create_index(
        "ix_jobs_pending_user",
        "jobs",
        ["user_id", "project_id"],
        sqlite_where=pending,
        postgresql_where=pending,
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_pending_user", "jobs")
    op.drop_index("ix_jobs_pending_order", "jobs")
    op.drop_table("controller")
