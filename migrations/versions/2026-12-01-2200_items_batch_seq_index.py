"""A batch's items in import order: (batch_id, seq) replaces (batch_id)

The search indexer writes a batch's vectors a chunk at a time in import order, and the data browser's
word search computes the vectors of the items the indexer has not reached. Both read "the batch's items
past a place"; with only (batch_id) and (project_id, seq), PostgreSQL combined the two in a bitmap and
sorted every item left in the batch for each chunk, so indexing a 100,000-item batch read it 200 times
(65 s of PostgreSQL time instead of the vectors' own cost; docs/BENCHMARKS.md, "The search index at
`make bench`'s size"). One index serves both, and every query that reads a batch's items as before
(batch_id leads): the import still enters the same number of indexes.

Revision ID: 4d9a2c6e8f13
Revises: 8c3f1b7e5a20
Create Date: 2026-12-01 22:00:00+00:00

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "4d9a2c6e8f13"
down_revision: str | Sequence[str] | None = "8c3f1b7e5a20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_items_batch_seq", "items", ["batch_id", "seq"])
    op.drop_index("ix_items_batch_id", table_name="items")


def downgrade() -> None:
    op.create_index("ix_items_batch_id", "items", ["batch_id"])
    op.drop_index("ix_items_batch_seq", table_name="items")
