"""running programs: effective-dated rules, tranches, progress reports, outcome surveys,
notices on grants, terms on charges

- ``program_rules``: a program's rules (self-paid share, pricing modifiers, concentration
  caps, tranche plan) from a moment on; rows are added, never changed (like prices).
- ``grant_tranches``: the parts of a grant; one released at approval, the next ones after
  a progress report is accepted. Unreleased parts stay committed against the budget.
- ``progress_reports``: what a project reports to earn its next tranche, and the decision.
- ``survey_forms`` / ``survey_answers``: outcome-survey forms a program defines, and every
  answer a project gives (append-only: the latest per round counts, all are history).
- ``grant_notices``: reminders, warnings, suspensions and take-backs sent about a grant,
  with their reason and evidence.
- ``organizations.youth_startup``: youth-startup terms apply to it.
- ``ledger.list_won`` / ``ledger.terms``: a charge's won before the program's modifiers,
  and the terms applied (NULL on holds, releases and charges booked before this revision).
  Columns are added and dropped with plain ALTER TABLE: a batch rebuild on SQLite would
  drop the ledger's triggers, and fails on organizations (other tables refer to it).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 09:00:00
"""

import sqlalchemy as sa
from alembic import op

import axcenter.store.types

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UTC_DT = axcenter.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "program_rules",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("effective_from", UTC_DT, nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_program_rules_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_program_rules_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_program_rules")),
        sa.UniqueConstraint(
            "program_id", "effective_from", name=op.f("uq_program_rules_program_id")
        ),
    )
    op.create_table(
        "grant_tranches",
        sa.Column("allocation_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("gpu_seconds", sa.BigInteger(), nullable=False),
        sa.Column("won", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("report_due_at", UTC_DT, nullable=True),
        sa.Column("released_at", UTC_DT, nullable=True),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_grant_tranches_allocation_id_allocations"),
        ),
        sa.PrimaryKeyConstraint("allocation_id", "seq", name=op.f("pk_grant_tranches")),
    )
    op.create_table(
        "progress_reports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("allocation_id", sa.String(length=32), nullable=False),
        sa.Column("tranche_seq", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("submitted_by", sa.String(length=32), nullable=False),
        sa.Column("submitted_at", UTC_DT, nullable=False),
        sa.Column("decided_by", sa.String(length=32), nullable=True),
        sa.Column("decided_at", UTC_DT, nullable=True),
        sa.Column("decision_comment", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_progress_reports_allocation_id_allocations"),
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by"], ["users.id"], name=op.f("fk_progress_reports_submitted_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["users.id"], name=op.f("fk_progress_reports_decided_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_progress_reports")),
    )
    op.create_index(
        op.f("ix_progress_reports_allocation_id"), "progress_reports", ["allocation_id"]
    )
    op.create_table(
        "survey_forms",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("program_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("due_dates", sa.JSON(), nullable=False),
        sa.Column("at_end", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=32), nullable=True),
        sa.Column("created_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_survey_forms_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_survey_forms_created_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_forms")),
        sa.UniqueConstraint("program_id", "name", name=op.f("uq_survey_forms_program_id")),
    )
    op.create_table(
        "survey_answers",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("form_id", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("round", sa.String(length=32), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("submitted_by", sa.String(length=32), nullable=False),
        sa.Column("submitted_at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(
            ["form_id"], ["survey_forms.id"], name=op.f("fk_survey_answers_form_id_survey_forms")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_survey_answers_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["submitted_by"], ["users.id"], name=op.f("fk_survey_answers_submitted_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_answers")),
    )
    op.create_index(
        "ix_survey_answers_form_project", "survey_answers", ["form_id", "project_id", "round"]
    )
    op.create_table(
        "grant_notices",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("allocation_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=64), server_default="", nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("gpu_seconds", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("won", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("actor_id", sa.String(length=32), nullable=True),
        sa.Column("at", UTC_DT, nullable=False),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_grant_notices_allocation_id_allocations"),
        ),
        sa.ForeignKeyConstraint(
            ["actor_id"], ["users.id"], name=op.f("fk_grant_notices_actor_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grant_notices")),
    )
    op.create_index(op.f("ix_grant_notices_allocation_id"), "grant_notices", ["allocation_id"])
    op.add_column(
        "organizations",
        sa.Column("youth_startup", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("ledger", sa.Column("list_won", sa.BigInteger(), nullable=True))
    op.add_column("ledger", sa.Column("terms", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("ledger", "terms")
    op.drop_column("ledger", "list_won")
    op.drop_column("organizations", "youth_startup")
    op.drop_index(op.f("ix_grant_notices_allocation_id"), table_name="grant_notices")
    op.drop_table("grant_notices")
    op.drop_index("ix_survey_answers_form_project", table_name="survey_answers")
    op.drop_table("survey_answers")
    op.drop_table("survey_forms")
    op.drop_index(op.f("ix_progress_reports_allocation_id"), table_name="progress_reports")
    op.drop_table("progress_reports")
    op.drop_table("grant_tranches")
    op.drop_table("program_rules")
