"""What an admin or model change does to the serving order, in one place.

Changes that can move items ahead in the serving order (an import, a batch resumed or
reprioritised, a new overlap, active-learning priorities, a gold item made ordinary again) first
lock the project row and count up its `queue_epoch`. The lock is the first in the lock order
(docs/ARCHITECTURE.md), so such changes queue behind each other per project (two imports of
overlapping ids can no longer deadlock) while raters, who never lock the project row, go on.

Each epoch gets a `queue_moves` row saying what moved ahead. By default the change "could have
moved anything" (`from_start`); a change that knows which items it moved calls `rewind_to` with
them, and the row keeps the serving-order key of the first of those that is open (or none, when
nothing open moved). A rater's next pick from an older epoch then resumes at the smaller of its
own resume point and the rewind keys of the epochs since (labeling/service.py): an import
appended behind a rater, or a batch resumed behind them, costs that rater nothing; only a change
that could have moved anything makes them walk the order from the start once.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from server.errors import NotFound

# A deleted project (projects/lifecycle.py) is never changed again: no row, no lock.
_LOCK_AND_BUMP = text(
    """
    WITH bumped AS (
        UPDATE projects SET queue_epoch = queue_epoch + 1 WHERE id = :project_id AND deleted_at IS NULL
        RETURNING id, overlap, queue_epoch
    ), moved AS (
        INSERT INTO queue_moves (project_id, epoch, from_start) SELECT id, queue_epoch, true FROM bumped
    )
    SELECT overlap FROM bumped
    """
)

# `{items}` names the moved items (a condition on `i`); the first open one in serving order is
# where raters rewind to. Run after the move, in the transaction that bumped the epoch.
_REWIND_TO = """
    UPDATE queue_moves q SET from_start = false, rewind_kb = first.kb, rewind_kp = first.kp, rewind_seq = first.seq
    FROM projects p LEFT JOIN LATERAL (
        SELECT -i.batch_priority AS kb, -i.priority AS kp, i.seq FROM items i
        WHERE i.project_id = p.id AND i.queue_open AND ({items})
        ORDER BY -i.batch_priority, -i.priority, i.seq
        LIMIT 1
    ) first ON true
    WHERE p.id = :project_id AND q.project_id = p.id AND q.epoch = p.queue_epoch
    """

# The rewind point for a rater whose resume point is from epoch :since: the first rewind key of
# the epochs after it, unless one of them (or a missing row, from before queue_moves) says "from
# the start".
_REWIND_SINCE = text(
    """
    SELECT count(*) AS epochs, bool_or(from_start) AS from_start,
           (SELECT ARRAY[m.rewind_kb::float8, m.rewind_kp, m.rewind_seq::float8] FROM queue_moves m
            WHERE m.project_id = :project_id AND m.epoch > :since AND m.epoch <= :epoch AND m.rewind_seq IS NOT NULL
            ORDER BY m.rewind_kb, m.rewind_kp, m.rewind_seq LIMIT 1) AS first
    FROM queue_moves WHERE project_id = :project_id AND epoch > :since AND epoch <= :epoch
    """
)


@dataclass(frozen=True, slots=True, order=True)
class Key:
    """A place in the serving order: (-batch_priority, -priority, seq), smaller first."""

    kb: int
    kp: float
    seq: int


async def lock_for_reorder(session: AsyncSession, project_id: uuid.UUID) -> int:
    """Lock the project row (FOR NO KEY UPDATE, through the UPDATE) and start a new queue epoch.

    Returns the project's overlap as committed now: after waiting for the lock, this is the value
    a concurrent settings change left, so new items get the overlap that is really in force.
    """
    overlap = (await session.execute(_LOCK_AND_BUMP, {"project_id": project_id})).scalar_one_or_none()
    if overlap is None:  # deleted while this request waited for the lock
        raise NotFound(f"Project {project_id} was deleted; nothing was changed.")
    return int(overlap)


async def rewind_to(session: AsyncSession, project_id: uuid.UUID, items: str, params: dict[str, object]) -> None:
    """Say which items this epoch's change moved ahead: `items` is an SQL condition on `i`."""
    await session.execute(text(_REWIND_TO.format(items=items)), {"project_id": project_id, **params})


async def rewind_point(
    session: AsyncSession, project_id: uuid.UUID, *, since: int, epoch: int, resume: Key
) -> Key | None:
    """Where a rater whose resume point `resume` dates from epoch `since` resumes now; None: from the start."""
    row = (await session.execute(_REWIND_SINCE, {"project_id": project_id, "since": since, "epoch": epoch})).one()
    if row.epochs < epoch - since or row.from_start:
        return None
    if row.first is None:
        return resume
    kb, kp, seq = row.first
    # Resume picks are strictly after their key: one seq before the first moved item is the same
    # place (seqs are integers, and no other item shares that item's priorities and seq).
    return min(resume, Key(kb=int(kb), kp=float(kp), seq=int(seq) - 1))
