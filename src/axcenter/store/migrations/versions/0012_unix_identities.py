"""unix identities: the account each user's jobs run as, the group of each project

``unix_accounts`` maps a user to a unix account, created by axcenter in its uid range
(``managed``) or an existing one mapped by an operator; ``project_groups`` gives each
project a group, the primary group of its jobs (docs/security.md).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 09:30:00
"""

import sqlalchemy as sa
from alembic import op

import axcenter.store.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unix_accounts",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("uid", sa.Integer(), nullable=False),
        sa.Column("gid", sa.Integer(), nullable=False),
        sa.Column("home", sa.Text(), nullable=False),
        sa.Column("managed", sa.Boolean(), nullable=False),
        sa.Column("created_at", axcenter.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_unix_accounts_user_id_users")
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_unix_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_unix_accounts_name")),
        sa.UniqueConstraint("uid", name=op.f("uq_unix_accounts_uid")),
    )
    op.create_table(
        "project_groups",
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("gid", sa.Integer(), nullable=False),
        sa.Column("managed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_project_groups_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_project_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_project_groups_name")),
        sa.UniqueConstraint("gid", name=op.f("uq_project_groups_gid")),
    )


def downgrade() -> None:
    op.drop_table("project_groups")
    op.drop_table("unix_accounts")
