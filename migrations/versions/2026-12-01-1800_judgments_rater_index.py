"""One index for a rater's judgments: (rater_id, project_id, seq) replaces (project_id, rater_id, seq) and (rater_id)

Every query that reads ix_judgments_rater names both the project and the rater (equalities), and the
foreign key's cascade from users needs rater_id first: one index serves both, so a verdict's INSERT
enters one index fewer (docs/BENCHMARKS.md, "The rater loop's cost per annotation, a fifth time").

Revision ID: 8c3f1b7e5a20
Revises: 5e1c0a7d2b94
Create Date: 2026-12-01 18:00:00+00:00

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "8c3f1b7e5a20"
down_revision: str | Sequence[str] | None = "5e1c0a7d2b94"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_judgments_rater", table_name="judgments")
    op.create_index("ix_judgments_rater", "judgments", ["rater_id", "project_id", "seq"])
    op.drop_index("ix_judgments_rater_id", table_name="judgments")


def downgrade() -> None:
    op.create_index("ix_judgments_rater_id", "judgments", ["rater_id"])
    op.drop_index("ix_judgments_rater", table_name="judgments")
    op.create_index("ix_judgments_rater", "judgments", ["project_id", "rater_id", "seq"])
