"""Reward models reported by trainer workers, and each item's latest score

Revision ID: 8e3d5a1c7b20
Revises: dcb0fb644613
Create Date: 2026-11-23 17:00:00+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "8e3d5a1c7b20"
down_revision: str | Sequence[str] | None = "dcb0fb644613"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reward_models",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("features", sa.String(length=200), nullable=False),
        sa.Column("cursor_from", sa.String(length=200), nullable=True),
        sa.Column("cursor_to", sa.String(length=200), nullable=False),
        sa.Column("metrics", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("artefact_path", sa.Text(), nullable=True),
        sa.Column("artefact_sha256", sa.String(length=64), nullable=True),
        sa.Column("trainer_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_reward_models_version")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_reward_models_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["trainer_id"], ["users.id"], name=op.f("fk_reward_models_trainer_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reward_models")),
        sa.UniqueConstraint("project_id", "features", "cursor_to", name="uq_reward_models_training_run"),
        sa.UniqueConstraint("project_id", "version", name=op.f("uq_reward_models_project_id_version")),
    )
    op.create_table(
        "item_scores",
        sa.Column("item_id", sa.Uuid(), nullable=False),
        sa.Column("reward_model_id", sa.Uuid(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("p", sa.Float(), nullable=False),
        sa.Column("uncertainty", sa.Float(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("p BETWEEN 0 AND 1", name=op.f("ck_item_scores_p")),
        sa.CheckConstraint("uncertainty BETWEEN 0 AND 1", name=op.f("ck_item_scores_uncertainty")),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_item_scores_item_id_items"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["reward_model_id"],
            ["reward_models.id"],
            name=op.f("fk_item_scores_reward_model_id_reward_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_item_scores")),
    )
    op.create_index("ix_item_scores_reward_model_id", "item_scores", ["reward_model_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_item_scores_reward_model_id", table_name="item_scores")
    op.drop_table("item_scores")
    op.drop_table("reward_models")
