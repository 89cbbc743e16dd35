"""Judgment revisions: a revision number and history per judgment, the project's revision window

Revision ID: d1ad618637a0
Revises: cfdec5e10c79
Create Date: 2026-11-30 23:00:00+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "d1ad618637a0"
down_revision: str | Sequence[str] | None = "cfdec5e10c79"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("revision_window_minutes", sa.Integer(), server_default="10", nullable=False))
    op.create_check_constraint("revision_window_minutes", "projects", "revision_window_minutes BETWEEN 0 AND 1440")
    op.add_column("judgments", sa.Column("revision", sa.Integer(), server_default="1", nullable=False))
    op.add_column("judgments", sa.Column("revised_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint("revision", "judgments", "revision >= 1")
    op.create_index(
        "ix_judgments_revised",
        "judgments",
        ["project_id", "xid"],
        postgresql_where=sa.text("revision > 1"),
    )
    op.create_table(
        "judgment_revisions",
        sa.Column("judgment_id", sa.Uuid(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("choice_id", sa.Uuid(), nullable=True),
        sa.Column("ranking", postgresql.ARRAY(sa.Uuid()), nullable=True),
        sa.Column("strength", sa.SmallInteger(), nullable=True),
        sa.Column("tie", sa.Boolean(), nullable=False),
        sa.Column("both_bad", sa.Boolean(), nullable=False),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("active_ms", sa.Integer(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replaced_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["choice_id"],
            ["candidates.id"],
            name=op.f("fk_judgment_revisions_choice_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["judgment_id"],
            ["judgments.id"],
            name=op.f("fk_judgment_revisions_judgment_id_judgments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("judgment_id", "revision", name=op.f("pk_judgment_revisions")),
    )


def downgrade() -> None:
    op.drop_table("judgment_revisions")
    op.drop_index("ix_judgments_revised", table_name="judgments")
    op.drop_constraint("ck_judgments_revision", "judgments", type_="check")
    op.drop_column("judgments", "revised_at")
    op.drop_column("judgments", "revision")
    op.drop_constraint("ck_projects_revision_window_minutes", "projects", type_="check")
    op.drop_column("projects", "revision_window_minutes")
