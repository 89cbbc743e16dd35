"""The rater's shift: a reason code with each skip, and the project's break reminder interval

Revision ID: 0d846403cab5
Revises: d1ad618637a0
Create Date: 2026-11-30 23:00:00+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0d846403cab5"
down_revision: str | Sequence[str] | None = "d1ad618637a0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("assignments", sa.Column("skip_reason_code", sa.String(length=16), nullable=True))
    op.create_check_constraint(
        op.f("ck_assignments_skip_reason_code"),
        "assignments",
        "skip_reason_code IS NULL OR skip_reason_code IN ('unclear', 'harmful', 'cannot_judge', 'other')",
    )
    op.add_column(
        "projects",
        sa.Column("break_reminder_minutes", sa.Integer(), server_default="50", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_projects_break_reminder_minutes"), "projects", "break_reminder_minutes BETWEEN 0 AND 480"
    )


def downgrade() -> None:
    op.drop_constraint("ck_projects_break_reminder_minutes", "projects", type_="check")
    op.drop_column("projects", "break_reminder_minutes")
    op.drop_constraint("ck_assignments_skip_reason_code", "assignments", type_="check")
    op.drop_column("assignments", "skip_reason_code")
