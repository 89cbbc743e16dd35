"""Flaws raters mark, flaws planted on purpose, and a group tag on memberships

Revision ID: efbb8d11c34f
Revises: 351db58b9180
Create Date: 2026-12-01 07:45:08.175118+00:00

Issue 11 (evaluation assistance, part one): `flaws` belong to a judgment (a revision replaces
them); `planted_flaws` belong to a candidate and are never shown to raters; `project_members.group`
splits reports by kind of rater.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "efbb8d11c34f"
down_revision: str | Sequence[str] | None = "351db58b9180"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "planted_flaws",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=False),
        sa.Column("span_message", sa.SmallInteger(), nullable=True),
        sa.Column("span_start", sa.Integer(), nullable=False),
        sa.Column("span_end", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("span_message IS NULL OR span_message >= 0", name=op.f("ck_planted_flaws_span_message")),
        sa.CheckConstraint("span_start >= 0 AND span_end > span_start", name=op.f("ck_planted_flaws_span_order")),
        sa.ForeignKeyConstraint(
            ["candidate_id"],
            ["candidates.id"],
            name=op.f("fk_planted_flaws_candidate_id_candidates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_planted_flaws_created_by_users"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_planted_flaws_item_id_items"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_planted_flaws_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_planted_flaws")),
    )
    op.create_index("ix_planted_flaws_item", "planted_flaws", ["item_id"], unique=False)
    op.create_index("ix_planted_flaws_project", "planted_flaws", ["project_id"], unique=False)
    op.create_table(
        "flaws",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("candidate_id", sa.Uuid(), nullable=False),
        sa.Column("judgment_id", sa.Uuid(), nullable=False),
        sa.Column("span_message", sa.SmallInteger(), nullable=True),
        sa.Column("span_start", sa.Integer(), nullable=False),
        sa.Column("span_end", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("position", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "severity IS NULL OR severity IN ('minor', 'major', 'critical')", name=op.f("ck_flaws_severity")
        ),
        sa.CheckConstraint("span_message IS NULL OR span_message >= 0", name=op.f("ck_flaws_span_message")),
        sa.CheckConstraint("span_start >= 0 AND span_end > span_start", name=op.f("ck_flaws_span_order")),
        sa.ForeignKeyConstraint(
            ["candidate_id"], ["candidates.id"], name=op.f("fk_flaws_candidate_id_candidates"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_flaws_item_id_items"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["judgment_id"], ["judgments.id"], name=op.f("fk_flaws_judgment_id_judgments"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_flaws_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flaws")),
    )
    op.create_index("ix_flaws_item", "flaws", ["item_id"], unique=False)
    op.create_index("ix_flaws_judgment", "flaws", ["judgment_id"], unique=False)
    op.add_column("project_members", sa.Column("group", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("project_members", "group")
    op.drop_index("ix_flaws_judgment", table_name="flaws")
    op.drop_index("ix_flaws_item", table_name="flaws")
    op.drop_table("flaws")
    op.drop_index("ix_planted_flaws_project", table_name="planted_flaws")
    op.drop_index("ix_planted_flaws_item", table_name="planted_flaws")
    op.drop_table("planted_flaws")
