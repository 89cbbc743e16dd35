"""judgments overview index

Revision ID: 5b0e2f7c9a41
Revises: 17c71f23c65a
Create Date: 2026-11-23 15:30:00.000000+00:00

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "5b0e2f7c9a41"
down_revision: str | Sequence[str] | None = "17c71f23c65a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Index the project overview's time window (index-only scans for throughput and per-rater stats)."""
    op.create_index(
        "ix_judgments_project_created",
        "judgments",
        ["project_id", "created_at"],
        unique=False,
        postgresql_include=["rater_id", "active_ms"],
    )


def downgrade() -> None:
    """Drop the overview index."""
    op.drop_index("ix_judgments_project_created", table_name="judgments")
