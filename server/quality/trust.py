"""Which members of a project are trusted: one definition, as SQL for any query.

A member is trusted when they are qualified — they passed the project's qualification round or
an admin admitted them, the project has no round, or the account is a model (rounds apply to
human accounts only) — and not suspended in the project. Evaluated when a query runs (an export
pull, a quality page), so it follows suspensions and reinstatements as they happen.

Exports (`raters=trusted`) evaluate it when a pull is made, from the snapshot the pull reads: rows
already delivered are never retracted (a rater suspended later keeps the rows earlier pulls
delivered), and a `raters=trusted` pull skips, for good, the judgments of raters untrusted at that
moment (a later reinstatement does not deliver them to that cursor; a full pull without `after`
does). A rater no longer a member (removed) is not trusted: nobody vouches for them any more.

Each clause is correlated on a `project_members` row (the model, or an alias of it), so it fits
any query that has one in its FROM; `trusted_raters(project_id)` is the set of user ids, for
`Judgment.rater_id.in_(...)`. `trusted_sql("m")` is the same for text SQL with `m` the alias.
"""

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import aliased

from server.models import Project, ProjectMember, User, UserKind


def qualified(member: Any = ProjectMember) -> ColumnElement[bool]:
    """Passed or admitted to the qualification round, or none applies."""
    project, user = aliased(Project), aliased(User)  # never correlated with the outer query's own
    round_items = select(project.qualification_items).where(project.id == member.project_id).scalar_subquery()
    kind = select(user.kind).where(user.id == member.user_id).scalar_subquery()
    clause: ColumnElement[bool] = or_(member.qualified_at.is_not(None), round_items == 0, kind == UserKind.model)
    return clause


def not_suspended(member: Any = ProjectMember) -> ColumnElement[bool]:
    clause: ColumnElement[bool] = member.suspended_at.is_(None)
    return clause


def trusted(member: Any = ProjectMember) -> ColumnElement[bool]:
    """Qualified and not suspended in the project."""
    return and_(qualified(member), not_suspended(member))


def trusted_raters(project_id: uuid.UUID) -> Select[Any]:
    """The ids of the project's trusted members."""
    return select(ProjectMember.user_id).where(ProjectMember.project_id == project_id, trusted())


def trusted_sql(m: str = "m") -> str:
    """`trusted()` for text SQL, over the `project_members` row aliased `m`."""
    return (
        f"({m}.suspended_at IS NULL AND ({m}.qualified_at IS NOT NULL"
        f" OR (SELECT p.qualification_items FROM projects p WHERE p.id = {m}.project_id) = 0"
        f" OR (SELECT u.kind FROM users u WHERE u.id = {m}.user_id) = 'model'))"
    )


def rater_is_trusted_sql(project_id: str, rater_id: str) -> str:
    """A boolean SQL expression: the rater `rater_id` is a trusted member of project `project_id` (columns)."""
    return (
        f"EXISTS (SELECT 1 FROM project_members m WHERE m.project_id = {project_id} "
        f"AND m.user_id = {rater_id} AND {trusted_sql('m')})"
    )
