"""Archive a batch or a project (reversible), delete a project's data (its row stays as a tombstone)

Revision ID: 6a75ec15a6d1
Revises: 6e2f0a9c4b17
Create Date: 2026-12-01 05:00:00+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "6a75ec15a6d1"
down_revision: str | Sequence[str] | None = "6e2f0a9c4b17"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("batches", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("projects", sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("projects", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("projects", "deleted_at")
    op.drop_column("projects", "archived_at")
    op.drop_column("batches", "archived_at")
