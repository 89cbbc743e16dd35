"""Project instructions rendered once when saved: projects.instructions_html

Revision ID: 5b7e2c9d4a13
Revises: 7efad621c37e
Create Date: 2026-11-30 20:10:00+00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.markdown import render_markdown

# revision identifiers, used by Alembic.
revision: str = "5b7e2c9d4a13"
down_revision: str | Sequence[str] | None = "7efad621c37e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("projects", sa.Column("instructions_html", sa.Text(), server_default="", nullable=False))
    # Existing instructions are rendered here once, as the service renders them on every save.
    connection = op.get_bind()
    projects = sa.table("projects", sa.column("id", sa.Uuid()), sa.column("instructions", sa.Text()))
    rendered = sa.table("projects", sa.column("id", sa.Uuid()), sa.column("instructions_html", sa.Text()))
    for project_id, instructions in connection.execute(sa.select(projects.c.id, projects.c.instructions)).all():
        if instructions:
            connection.execute(
                sa.update(rendered)
                .where(rendered.c.id == project_id)
                .values(instructions_html=render_markdown(instructions))
            )


def downgrade() -> None:
    op.drop_column("projects", "instructions_html")
