"""per-criterion review scores, request attachments, job templates

- ``request_events.scores``: a rubric review's scores per criterion, the rubric they were
  given under and the weighted total (NULL for a plain 1..5 review and other steps).
  Added with a plain ALTER TABLE: a batch rebuild on SQLite would drop the table's
  append-only triggers.
- ``request_attachments``: files attached to an allocation request (a proposal, a budget
  sheet): their names, types, sizes and digests; the bytes are files under the data
  directory (``attachments/``), the service's alone.
- ``job_templates``: a project's named job specifications (command or script, resources).

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-07 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import axcenter.store.types

revision = "0017"
down_revision = "0015"
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


def downgrade() -> None:
    op.drop_table("job_templates")
    op.drop_index("ix_request_attachments_request_id", "request_attachments")
    op.drop_table("request_attachments")
    op.drop_column("request_events", "scores")
