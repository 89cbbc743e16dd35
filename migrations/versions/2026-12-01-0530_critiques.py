"""Critiques of candidates, raters' ratings of them, and each rater's assistance-experiment counts

Revision ID: 351db58b9180
Revises: e74991c0f8aa
Create Date: 2026-12-01 05:00:00+00:00

The assistance decision itself goes in the columns reserved for it since the core schema:
`assignments.assistance`, `judgments.assistance_shown` and `projects.assistance_policy`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "351db58b9180"
down_revision: str | Sequence[str] | None = "e74991c0f8aa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "critiques",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author_model", sa.String(length=200), nullable=True),
        sa.Column("author_id", sa.Uuid(), nullable=True),
        sa.Column("judgment_id", sa.Uuid(), nullable=True),
        sa.Column("span_message", sa.SmallInteger(), nullable=True),
        sa.Column("span_start", sa.Integer(), nullable=True),
        sa.Column("span_end", sa.Integer(), nullable=True),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("(span_start IS NULL) = (span_end IS NULL)", name=op.f("ck_critiques_span_pair")),
        sa.CheckConstraint(
            "span_start IS NULL OR (span_start >= 0 AND span_end > span_start)", name=op.f("ck_critiques_span_order")
        ),
        sa.CheckConstraint("span_message IS NULL OR span_start IS NOT NULL", name=op.f("ck_critiques_span_message")),
        sa.CheckConstraint(
            "severity IS NULL OR severity IN ('minor', 'major', 'critical')", name=op.f("ck_critiques_severity")
        ),
        sa.ForeignKeyConstraint(
            ["author_id"], ["users.id"], name=op.f("fk_critiques_author_id_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["candidates.id"], name=op.f("fk_critiques_candidate_id_candidates"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_critiques_item_id_items"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["judgment_id"], ["judgments.id"], name=op.f("fk_critiques_judgment_id_judgments"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_critiques_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_critiques")),
    )
    op.create_index("ix_critiques_item", "critiques", ["item_id", "seq"], unique=False)
    op.create_index(
        "ix_critiques_judgment",
        "critiques",
        ["judgment_id"],
        unique=False,
        postgresql_where=sa.text("judgment_id IS NOT NULL"),
    )
    op.create_table(
        "critique_ratings",
        sa.Column("judgment_id", sa.Uuid(), nullable=False),
        sa.Column("critique_id", sa.Uuid(), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=True),
        sa.CheckConstraint("verdict IN ('valid', 'invalid', 'unsure')", name=op.f("ck_critique_ratings_verdict")),
        sa.ForeignKeyConstraint(
            ["critique_id"],
            ["critiques.id"],
            name=op.f("fk_critique_ratings_critique_id_critiques"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["judgment_id"],
            ["judgments.id"],
            name=op.f("fk_critique_ratings_judgment_id_judgments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("judgment_id", "critique_id", name=op.f("pk_critique_ratings")),
    )
    op.create_index("ix_critique_ratings_critique", "critique_ratings", ["critique_id"], unique=False)
    op.add_column("project_members", sa.Column("assist_leases", sa.Integer(), server_default="0", nullable=False))
    op.add_column("project_members", sa.Column("assist_shown", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("project_members", "assist_shown")
    op.drop_column("project_members", "assist_leases")
    op.drop_index("ix_critique_ratings_critique", table_name="critique_ratings")
    op.drop_table("critique_ratings")
    op.drop_index("ix_critiques_judgment", table_name="critiques", postgresql_where=sa.text("judgment_id IS NOT NULL"))
    op.drop_index("ix_critiques_item", table_name="critiques")
    op.drop_table("critiques")
