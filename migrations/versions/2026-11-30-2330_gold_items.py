"""Gold items: served apart from the queue in their own order, judged at most once per rater

Revision ID: 9a4c2e7d1b05
Revises: ff81597b2670
Create Date: 2026-11-30 23:30:00+00:00

Gold already stored (accepted at import before this revision, never read) is checked against
the gold shape: a fitting answer becomes a gold item; any other value is moved to the item's
metadata under `unchecked_gold` and counted in the migration's output, so nothing is lost.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.quality.gold import GoldError, parse_gold

# revision identifiers, used by Alembic.
revision: str = "9a4c2e7d1b05"
down_revision: str | Sequence[str] | None = "ff81597b2670"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("CREATE SEQUENCE items_gold_seq")
    op.add_column("items", sa.Column("gold_seq", sa.BigInteger(), nullable=True))
    op.add_column("assignments", sa.Column("gold", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("judgments", sa.Column("gold", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("project_members", sa.Column("gold_resume", sa.BigInteger(), nullable=True))

    connection = op.get_bind()
    stored = connection.execute(
        sa.text(
            "SELECT i.id, i.gold, count(c.id) AS n FROM items i JOIN candidates c ON c.item_id = i.id"
            " WHERE i.gold IS NOT NULL GROUP BY i.id"
        )
    ).all()
    moved = 0
    for item_id, gold, candidates in stored:
        try:
            answer = parse_gold(gold, candidates)
        except GoldError:
            moved += 1
            connection.execute(
                sa.text(
                    "UPDATE items SET metadata = metadata || jsonb_build_object('unchecked_gold', gold), gold = NULL"
                    " WHERE id = :id"
                ),
                {"id": item_id},
            )
            continue
        connection.execute(
            sa.text(
                "UPDATE items SET gold = CAST(:gold AS jsonb), gold_seq = nextval('items_gold_seq'), wanted = 0,"
                " completed_at = NULL WHERE id = :id"
            ),
            {"id": item_id, "gold": answer.model_dump_json(exclude_none=True)},
        )
    if moved:
        logging.getLogger("alembic.runtime.migration").warning(
            "gold: %d stored gold value(s) did not fit the gold shape; moved to metadata.unchecked_gold", moved
        )

    op.drop_constraint(op.f("ck_items_wanted"), "items", type_="check")
    op.create_check_constraint(op.f("ck_items_wanted"), "items", "wanted >= 1 OR gold_seq IS NOT NULL")
    op.create_check_constraint(op.f("ck_items_gold_order"), "items", "(gold IS NULL) = (gold_seq IS NULL)")
    op.create_check_constraint(op.f("ck_items_gold_not_queued"), "items", "gold_seq IS NULL OR wanted = 0")
    op.create_index(
        "ix_items_gold", "items", ["project_id", "gold_seq"], postgresql_where=sa.text("gold_seq IS NOT NULL")
    )
    op.create_index(
        "ix_judgments_gold", "judgments", ["project_id", "rater_id", "seq"], postgresql_where=sa.text("gold")
    )


def downgrade() -> None:
    op.drop_index("ix_judgments_gold", table_name="judgments", postgresql_where=sa.text("gold"))
    op.drop_index("ix_items_gold", table_name="items", postgresql_where=sa.text("gold_seq IS NOT NULL"))
    op.drop_constraint(op.f("ck_items_gold_not_queued"), "items", type_="check")
    op.drop_constraint(op.f("ck_items_gold_order"), "items", type_="check")
    op.drop_constraint(op.f("ck_items_wanted"), "items", type_="check")
    op.execute(
        "UPDATE items i SET wanted = p.overlap FROM projects p WHERE p.id = i.project_id AND i.gold_seq IS NOT NULL"
    )
    op.create_check_constraint(op.f("ck_items_wanted"), "items", "wanted >= 1")
    op.drop_column("project_members", "gold_resume")
    op.drop_column("judgments", "gold")
    op.drop_column("assignments", "gold")
    op.drop_column("items", "gold_seq")
    op.execute("DROP SEQUENCE items_gold_seq")
