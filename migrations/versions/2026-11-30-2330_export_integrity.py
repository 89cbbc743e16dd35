"""Exports survive a backup and restore, and stopped downloads are marked: assay_meta, assay_xid(), aborted

Revision ID: cfdec5e10c79
Revises: 5b7e2c9d4a13
Create Date: 2026-11-30 23:30:00+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "cfdec5e10c79"
down_revision: str | Sequence[str] | None = "5b7e2c9d4a13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_XID = "(pg_current_xact_id()::text)::bigint"


def upgrade() -> None:
    op.create_table(
        "assay_meta",
        sa.Column("id", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("database_id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("xid_offset", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("id", name=op.f("ck_assay_meta_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assay_meta")),
    )
    op.execute("INSERT INTO assay_meta (id) VALUES (true)")
    # Every xid stamp goes through this function (server/models/xid.py): the cluster's counter
    # plus the offset that settle() raises after a restore into a younger cluster, written in as a
    # constant (server/exports/identity.py:stamp_function, which settle() uses to change it).
    op.execute(f"CREATE FUNCTION assay_xid() RETURNS bigint LANGUAGE sql VOLATILE AS $$ SELECT {_OLD_XID} + 0 $$")
    op.alter_column("judgments", "xid", server_default=sa.text("assay_xid()"))

    op.add_column("exports", sa.Column("aborted_reason", sa.String(length=32), nullable=True))
    op.drop_constraint(op.f("ck_exports_status"), "exports", type_="check")
    op.create_check_constraint(op.f("ck_exports_status"), "exports", "status IN ('streaming', 'complete', 'aborted')")
    # Downloads cut off before this version stayed 'streaming' forever.
    op.execute(
        "UPDATE exports SET status = 'aborted', aborted_reason = 'interrupted', finished_at = now() "
        "WHERE status = 'streaming' AND created_at < now() - interval '1 hour'"
    )


def downgrade() -> None:
    op.execute("UPDATE exports SET status = 'complete' WHERE status = 'aborted'")
    op.drop_constraint(op.f("ck_exports_status"), "exports", type_="check")
    op.create_check_constraint(op.f("ck_exports_status"), "exports", "status IN ('streaming', 'complete')")
    op.drop_column("exports", "aborted_reason")
    op.alter_column("judgments", "xid", server_default=sa.text(_OLD_XID))
    op.execute("DROP FUNCTION assay_xid()")
    op.drop_table("assay_meta")
