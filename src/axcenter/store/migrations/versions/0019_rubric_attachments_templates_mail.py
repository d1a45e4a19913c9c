"""per-criterion review scores, request attachments, job templates, e-mail notices

- ``request_events.scores``: a rubric review's scores per criterion, the rubric they were
  given under and the weighted total (NULL for a plain 1..5 review and other steps).
  Added with a plain ALTER TABLE: a batch rebuild on SQLite would drop the table's
  append-only triggers.
- ``request_attachments``: files attached to an allocation request (a proposal, a budget
  sheet): their names, types, sizes and digests; the bytes are files under the data
  directory (``attachments/``), the service's alone.
- ``job_templates``: a project's named job specifications (command or script, resources).
- ``mail_settings``: each user's e-mail address, language and the kinds of notification
  they want by e-mail, with the moment they asked (nothing older is mailed).
- ``mail_outbox``: every e-mail notice queued, once per user and notification (primary
  key), with its text, attempts and state: what was sent survives a restart.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import axcenter.store.types

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

UTC_DT = axcenter.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.add_column("request_events", sa.Column("scores", sa.JSON(), nullable=True))
    op.create_table(
        "request_attachments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=32), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_by", sa.String(length=32), nullable=False),
        sa.Column("uploaded_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["allocation_requests.id"]),
        sa.ForeignKeyConstraint(["uploaded_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_request_attachments_request_id", "request_attachments", ["request_id"])
    op.create_table(
        "job_templates",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"]),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("project_id", "name", name="uq_job_templates_project_name"),
    )

    op.create_table(
        "mail_settings",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("kinds", sa.JSON(), nullable=False),
        sa.Column("since", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "mail_outbox",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("queued_at", UTC_DT, nullable=False),
        sa.Column("next_at", UTC_DT, nullable=False),
        sa.Column("sent_at", UTC_DT, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("user_id", "key"),
    )
    op.create_index("ix_mail_outbox_status_next_at", "mail_outbox", ["status", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_mail_outbox_status_next_at", "mail_outbox")
    op.drop_table("mail_outbox")
    op.drop_table("mail_settings")
    op.drop_table("job_templates")
    op.drop_index("ix_request_attachments_request_id", "request_attachments")
    op.drop_table("request_attachments")
    op.drop_column("request_events", "scores")
