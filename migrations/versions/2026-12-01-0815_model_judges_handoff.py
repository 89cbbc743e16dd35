"""Model judges and the hand-off: a project's rule, judgments' confidence and kind, items' label source

Revision ID: 7d1e4a2c9b60
Revises: 7d21c4e8a0b5
Create Date: 2026-12-01 08:15:00+00:00

Issue 12. `projects.handoff` holds the routing rule (null: every item goes to humans).
Judgments record who judged (`rater_kind`, copied from the account so exports filter without a
join) and a model's `confidence`. Items record the model phase's outcome: `model_judged` counts
model judgments against the rule's `min_judges`, `label_source` is 'model' for an item the models
resolved, `handoff_reason` says why it went to humans, `spot_check` marks a resolved-looking item
sent to humans anyway. `ix_items_models` is the model judges' pick: items still in the model phase.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "7d1e4a2c9b60"
down_revision: str | Sequence[str] | None = "7d21c4e8a0b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("handoff", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("judgments", sa.Column("confidence", sa.Float(), nullable=True))
    op.add_column("judgments", sa.Column("rater_kind", sa.String(length=16), server_default="human", nullable=False))
    op.create_check_constraint(op.f("ck_judgments_confidence"), "judgments", "confidence BETWEEN 0 AND 1")
    op.create_check_constraint(op.f("ck_judgments_rater_kind"), "judgments", "rater_kind IN ('human', 'model')")
    op.add_column("items", sa.Column("model_judged", sa.SmallInteger(), server_default="0", nullable=False))
    op.add_column("items", sa.Column("label_source", sa.String(length=16), nullable=True))
    op.add_column("items", sa.Column("handoff_reason", sa.Text(), nullable=True))
    op.add_column("items", sa.Column("spot_check", sa.Boolean(), server_default="false", nullable=False))
    op.create_check_constraint(op.f("ck_items_label_source"), "items", "label_source IN ('model')")
    op.create_check_constraint(op.f("ck_items_model_judged"), "items", "model_judged >= 0")
    op.create_index(
        "ix_items_models",
        "items",
        ["project_id", "seq"],
        postgresql_where=sa.text("awaiting_models AND NOT paused AND label_source IS NULL"),
    )
    op.create_index(
        "ix_items_handoff",
        "items",
        ["project_id"],
        postgresql_where=sa.text("label_source IS NOT NULL OR handoff_reason IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_items_handoff", table_name="items")
    op.drop_index("ix_items_models", table_name="items")
    op.drop_constraint(op.f("ck_items_model_judged"), "items", type_="check")
    op.drop_constraint(op.f("ck_items_label_source"), "items", type_="check")
    op.drop_column("items", "spot_check")
    op.drop_column("items", "handoff_reason")
    op.drop_column("items", "label_source")
    op.drop_column("items", "model_judged")
    op.drop_constraint(op.f("ck_judgments_rater_kind"), "judgments", type_="check")
    op.drop_constraint(op.f("ck_judgments_confidence"), "judgments", type_="check")
    op.drop_column("judgments", "rater_kind")
    op.drop_column("judgments", "confidence")
    op.drop_column("projects", "handoff")
