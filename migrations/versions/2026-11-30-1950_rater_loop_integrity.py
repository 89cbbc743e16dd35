"""The rater loop under concurrency and admin changes: membership suspension, ended leases,
why a judgment is not counted, per-item aggregate revisions, resumable picks

Revision ID: 3f6c1d2a9b10
Revises: 8e3d5a1c7b20
Create Date: 2026-11-30 19:50:00+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "3f6c1d2a9b10"
down_revision: str | Sequence[str] | None = "8e3d5a1c7b20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("project_members", sa.Column("suspended_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("project_members", sa.Column("suspended_reason", sa.Text(), nullable=True))
    op.add_column("project_members", sa.Column("resume_kb", sa.Integer(), nullable=True))
    op.add_column("project_members", sa.Column("resume_kp", sa.Float(), nullable=True))
    op.add_column("project_members", sa.Column("resume_seq", sa.BigInteger(), nullable=True))
    op.add_column("project_members", sa.Column("resume_epoch", sa.Integer(), nullable=True))
    op.add_column("projects", sa.Column("queue_epoch", sa.Integer(), server_default="0", nullable=False))

    op.drop_constraint(op.f("ck_assignments_status"), "assignments", type_="check")
    op.create_check_constraint(
        op.f("ck_assignments_status"), "assignments", "status IN ('leased', 'submitted', 'skipped', 'expired', 'ended')"
    )
    op.add_column("assignments", sa.Column("ended_reason", sa.String(length=16), nullable=True))

    op.add_column("judgments", sa.Column("surplus_reason", sa.String(length=16), nullable=True))
    op.execute("UPDATE judgments SET surplus_reason = 'filled' WHERE surplus")
    op.create_check_constraint(
        op.f("ck_judgments_surplus_reason"), "judgments", "surplus = (surplus_reason IS NOT NULL)"
    )

    op.add_column("items", sa.Column("aggregate_revision", sa.Integer(), server_default="0", nullable=False))
    op.add_column("items", sa.Column("aggregate_xid", sa.BigInteger(), nullable=True))
    # Items already complete carry their first aggregate, written by their last counted judgment.
    op.execute(
        """
        UPDATE items SET aggregate_revision = 1,
               aggregate_xid = (SELECT max(j.xid) FROM judgments j WHERE j.item_id = items.id AND NOT j.surplus)
        WHERE completed_at IS NOT NULL
        """
    )
    op.create_index(
        "ix_items_aggregate",
        "items",
        ["project_id", "aggregate_xid"],
        postgresql_where=sa.text("aggregate_xid IS NOT NULL"),
    )
    op.drop_index("ix_items_queue", table_name="items")
    op.create_index(
        "ix_items_queue",
        "items",
        ["project_id", sa.text("(-batch_priority)"), sa.text("(-priority)"), "seq"],
        postgresql_where=sa.text("queue_open"),
    )


def downgrade() -> None:
    op.drop_index("ix_items_queue", table_name="items")
    op.create_index(
        "ix_items_queue",
        "items",
        ["project_id", sa.text("batch_priority DESC"), sa.text("priority DESC"), "seq"],
        postgresql_where=sa.text("queue_open"),
    )
    op.drop_index("ix_items_aggregate", table_name="items")
    op.drop_column("items", "aggregate_xid")
    op.drop_column("items", "aggregate_revision")
    op.drop_constraint(op.f("ck_judgments_surplus_reason"), "judgments", type_="check")
    op.drop_column("judgments", "surplus_reason")
    op.drop_column("assignments", "ended_reason")
    op.execute("UPDATE assignments SET status = 'expired' WHERE status = 'ended'")
    op.drop_constraint(op.f("ck_assignments_status"), "assignments", type_="check")
    op.create_check_constraint(
        op.f("ck_assignments_status"), "assignments", "status IN ('leased', 'submitted', 'skipped', 'expired')"
    )
    op.drop_column("projects", "queue_epoch")
    for column in ("resume_epoch", "resume_seq", "resume_kp", "resume_kb", "suspended_reason", "suspended_at"):
        op.drop_column("project_members", column)
