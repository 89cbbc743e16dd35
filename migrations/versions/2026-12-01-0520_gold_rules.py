"""Gold feedback, the qualification round and the suspension rule

Revision ID: e74991c0f8aa
Revises: 182a48d5d691
Create Date: 2026-12-01 04:30:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "e74991c0f8aa"
down_revision: str | Sequence[str] | None = "182a48d5d691"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("gold_feedback", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("projects", sa.Column("qualification_items", sa.Integer(), server_default="0", nullable=False))
    op.add_column("projects", sa.Column("qualification_threshold", sa.Float(), server_default="0.8", nullable=False))
    op.add_column("projects", sa.Column("suspension_window", sa.Integer(), server_default="0", nullable=False))
    op.add_column("projects", sa.Column("suspension_threshold", sa.Float(), server_default="0.7", nullable=False))
    op.create_check_constraint(
        op.f("ck_projects_qualification_items"), "projects", "qualification_items BETWEEN 0 AND 100"
    )
    op.create_check_constraint(
        op.f("ck_projects_qualification_threshold"), "projects", "qualification_threshold BETWEEN 0 AND 1"
    )
    op.create_check_constraint(op.f("ck_projects_suspension_window"), "projects", "suspension_window BETWEEN 0 AND 200")
    op.create_check_constraint(
        op.f("ck_projects_suspension_threshold"), "projects", "suspension_threshold BETWEEN 0 AND 1"
    )
    op.add_column("project_members", sa.Column("qualified_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("project_members", sa.Column("qualification_failed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("project_members", sa.Column("qualification_result", sa.Text(), nullable=True))
    op.add_column("project_members", sa.Column("qualification_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("judgments", sa.Column("feedback_shown", sa.Boolean(), server_default="false", nullable=False))


def downgrade() -> None:
    op.drop_column("judgments", "feedback_shown")
    for column in ("qualification_since", "qualification_result", "qualification_failed_at", "qualified_at"):
        op.drop_column("project_members", column)
    for name in ("suspension_threshold", "suspension_window", "qualification_threshold", "qualification_items"):
        op.drop_constraint(op.f(f"ck_projects_{name}"), "projects", type_="check")
    for column in (
        "suspension_threshold",
        "suspension_window",
        "qualification_threshold",
        "qualification_items",
        "gold_feedback",
    ):
        op.drop_column("projects", column)
