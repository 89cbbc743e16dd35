"""What each change of the serving order moved ahead, so raters' resume points survive it

Revision ID: 6e2f0a9c4b17
Revises: 4c1e9b7a2d30
Create Date: 2026-12-01 04:30:00+00:00

No rows for the epochs before this revision: a rater whose resume point is older than the
newest epoch walks the order from the start once, as before (labeling/queue.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "6e2f0a9c4b17"
down_revision: str | Sequence[str] | None = "4c1e9b7a2d30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queue_moves",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("from_start", sa.Boolean(), nullable=False),
        sa.Column("rewind_kb", sa.Integer(), nullable=True),
        sa.Column("rewind_kp", sa.Float(), nullable=True),
        sa.Column("rewind_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_queue_moves_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("project_id", "epoch", name=op.f("pk_queue_moves")),
    )


def downgrade() -> None:
    op.drop_table("queue_moves")
