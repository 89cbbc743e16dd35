"""Search vectors move to their own table, written after the import commits (server/items/search.py)

Revision ID: 5e1c0a7d2b94
Revises: 7d1e4a2c9b60
Create Date: 2026-12-01 08:00:00+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "5e1c0a7d2b94"
down_revision: str | Sequence[str] | None = "7d1e4a2c9b60"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No foreign keys: the indexer must wait for no lock (see server/items/search.py).
    op.create_table(
        "item_search",
        sa.Column("item_id", sa.Uuid(), primary_key=True),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("search", postgresql.TSVECTOR(), nullable=False),
    )
    op.create_table(
        "search_pending",
        sa.Column("batch_id", sa.Uuid(), primary_key=True),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("after_seq", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.execute(
        "INSERT INTO item_search (item_id, project_id, search)"
        " SELECT id, project_id, search FROM items WHERE search IS NOT NULL"
    )
    op.create_index("ix_item_search_words", "item_search", ["search"], postgresql_using="gin")
    op.drop_index("ix_items_search", table_name="items")
    op.drop_column("items", "search")


def downgrade() -> None:
    op.add_column("items", sa.Column("search", postgresql.TSVECTOR(), nullable=True))
    op.execute("UPDATE items i SET search = s.search FROM item_search s WHERE s.item_id = i.id")
    op.create_index("ix_items_search", "items", ["search"], postgresql_using="gin")
    op.drop_table("search_pending")
    op.drop_table("item_search")
