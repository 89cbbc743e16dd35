"""Taking a verdict back: a rater revises their own judgment within the project's window.

A judgment keeps its identity. A revision copies the verdict it replaces into
`judgment_revisions` (with the time that verdict was sent), writes the new one into the
judgment row, counts `revision` up and restamps the row's `xid`, so an incremental export
delivers every row of the judgment again with its new revision. Until the new verdict is sent
the stored one counts; a revision never counts twice (the judgment's slot on its item is the
same). When the judgment counts toward a completed item, the item's aggregate changes: it gets a
new aggregate revision and `aggregate_xid`, exactly as a completion does (labeling/service.py),
so completed-item exports deliver it again.

Locks, in the order of docs/ARCHITECTURE.md: the rater's membership, the judgment's assignment,
its item, then the judgment row itself. A revision never takes the project row, so it cannot
wait on an overlap change that holds the project and waits on items.
"""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.service import Principal
from server.critiques import service as critiques
from server.errors import Conflict, Forbidden, Invalid, NotFound
from server.items import subtasks as trees
from server.labeling.rules import validate_answer, validate_verdict
from server.labeling.schemas import JudgmentCreate
from server.labeling.service import HUMAN_CONFIDENCE, _lock_membership, same_verdict
from server.models import Assignment, Item, Judgment, JudgmentRevision, Project, User, UserKind
from server.models.xid import CURRENT_XID
from server.projects.service import accessible_project_ids

RECENT_LIMIT = 50  # judgments on the "my recent judgments" page

ACCOUNT_SUSPENDED = "Your rating access is suspended; contact the project admin."
NOT_YOURS = "This judgment is another rater's: only the rater who sent a verdict can revise it."
FEEDBACK_SHOWN = "You were shown the known answer to this item after sending your verdict, so it cannot be revised."
MODEL_NOT_REVISABLE = "A model judge's verdict cannot be revised: the item's hand-off was decided on it."
REVISION_OFF = "Revision is turned off in project '{name}': a verdict, once sent, is final."
WINDOW_CLOSED = (
    "The time to revise this judgment ran out at {closed} UTC: project '{name}' allows revisions for "
    "{minutes} minutes after a verdict is sent."
)

# A revised judgment that counts toward a completed item changes that item's aggregate.
_NEW_AGGREGATE = text(
    f"""
    UPDATE items SET aggregate_revision = aggregate_revision + 1, aggregate_xid = {CURRENT_XID}
    WHERE id = :item_id AND completed_at IS NOT NULL
    """
)


@dataclass(frozen=True, slots=True)
class Revised:
    judgment: Judgment
    project: Project
    created: bool  # False when the verdict sent was the stored one: nothing changed


def window_closes(judgment: Judgment, project: Project) -> datetime:
    """When the judgment's revision window ends: counted from the verdict first sent."""
    return judgment.created_at + timedelta(minutes=project.revision_window_minutes)


def revisable(judgment: Judgment, project: Project, now: datetime) -> bool:
    return (
        not judgment.feedback_shown and project.revision_window_minutes > 0 and now < window_closes(judgment, project)
    )


def _check_window(judgment: Judgment, project: Project, now: datetime) -> None:
    if judgment.feedback_shown:  # the answer was shown: a revision would only copy it
        raise Conflict(FEEDBACK_SHOWN)
    if project.revision_window_minutes == 0:
        raise Conflict(REVISION_OFF.format(name=project.name))
    closes = window_closes(judgment, project)
    if now >= closes:
        raise Conflict(
            WINDOW_CLOSED.format(
                closed=closes.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
                name=project.name,
                minutes=project.revision_window_minutes,
            )
        )


async def _visible(session: AsyncSession, rater: User, project_id: uuid.UUID) -> bool:
    visible = accessible_project_ids(Principal(user=rater))
    return await session.scalar(select(Project.id).where(Project.id == project_id, Project.id.in_(visible))) is not None


async def own_judgment(session: AsyncSession, *, judgment_id: uuid.UUID, rater: User) -> tuple[Judgment, Project]:
    """The caller's judgment and its project (unlocked); 409 for a colleague's, 404 for one they cannot see."""
    row = (
        await session.execute(
            select(Judgment, Project).join(Project, Project.id == Judgment.project_id).where(Judgment.id == judgment_id)
        )
    ).one_or_none()
    missing = NotFound(f"No judgment {judgment_id} is visible to you.")
    if row is None:
        raise missing
    judgment, project = row
    if judgment.rater_id != rater.id:
        if not await _visible(session, rater, project.id):
            raise missing
        raise Conflict(NOT_YOURS)
    return judgment, project


async def revise(session: AsyncSession, *, judgment_id: uuid.UUID, rater: User, data: JudgmentCreate) -> Revised:
    """Replace the verdict of the caller's judgment with `data` as a new revision (flushes, never commits).

    Refused with 409 and a sentence when the judgment is another rater's, revision is off in the
    project or its window has closed; 422 when the verdict breaks the project's rules. Sending the
    stored verdict again changes nothing (a retried request).
    """
    if data.confidence is not None and rater.kind != UserKind.model:
        raise Invalid(HUMAN_CONFIDENCE)
    judgment, project = await own_judgment(session, judgment_id=judgment_id, rater=rater)
    if rater.suspended_at is not None:
        raise Forbidden(ACCOUNT_SUSPENDED)
    if judgment.rater_kind == UserKind.model:
        raise Conflict(MODEL_NOT_REVISABLE)
    _check_window(judgment, project, datetime.now(UTC))
    # The lock order: membership → assignment → item → the judgment row.
    await _lock_membership(session, project, rater)
    assignment = await session.scalar(
        select(Assignment).where(Assignment.id == judgment.assignment_id).with_for_update()
    )
    assert assignment is not None  # a judgment's assignment is deleted only with it
    item = await session.scalar(
        select(Item).where(Item.id == judgment.item_id).with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )  # fmt: skip
    assert item is not None
    locked = await session.scalar(
        select(Judgment).where(Judgment.id == judgment.id).with_for_update().execution_options(populate_existing=True)
    )
    assert locked is not None
    judgment = locked
    if item.kind == "comparison":
        verdict = validate_verdict(project, list(assignment.shown_order), data)
        answer = trees.check_answer(item, data.answer)
    else:  # a subtask's answer (items/subtasks.py)
        verdict, answer = validate_answer(project, item, data)
    extras = await critiques.check(
        session,
        project=project,
        assignment=assignment,
        ratings=data.critique_ratings,
        critiques=data.critiques,
        flaws=data.flaws,
    )
    if same_verdict(judgment, data) and extras.key() == (await critiques.stored(session, judgment)).key():
        return Revised(judgment=judgment, project=project, created=False)
    await session.execute(
        insert(JudgmentRevision).values(
            judgment_id=judgment.id,
            revision=judgment.revision,
            choice_id=judgment.choice_id,
            ranking=judgment.ranking,
            strength=judgment.strength,
            tie=judgment.tie,
            both_bad=judgment.both_bad,
            rationale=judgment.rationale,
            active_ms=judgment.active_ms,
            answer=judgment.answer,
            sent_at=judgment.revised_at or judgment.created_at,
        )
    )
    revised = await session.scalar(
        update(Judgment)
        .where(Judgment.id == judgment.id)
        .values(
            choice_id=verdict.choice,
            ranking=verdict.ranking,
            strength=verdict.strength,
            tie=data.tie,
            both_bad=data.both_bad,
            rationale=verdict.rationale,
            active_ms=data.active_ms,
            answer=answer,
            revision=Judgment.revision + 1,
            revised_at=func.now(),
            xid=text(CURRENT_XID),
        )
        .returning(Judgment)
        .execution_options(populate_existing=True)
    )
    assert revised is not None
    await critiques.store(session, judgment=revised, rater=rater, extras=extras, replace=True)
    if not revised.surplus:
        await session.execute(_NEW_AGGREGATE, {"item_id": revised.item_id})
    await session.flush()
    return Revised(judgment=revised, project=project, created=True)


async def history(session: AsyncSession, judgment: Judgment) -> list[JudgmentRevision]:
    """The verdicts a judgment's revisions replaced, oldest first."""
    return list(
        await session.scalars(
            select(JudgmentRevision)
            .where(JudgmentRevision.judgment_id == judgment.id)
            .order_by(JudgmentRevision.revision)
        )
    )


@dataclass(frozen=True, slots=True)
class Recent:
    judgment: Judgment
    item: Item
    assignment: Assignment
    closes: datetime


async def recent(session: AsyncSession, *, project: Project, rater: User, limit: int = RECENT_LIMIT) -> list[Recent]:
    """The rater's judgments in the project that can still be revised, last sent first (a gold verdict
    whose answer was shown is final)."""
    if project.revision_window_minutes == 0:
        return []
    since = datetime.now(UTC) - timedelta(minutes=project.revision_window_minutes)
    rows = (
        await session.execute(
            select(Judgment, Item, Assignment)
            .join(Item, Item.id == Judgment.item_id)
            .join(Assignment, Assignment.id == Judgment.assignment_id)
            .where(
                Judgment.project_id == project.id,
                Judgment.rater_id == rater.id,
                Judgment.created_at > since,
                Judgment.feedback_shown.is_(False),
            )
            .order_by(Judgment.created_at.desc(), Judgment.seq.desc())
            .limit(limit)
        )
    ).all()
    return [Recent(judgment=j, item=i, assignment=a, closes=window_closes(j, project)) for j, i, a in rows]
