"""Items held back from human raters: awaiting model judges (hand-off) or open subtasks (task trees)

Revision ID: 5b0c7e3a9d42
Revises: efbb8d11c34f
Create Date: 2026-12-01 08:00:00+00:00

Issue 12. `queue_open`, which the pick's partial index is built on, also requires
`NOT awaiting_models AND open_subtasks = 0`. PostgreSQL 15 cannot change a generated column's
expression, so the column (and the index on it) is dropped and added again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5b0c7e3a9d42"
down_revision: str | Sequence[str] | None = "efbb8d11c34f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = "NOT paused AND leased + judged < wanted"
NEW = "NOT paused AND NOT awaiting_models AND open_subtasks = 0 AND leased + judged < wanted"


def _queue_open(expression: str) -> None:
    op.drop_index("ix_items_queue", table_name="items")
    op.drop_column("items", "queue_open")
    op.add_column(
        "items", sa.Column("queue_open", sa.Boolean(), sa.Computed(expression, persisted=True), nullable=False)
    )
    op.create_index(
        "ix_items_queue",
        "items",
        ["project_id", sa.text("(-batch_priority)"), sa.text("(-priority)"), "seq"],
        postgresql_where=sa.text("queue_open"),
    )


def upgrade() -> None:
    op.add_column("items", sa.Column("awaiting_models", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("items", sa.Column("open_subtasks", sa.Integer(), server_default="0", nullable=False))
    op.create_check_constraint(op.f("ck_items_open_subtasks"), "items", "open_subtasks >= 0")
    _queue_open(NEW)


def downgrade() -> None:
    _queue_open(OLD)
    op.drop_constraint(op.f("ck_items_open_subtasks"), "items", type_="check")
    op.drop_column("items", "open_subtasks")
    op.drop_column("items", "awaiting_models")
