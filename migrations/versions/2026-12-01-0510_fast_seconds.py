"""Projects: the speed threshold of the quality flags (fast_seconds)

Revision ID: 182a48d5d691
Revises: 6a75ec15a6d1
Create Date: 2026-12-01 05:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "182a48d5d691"
down_revision: str | Sequence[str] | None = "6a75ec15a6d1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("fast_seconds", sa.Float(), server_default="3", nullable=False))
    op.create_check_constraint(op.f("ck_projects_fast_seconds"), "projects", "fast_seconds > 0 AND fast_seconds <= 600")


def downgrade() -> None:
    op.drop_constraint(op.f("ck_projects_fast_seconds"), "projects", type_="check")
    op.drop_column("projects", "fast_seconds")
