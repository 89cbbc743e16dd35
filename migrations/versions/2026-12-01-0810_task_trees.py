"""Task trees: subtasks of an item (question, scale, span, candidate), their answers, pools, the gate

Revision ID: 7d21c4e8a0b5
Revises: 5b0c7e3a9d42
Create Date: 2026-12-01 08:10:00+00:00

Issue 12 ("Task trees"). A subtask is an item with a parent (`items.parent_id`) and a kind
(`comparison`, `check`, `rating`, `answer`); it may ask a question about one of its tree's
candidates (`subtask_candidate_id`, optionally a span of it), on a scale (`scale_min`,
`scale_max` for a rating). `pool` names the membership `group` that may be given it. A judgment
of a check, rating or answer stores `answer` instead of a choice. `projects.subtasks_gate`:
whether a parent waits for its subtasks (`required`, through `items.open_subtasks`) or not.

The pick's index holds only items without a pool (every rater may take them); pooled items have
an index of their own, so raters outside a pool never walk past its items.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "7d21c4e8a0b5"
down_revision: str | Sequence[str] | None = "5b0c7e3a9d42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_QUEUE_COLUMNS = ["project_id", sa.text("(-batch_priority)"), sa.text("(-priority)"), "seq"]


def upgrade() -> None:
    op.add_column("items", sa.Column("question", sa.Text(), nullable=True))
    op.add_column("items", sa.Column("scale_min", sa.Float(), nullable=True))
    op.add_column("items", sa.Column("scale_max", sa.Float(), nullable=True))
    # No foreign key: items and candidates would depend on each other; a tree's items and
    # candidates are only ever deleted together.
    op.add_column("items", sa.Column("subtask_candidate_id", sa.Uuid(), nullable=True))
    op.add_column("items", sa.Column("span_message", sa.SmallInteger(), nullable=True))
    op.add_column("items", sa.Column("span_start", sa.Integer(), nullable=True))
    op.add_column("items", sa.Column("span_end", sa.Integer(), nullable=True))
    op.add_column("items", sa.Column("pool", sa.String(64), nullable=True))
    op.create_check_constraint(op.f("ck_items_kind"), "items", "kind IN ('comparison', 'check', 'rating', 'answer')")
    op.create_check_constraint(
        op.f("ck_items_scale"),
        "items",
        "(kind = 'rating') = (scale_min IS NOT NULL AND scale_max IS NOT NULL AND scale_min < scale_max)",
    )
    op.create_check_constraint(op.f("ck_items_subtask_parent"), "items", "kind = 'comparison' OR parent_id IS NOT NULL")
    op.drop_index("ix_items_queue", table_name="items")
    op.create_index("ix_items_queue", "items", _QUEUE_COLUMNS, postgresql_where=sa.text("queue_open AND pool IS NULL"))
    op.create_index(
        "ix_items_pool",
        "items",
        ["project_id", "pool", sa.text("(-batch_priority)"), sa.text("(-priority)"), "seq"],
        postgresql_where=sa.text("queue_open AND pool IS NOT NULL"),
    )
    op.add_column("judgments", sa.Column("answer", postgresql.JSONB(), nullable=True))
    op.add_column("judgment_revisions", sa.Column("answer", postgresql.JSONB(), nullable=True))
    op.drop_constraint(op.f("ck_judgments_has_verdict"), "judgments", type_="check")
    op.create_check_constraint(
        op.f("ck_judgments_has_verdict"),
        "judgments",
        "choice_id IS NOT NULL OR ranking IS NOT NULL OR tie OR both_bad OR answer IS NOT NULL",
    )
    op.add_column("projects", sa.Column("subtasks_gate", sa.String(16), server_default="required", nullable=False))
    op.create_check_constraint(
        op.f("ck_projects_subtasks_gate"), "projects", "subtasks_gate IN ('required', 'optional')"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_projects_subtasks_gate"), "projects", type_="check")
    op.drop_column("projects", "subtasks_gate")
    op.drop_constraint(op.f("ck_judgments_has_verdict"), "judgments", type_="check")
    op.execute("DELETE FROM judgments WHERE answer IS NOT NULL")
    op.create_check_constraint(
        op.f("ck_judgments_has_verdict"), "judgments", "choice_id IS NOT NULL OR ranking IS NOT NULL OR tie OR both_bad"
    )
    op.drop_column("judgment_revisions", "answer")
    op.drop_column("judgments", "answer")
    op.drop_index("ix_items_pool", table_name="items")
    op.drop_index("ix_items_queue", table_name="items")
    op.create_index("ix_items_queue", "items", _QUEUE_COLUMNS, postgresql_where=sa.text("queue_open"))
    op.execute("DELETE FROM items WHERE parent_id IS NOT NULL")
    op.drop_constraint(op.f("ck_items_subtask_parent"), "items", type_="check")
    op.drop_constraint(op.f("ck_items_scale"), "items", type_="check")
    op.drop_constraint(op.f("ck_items_kind"), "items", type_="check")
    for column in (
        "pool",
        "span_end",
        "span_start",
        "span_message",
        "subtask_candidate_id",
        "scale_max",
        "scale_min",
        "question",
    ):
        op.drop_column("items", column)
