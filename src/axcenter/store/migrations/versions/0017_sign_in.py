"""sign-in: passwords with a second factor, single sign-on (issue 21)

- ``sign_in_credentials``: a user's Argon2id password hash and TOTP secret, the last
  time step taken (a code is accepted once), second-factor failures in a row and when
  they locked the account.
- ``recovery_codes``: one-time codes standing in for the second factor (SHA-256).
- ``external_identities``: an OpenID provider's user (issuer, subject) linked to ours.
- ``sign_in_flows``: sign-ins under way (single sign-on, second factor, enrolment, an
  operator's reset link), each used once and short-lived.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import axcenter.store.types

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

UTC = axcenter.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sign_in_credentials",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("totp_secret", sa.String(length=64), nullable=True),
        sa.Column("totp_confirmed_at", UTC, nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_at", UTC, nullable=True),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_sign_in_credentials_user_id_users"
        ),
        sa.PrimaryKeyConstraint("user_id", name="pk_sign_in_credentials"),
    )
    op.create_table(
        "recovery_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("used_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_recovery_codes_user_id_users"),
        sa.PrimaryKeyConstraint("code_hash", name="pk_recovery_codes"),
    )
    op.create_index("ix_recovery_codes_user_id", "recovery_codes", ["user_id"])
    op.create_table(
        "external_identities",
        sa.Column("issuer", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("linked_at", UTC, nullable=False),
        sa.Column("last_sign_in_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_external_identities_user_id_users"
        ),
        sa.PrimaryKeyConstraint("issuer", "subject", name="pk_external_identities"),
    )
    op.create_index("ix_external_identities_user_id", "external_identities", ["user_id"])
    op.create_table(
        "sign_in_flows",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("next_url", sa.String(length=2000), nullable=False),
        sa.Column("nonce", sa.String(length=100), nullable=True),
        sa.Column("code_verifier", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_sign_in_flows_user_id_users"),
        sa.PrimaryKeyConstraint("id", name="pk_sign_in_flows"),
        sa.UniqueConstraint("secret_hash", name="uq_sign_in_flows_secret_hash"),
    )
    op.create_index("ix_sign_in_flows_user_id", "sign_in_flows", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_flows_user_id", table_name="sign_in_flows")
    op.drop_table("sign_in_flows")
    op.drop_index("ix_external_identities_user_id", table_name="external_identities")
    op.drop_table("external_identities")
    op.drop_index("ix_recovery_codes_user_id", table_name="recovery_codes")
    op.drop_table("recovery_codes")
    op.drop_table("sign_in_credentials")
