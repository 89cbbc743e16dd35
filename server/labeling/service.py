"""The rater loop: lease the next item, judge it, skip it, keep the lease alive.

Every rule that must hold under concurrency is enforced with row locks in PostgreSQL, never
in process memory, so any number of server processes can serve raters at once:
- a rater's own requests are serialised by locking their membership row;
- an item is picked with FOR UPDATE SKIP LOCKED from the partial index of open items, and its
  slot counters (`leased`, `judged`) change in the same statement; when every open item is
  locked at that instant, the pick waits for the locks once rather than report an empty queue;
- a submit locks its assignment first, then the item (the same order everywhere: no deadlocks).
"""

import uuid
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.config import settings
from server.errors import Conflict, Forbidden, NotFound
from server.labeling.rules import validate_verdict
from server.labeling.schemas import JudgmentCreate
from server.models import (
    Assignment,
    AssignmentStatus,
    Candidate,
    Item,
    Judgment,
    Project,
    ProjectMember,
    User,
)


@dataclass(frozen=True, slots=True)
class Leased:
    assignment: Assignment
    item: Item
    candidates: list[Candidate]  # in the order shown to the rater


@dataclass(frozen=True, slots=True)
class Submitted:
    judgment: Judgment
    created: bool  # False when this was a retry of an earlier submit
    project: Project


_PICK_AND_LEASE = text(
    """
    WITH picked AS (
        SELECT i.id FROM items i
        WHERE i.project_id = :project_id AND i.queue_open
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.rater_id = :rater_id)
        ORDER BY i.batch_priority DESC, i.priority DESC, i.seq
        LIMIT 1
        FOR UPDATE OF i SKIP LOCKED
    ), bumped AS (
        UPDATE items SET leased = items.leased + 1 FROM picked WHERE items.id = picked.id RETURNING items.id
    )
    INSERT INTO assignments (id, project_id, item_id, rater_id, status, shown_order, leased_at, expires_at)
    SELECT gen_random_uuid(), :project_id, b.id, :rater_id, 'leased',
           ARRAY(SELECT c.id FROM candidates c WHERE c.item_id = b.id ORDER BY random()),
           clock_timestamp(), clock_timestamp() + make_interval(secs => :lease_seconds)
    FROM bumped b
    RETURNING *
    """
)
# The new assignment comes back whole from the INSERT: no second read.
_PICK_AND_LEASE_ROW = select(Assignment).from_statement(_PICK_AND_LEASE.columns(*Assignment.__table__.columns))
# The same pick waiting for row locks instead of passing over them: for when every open item
# is locked for a moment (other raters' leases being taken, a reward model re-prioritising).
_PICK_AND_LEASE_WAITING_ROW = select(Assignment).from_statement(
    text(_PICK_AND_LEASE.text.replace("FOR UPDATE OF i SKIP LOCKED", "FOR UPDATE OF i")).columns(
        *Assignment.__table__.columns
    )
)


async def _lock_membership(session: AsyncSession, project: Project, rater: User) -> None:
    member = await session.scalar(
        select(ProjectMember.user_id)
        .where(ProjectMember.project_id == project.id, ProjectMember.user_id == rater.id)
        .with_for_update()
    )
    if member is None:
        raise Forbidden("You are not a member of this project; ask an admin to add you.")


async def _load(session: AsyncSession, assignment: Assignment) -> Leased:
    """The assignment's item and its candidates, in one round trip."""
    rows = (
        await session.execute(
            select(Item, Candidate).join(Candidate, Candidate.item_id == Item.id).where(Item.id == assignment.item_id)
        )
    ).all()
    by_id = {candidate.id: candidate for _, candidate in rows}
    return Leased(assignment=assignment, item=rows[0][0], candidates=[by_id[c] for c in assignment.shown_order])


async def reclaim_expired(session: AsyncSession, project_id: uuid.UUID, *, limit: int) -> int:
    """Return the slots of run-out leases to the queue (at most `limit` per call, so it stays cheap)."""
    expired = (
        (
            await session.execute(
                text(
                    "UPDATE assignments SET status = 'expired' WHERE id IN ("
                    " SELECT id FROM assignments WHERE project_id = :p AND status = 'leased' AND expires_at < now()"
                    " ORDER BY expires_at LIMIT :n FOR UPDATE SKIP LOCKED) RETURNING item_id"
                ),
                {"p": project_id, "n": limit},
            )
        )
        .scalars()
        .all()
    )
    if not expired:
        return 0
    counts: dict[uuid.UUID, int] = {}
    for item_id in expired:
        counts[item_id] = counts.get(item_id, 0) + 1
    # Lock in id order so two reclaimers can never wait on each other.
    for item_id in sorted(counts):
        await session.execute(update(Item).where(Item.id == item_id).values(leased=Item.leased - counts[item_id]))
    return len(expired)


async def next_assignment(
    session: AsyncSession, *, project: Project, rater: User, exclude: Collection[uuid.UUID] = ()
) -> Leased | None:
    """The rater's oldest open lease if they hold one, else a new lease on the best open item; None when done.

    `exclude` names leases the caller already shows (the rater page keeps the next item leased
    ahead of the current one); those are passed over, so a new lease is taken instead.
    """
    if not project.is_active:
        raise Conflict(f"Project '{project.name}' is paused; labeling resumes when an admin restarts it.")
    if rater.suspended_at is not None:
        raise Forbidden("Your rating access is suspended; contact the project admin.")
    await _lock_membership(session, project, rater)
    current = await session.scalar(
        select(Assignment)
        .where(
            Assignment.rater_id == rater.id,
            Assignment.project_id == project.id,
            Assignment.status == AssignmentStatus.leased,
            Assignment.expires_at > text("now()"),
            Assignment.id.not_in(exclude) if exclude else true(),
        )
        .order_by(Assignment.leased_at)  # clock_timestamp(): leases taken in one transaction keep their order
        .limit(1)
    )
    if current is not None:
        return await _load(session, current)
    reclaimed = await reclaim_expired(session, project.id, limit=settings.reclaim_batch)
    params = {"project_id": project.id, "rater_id": rater.id, "lease_seconds": project.lease_seconds}
    leased = await session.scalar(_PICK_AND_LEASE_ROW, params)
    if leased is None and not reclaimed:
        # SKIP LOCKED found nothing, but "nothing left" must not mean "everything was locked
        # just now": wait for the locks and look again. Only when this transaction holds no
        # item lock (nothing reclaimed), so the wait can never close a deadlock cycle.
        leased = await session.scalar(_PICK_AND_LEASE_WAITING_ROW, params)
    if leased is None:
        return None
    return await _load(session, leased)


async def _own_assignment(session: AsyncSession, assignment_id: uuid.UUID, rater: User) -> Assignment:
    """Lock the caller's own assignment; someone else's is 404, as if it did not exist."""
    assignment = await session.scalar(
        select(Assignment).where(Assignment.id == assignment_id, Assignment.rater_id == rater.id).with_for_update()
    )
    if assignment is None:
        raise NotFound(f"No assignment {assignment_id} of yours.")
    return assignment


async def _take_slot(session: AsyncSession, assignment: Assignment) -> bool:
    """Whether a judgment on this assignment fills a slot (else it is surplus); moves the counters."""
    if assignment.status == AssignmentStatus.leased:
        await session.execute(
            text(
                "UPDATE items SET leased = leased - 1, judged = judged + 1,"
                " completed_at = CASE WHEN judged + 1 >= wanted THEN coalesce(completed_at, now())"
                " ELSE completed_at END WHERE id = :id"
            ),
            {"id": assignment.item_id},
        )
        return True
    # The lease ran out and its slot went back to the queue: take a slot again if one is free.
    taken = await session.scalar(
        text(
            "UPDATE items SET judged = judged + 1,"
            " completed_at = CASE WHEN judged + 1 >= wanted THEN coalesce(completed_at, now())"
            " ELSE completed_at END WHERE id = :id AND leased + judged < wanted RETURNING id"
        ),
        {"id": assignment.item_id},
    )
    return taken is not None


async def submit(session: AsyncSession, *, assignment_id: uuid.UUID, rater: User, data: JudgmentCreate) -> Submitted:
    """Store a verdict once; a retry returns the first; a late one on a filled item is kept as surplus."""
    row = (
        await session.execute(
            select(Assignment, Project)
            .join(Project, Project.id == Assignment.project_id)
            .where(Assignment.id == assignment_id, Assignment.rater_id == rater.id)
            .with_for_update(of=Assignment)
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"No assignment {assignment_id} of yours.")
    assignment, project = row
    if assignment.status == AssignmentStatus.submitted:
        existing = await session.scalar(select(Judgment).where(Judgment.assignment_id == assignment.id))
        assert existing is not None
        return Submitted(judgment=existing, created=False, project=project)
    if assignment.status == AssignmentStatus.skipped:
        raise Conflict("You skipped this item, so it cannot be judged any more.")
    candidate_ids = list(assignment.shown_order)
    verdict = validate_verdict(project, candidate_ids, data)
    counted = await _take_slot(session, assignment)
    judgment = Judgment(
        assignment_id=assignment.id,
        project_id=assignment.project_id,
        item_id=assignment.item_id,
        rater_id=rater.id,
        choice_id=verdict.choice,
        ranking=verdict.ranking,
        strength=verdict.strength,
        tie=data.tie,
        both_bad=data.both_bad,
        rationale=verdict.rationale,
        active_ms=data.active_ms,
        surplus=not counted,
        assistance_shown=assignment.assistance is not None,
    )
    session.add(judgment)
    assignment.status = AssignmentStatus.submitted
    assignment.finished_at = func.now()
    await session.flush()
    return Submitted(judgment=judgment, created=True, project=project)


async def skip(session: AsyncSession, *, assignment_id: uuid.UUID, rater: User, reason: str | None) -> Assignment:
    """Give an item back; it is never offered to this rater again. Skipping twice is harmless."""
    assignment = await _own_assignment(session, assignment_id, rater)
    if assignment.status == AssignmentStatus.submitted:
        raise Conflict("You already judged this item; a judged item cannot be skipped.")
    if assignment.status == AssignmentStatus.skipped:
        return assignment
    if assignment.status == AssignmentStatus.leased:
        await session.execute(update(Item).where(Item.id == assignment.item_id).values(leased=Item.leased - 1))
    assignment.status = AssignmentStatus.skipped
    assignment.skip_reason = reason
    assignment.finished_at = func.now()
    await session.flush()
    await session.refresh(assignment)
    return assignment


async def heartbeat(session: AsyncSession, *, assignment_id: uuid.UUID, rater: User) -> Assignment:
    """Renew a lease while the rater is still on the item; a run-out lease is renewed if its slot is free."""
    assignment = await _own_assignment(session, assignment_id, rater)
    if assignment.status in (AssignmentStatus.submitted, AssignmentStatus.skipped):
        raise Conflict(f"This assignment is already {assignment.status}; there is no lease to renew.")
    project = await session.get_one(Project, assignment.project_id)
    if assignment.status == AssignmentStatus.expired:
        retaken = await session.scalar(
            text("UPDATE items SET leased = leased + 1 WHERE id = :id AND leased + judged < wanted RETURNING id"),
            {"id": assignment.item_id},
        )
        if retaken is None:
            raise Conflict(
                "Your time on this item ran out and other raters have since filled it. "
                "You can still submit (it is kept, marked surplus) or move on to the next item."
            )
        assignment.status = AssignmentStatus.leased
    assignment.expires_at = text(f"now() + interval '{int(project.lease_seconds)} seconds'")  # type: ignore[assignment]
    await session.flush()
    await session.refresh(assignment)
    return assignment
