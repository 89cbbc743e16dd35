"""What a rater sees before labeling: their projects with today's and the remaining work.

Counted per page view, for all of the rater's projects in three small statements:
- judged today: the rater's judgments since midnight UTC (a range of `ix_judgments_project_created`,
  filtered on its included `rater_id`: the cost follows today's judgments, not the history);
- left: items imported (the batches' `item_count`, a handful of rows) minus items completed
  (the partial index `ix_items_completed`), so nothing scans the open queue.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import Batch, Item, Judgment, Project, ProjectMember, User


@dataclass(frozen=True, slots=True)
class RaterProject:
    project: Project
    judged_today: int
    left: int


def start_of_today() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _judged_today(rater: User, project_ids: list[uuid.UUID]):  # type: ignore[no-untyped-def]
    return (
        select(Judgment.project_id, func.count())
        .where(
            Judgment.project_id.in_(project_ids),
            Judgment.created_at >= start_of_today(),
            Judgment.rater_id == rater.id,
        )
        .group_by(Judgment.project_id)
    )


async def judged_today(session: AsyncSession, *, rater: User, project: Project) -> int:
    """How many judgments this rater made in this project since midnight UTC."""
    return (await _counts(session, _judged_today(rater, [project.id]))).get(project.id, 0)


async def _counts(session: AsyncSession, query) -> dict[uuid.UUID, int]:  # type: ignore[no-untyped-def]
    return {project_id: int(n) for project_id, n in (await session.execute(query)).all()}


async def rater_projects(session: AsyncSession, *, rater: User) -> list[RaterProject]:
    """The projects this user labels in (their memberships), active first, with today's count and what is left."""
    projects = list(
        await session.scalars(
            select(Project)
            .join(ProjectMember, ProjectMember.project_id == Project.id)
            .where(ProjectMember.user_id == rater.id, Project.archived_at.is_(None), Project.deleted_at.is_(None))
            .order_by(Project.is_active.desc(), Project.name)
        )
    )
    ids = [p.id for p in projects]
    if not ids:
        return []
    judged = await _counts(session, _judged_today(rater, ids))
    imported = await _counts(
        session,
        select(Batch.project_id, func.sum(Batch.item_count))
        .where(Batch.project_id.in_(ids), Batch.archived_at.is_(None))
        .group_by(Batch.project_id),
    )
    completed = await _counts(
        session,
        select(Item.project_id, func.count())
        .join(Batch, Batch.id == Item.batch_id)
        .where(Item.project_id.in_(ids), Item.completed_at.is_not(None), Batch.archived_at.is_(None))
        .group_by(Item.project_id),
    )
    return [
        RaterProject(
            project=p,
            judged_today=judged.get(p.id, 0),
            left=max(0, imported.get(p.id, 0) - completed.get(p.id, 0)),
        )
        for p in projects
    ]
