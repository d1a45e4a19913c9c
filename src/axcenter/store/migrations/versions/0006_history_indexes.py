"""indexes for reading history by time

``job_events.at``: the cluster history (utilization, queue length and waits over a
window) reads only the events inside the window. ``jobs (state, id)``: the dashboard's
and the API's job lists filter by state and page newest first on the time-ordered id.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 18:40:00
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_job_events_at", "job_events", ["at"])
    op.create_index("ix_jobs_state_id", "jobs", ["state", "id"])


def downgrade() -> None:
    op.drop_index("ix_jobs_state_id", table_name="jobs")
    op.drop_index("ix_job_events_at", table_name="job_events")
