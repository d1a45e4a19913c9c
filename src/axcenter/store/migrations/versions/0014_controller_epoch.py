"""the controller's epoch: a fencing token for one active controller per store

One row. Each controller that takes the store (``Store.claim_control``, then
``Store.take_epoch``) adds one to ``epoch`` and keeps its value; every write transaction
of a controller first checks that the row still holds its value (``Store.fence``), so a
controller that lost its lock while it lived (a standby took over) cannot write.

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-07 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import axcenter.store.types

revision = "0014"
down_revision = "0011"
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


def downgrade() -> None:
    op.drop_table("controller")
