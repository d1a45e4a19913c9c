"""dashboard sessions, token expiry, reviewers' declared conflicts of interest (issue 17)

- ``web_sessions``: the dashboard's own short-lived, server-revocable credentials (the
  cookie no longer holds the API token).
- ``api_tokens.expires_at``: a token may expire (NULL: valid until revoked).
- ``reviewer_conflicts``: organizations a reviewer may not review (competitors), checked
  when reviewers are assigned.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import axcenter.store.types

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UTC = axcenter.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", UTC, nullable=True))
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_web_sessions_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_web_sessions"),
        sa.UniqueConstraint("secret_hash", name="uq_web_sessions_secret_hash"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "reviewer_conflicts",
        sa.Column("reviewer_id", sa.String(length=32), nullable=False),
        sa.Column("organization_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("declared_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["reviewer_id"], ["users.id"], name="fk_reviewer_conflicts_reviewer_id_users"
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name="fk_reviewer_conflicts_organization_id_organizations",
        ),
        sa.PrimaryKeyConstraint("reviewer_id", "organization_id", name="pk_reviewer_conflicts"),
    )


def downgrade() -> None:
    op.drop_table("reviewer_conflicts")
    op.drop_index("ix_web_sessions_user_id", table_name="web_sessions")
    op.drop_table("web_sessions")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
