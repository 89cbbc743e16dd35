"""The data browser: full-text search over prompts and responses, and indexes for its filters

Revision ID: ff81597b2670
Revises: 0d846403cab5
Create Date: 2026-11-30 23:00:00+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "ff81597b2670"
down_revision: str | Sequence[str] | None = "0d846403cab5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The words of an item (prompt turns and every response), bounded: the import (batches/service.py) and the
# backfill below index `to_tsvector('english', assay_search_text(prompt, candidates))`.
SEARCH_TEXT = """
CREATE FUNCTION assay_search_text(prompt jsonb, candidates jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT left(concat_ws(' ',
    CASE jsonb_typeof(prompt) WHEN 'string' THEN prompt #>> '{}'
      ELSE (SELECT string_agg(m ->> 'content', ' ') FROM jsonb_array_elements(prompt) m) END,
    (SELECT string_agg(concat_ws(' ', c ->> 'text',
        (SELECT string_agg(m ->> 'content', ' ')
           FROM jsonb_array_elements(coalesce(c -> 'messages', '[]'::jsonb)) m)), ' ')
       FROM jsonb_array_elements(candidates) c)), 200000)
$$
"""


def upgrade() -> None:
    op.execute(SEARCH_TEXT)
    op.add_column("items", sa.Column("search", postgresql.TSVECTOR(), nullable=True))
    op.execute(
        """
        UPDATE items SET search = to_tsvector('english', assay_search_text(items.prompt,
            (SELECT jsonb_agg(jsonb_build_object('text', c.text, 'messages', c.messages) ORDER BY c.position)
               FROM candidates c WHERE c.item_id = items.id)))
        """
    )
    op.create_index("ix_items_search", "items", ["search"], postgresql_using="gin")
    op.create_index("ix_items_project_seq", "items", ["project_id", "seq"])
    op.create_index("ix_judgments_rater", "judgments", ["project_id", "rater_id", "seq"])
    op.create_index("ix_judgments_tie", "judgments", ["project_id", "item_id"], postgresql_where=sa.text("tie"))
    op.create_index(
        "ix_judgments_both_bad", "judgments", ["project_id", "item_id"], postgresql_where=sa.text("both_bad")
    )
    op.create_index(
        "ix_judgments_rationale",
        "judgments",
        ["project_id", "item_id"],
        postgresql_where=sa.text("rationale <> ''"),
    )
    op.create_index(
        "ix_assignments_skipped",
        "assignments",
        ["project_id", "item_id"],
        postgresql_where=sa.text("status = 'skipped'"),
    )


def downgrade() -> None:
    op.drop_index("ix_assignments_skipped", table_name="assignments")
    op.drop_index("ix_judgments_rationale", table_name="judgments")
    op.drop_index("ix_judgments_both_bad", table_name="judgments")
    op.drop_index("ix_judgments_tie", table_name="judgments")
    op.drop_index("ix_judgments_rater", table_name="judgments")
    op.drop_index("ix_items_project_seq", table_name="items")
    op.drop_index("ix_items_search", table_name="items")
    op.drop_column("items", "search")
    op.execute("DROP FUNCTION assay_search_text(jsonb, jsonb)")
