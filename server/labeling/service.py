"""The rater loop: lease the next item, judge it, skip it, keep the lease alive.

Every rule that must hold under concurrency is enforced with row locks in PostgreSQL, never
in process memory, so any number of server processes can serve raters at once. Locks follow
the one order of docs/ARCHITECTURE.md ("Locks"): membership → assignment → items (in id order),
and a statement that could wait out of that order uses SKIP LOCKED instead:
- a rater's own requests are serialised by locking their membership row first;
- an item is picked with FOR UPDATE SKIP LOCKED from the partial index of open items, and its
  slot counters (`leased`, `judged`) change in the same statement;
- run-out leases are returned to the queue with SKIP LOCKED on both the lease and its item, so
  reclaiming never waits;
- a submit, skip or heartbeat locks membership, then its assignment, then the item; a model
  judge's verdict routes its item under that same item lock (labeling/handoff.py).
These functions flush and never commit. Where a request must not hold one transaction's locks
while waiting for another's (a verdict, then the next lease), labeling/flows.py splits it.
"""

import random
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Boolean, Integer, Row, Table, bindparam, case, func, insert, literal_column, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from server import audit
from server.config import settings
from server.critiques import assistance
from server.critiques import service as critiques
from server.errors import Conflict, Forbidden, Invalid, NotFound
from server.items import subtasks as trees
from server.labeling import handoff, queue
from server.labeling.lease_sql import insert_lease
from server.labeling.rules import Verdict, validate_answer, validate_verdict
from server.labeling.schemas import JudgmentCreate
from server.models import (
    Assignment,
    AssignmentStatus,
    Candidate,
    Critique,
    Item,
    Judgment,
    Project,
    ProjectMember,
    SkipReason,
    SurplusReason,
    User,
    UserKind,
)
from server.models.xid import CURRENT_XID
from server.quality import reliability, rules
from server.quality.gold import GoldAnswer

# A rater holds at most the item on screen and the one leased ahead of it (the rater page).
MAX_LEASES = 2

# Why an admin ended a lease, as the start of the sentence the rater is answered with.
ENDED: dict[str, str] = {
    SurplusReason.removed: "You were removed from this project while you held this item",
    SurplusReason.suspended: "Your access to this project was suspended while you held this item",
    SurplusReason.archived: "This item's batch or project was archived by an admin while you held it",
    SurplusReason.not_admitted: "You did not pass this project's qualification round while you held this item",
}
_ENDED_UNKNOWN = "Your lease on this item was ended by an admin"
HUMAN_CONFIDENCE = "Only model judges send a confidence; leave `confidence` out of a human rater's verdict."


@dataclass(frozen=True, slots=True)
class Leased:
    assignment: Assignment
    item: Item
    candidates: list[Candidate]  # in the order shown to the rater
    critiques: list[Critique] = field(default_factory=list)  # assistance shown (none when unassisted)
    target: Candidate | None = None  # a subtask's: the candidate of its tree it asks about
    subtasks: list[trees.SubtaskResult] = field(default_factory=list)  # assistance shown: its subtasks' results


@dataclass(frozen=True, slots=True)
class Submitted:
    judgment: Judgment
    created: bool  # False when this was a retry of an earlier submit
    project: Project
    # Set when the lease had been ended by an admin: the verdict is stored, uncounted, and the
    # caller answers 409 with this sentence.
    refusal: str | None = None
    # A gold item in a project with feedback on: whether the answer matched, and why.
    feedback: rules.Feedback | None = None


# --- SQL ---------------------------------------------------------------------------------------

# Pick the first open item in serving order that the rater has never been given, take a slot on
# it, remember where it was (the rater's resume point), and lease it. `{after}` restricts the
# walk to items after the resume point; `{lock}` is SKIP LOCKED, or nothing for the waiting pick.
# `{pool}` is `i.pool IS NULL` (the items every rater may take: the pick's index holds only those),
# or `i.pool = :pool` for a rater group's own items (their own index, see _pool_pick).
_PICK_AND_LEASE = (
    """
    WITH picked AS (
        SELECT i.id FROM items i
        WHERE i.project_id = :project_id AND i.queue_open AND {pool}{after}
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.rater_id = :rater_id)
        ORDER BY -i.batch_priority, -i.priority, i.seq
        LIMIT 1
        FOR NO KEY UPDATE OF i{lock}
    ), bumped AS (
        UPDATE items SET leased = items.leased + 1 FROM picked WHERE items.id = picked.id
        RETURNING {item}, -items.batch_priority AS kb, -items.priority AS kp
    ){resumed}, leased AS (
        """
    + insert_lease()
    + """
        RETURNING {assignment}
    )
    SELECT {returning}
    FROM leased l JOIN bumped b ON b.id = l.item_id LEFT JOIN candidates c ON c.item_id = l.item_id
    """
)
_AFTER_RESUME_POINT = "\n          AND (-i.batch_priority, -i.priority, i.seq) > (:kb, :kp, :ks)"
_RESUMED = """, resumed AS (
        UPDATE project_members m SET resume_kb = b.kb, resume_kp = b.kp, resume_seq = b.seq, resume_epoch = :epoch
        FROM bumped b WHERE m.project_id = :project_id AND m.user_id = :rater_id
    )"""
_ANY_RATER = "i.pool IS NULL"


def _pick(*, after: str, wait: bool, pool: str = _ANY_RATER):  # type: ignore[no-untyped-def]
    leases, items, candidates = (list(m.__table__.columns) for m in (Assignment, Item, Candidate))
    sql = _PICK_AND_LEASE.format(
        after=after,
        pool=pool,
        # The resume point is a place in the shared order; a pool's walk keeps none (see _PICK_POOL).
        resumed=_RESUMED if pool == _ANY_RATER else "",
        lock="" if wait else " SKIP LOCKED",
        item=", ".join(f"items.{c.name}" for c in items),
        assignment=", ".join(c.name for c in leases),
        returning=", ".join(  # matched by position below
            [f"l.{c.name}" for c in leases] + [f"b.{c.name}" for c in items] + [f"c.{c.name}" for c in candidates]
        ),
    )
    # The new assignment comes back whole from the INSERT, with its item as the UPDATE left it and
    # its candidates (one row each; one row with none for a subtask): what _load reads, no second read.
    return select(Assignment, Item, Candidate).from_statement(text(sql).columns(*leases, *items, *candidates))


_PICK_RESUMING = _pick(after=_AFTER_RESUME_POINT, wait=False)
_PICK_FROM_START = _pick(after="", wait=False)
# A rater with a membership group is given their group's own items first (subtasks with that
# `group`): from the pool's own partial index (ix_items_pool), walked from its start. Its cost is
# the pool's open items this rater was already given (those still wanting other raters), not the
# project's: raters outside the pool never walk it, and the shared pick never sees pooled items.
_PICK_POOL = _pick(after="", wait=False, pool="i.pool = :pool")
# Waiting is done for one row at a time: a locking scan that waits may lock rows which then fail
# its recheck (someone filled them meanwhile), and PostgreSQL keeps those locks; waiting for the
# next row while holding them would be waiting out of id order. So the first candidate is found
# without locking, only that row is waited for (_LOCK_ITEMS, a statement of its own), and then it is
# picked by _PICK_THIS_WAITING, which finds the lock held. Waiting inside the pick itself, whose
# UPDATE starts again from the row version its snapshot saw, deadlocked with a submit of that item
# (see _LOCK_SLOT_ITEMS).
_FIRST_CANDIDATE = text(
    """
    SELECT i.id FROM items i
    WHERE i.project_id = :project_id AND i.queue_open AND i.pool IS NULL
      AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.rater_id = :rater_id)
    ORDER BY -i.batch_priority, -i.priority, i.seq
    LIMIT 1
    """
)
_PICK_THIS_WAITING = _pick(after="\n          AND i.id = :item_id", wait=True)
_FIRST_POOL_CANDIDATE = text(
    """
    SELECT i.id FROM items i
    WHERE i.project_id = :project_id AND i.queue_open AND i.pool = :pool
      AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.rater_id = :rater_id)
    ORDER BY -i.batch_priority, -i.priority, i.seq
    LIMIT 1
    """
)
_PICK_THIS_POOL_WAITING = _pick(after="\n          AND i.id = :item_id", wait=True, pool="i.pool = :pool")


# Lease the rater's next gold item: the first in gold order after the last one they were given.
# Gold items are outside the queue (wanted = 0): the slot counter only tracks live leases, so a
# lease here never fills anything. A gold item locked by another rater's pick at this instant is
# passed over for this rater (gold is a sample; nobody waits for one). A gold subtask with a `group`
# (its pool) goes only to members of that group, like its ordinary siblings; the others pass it.
_PICK_GOLD = text(
    """
    WITH picked AS (
        SELECT i.id FROM items i
        WHERE i.project_id = :project_id AND i.gold_seq > :after AND NOT i.paused
          AND (i.pool IS NULL OR i.pool = CAST(:pool AS varchar))
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.item_id = i.id AND a.rater_id = :rater_id)
        ORDER BY i.gold_seq
        LIMIT 1
        FOR NO KEY UPDATE OF i SKIP LOCKED
    ), bumped AS (
        UPDATE items SET leased = items.leased + 1 FROM picked WHERE items.id = picked.id
        RETURNING items.id, items.gold_seq
    ), resumed AS (
        UPDATE project_members m SET gold_resume = b.gold_seq
        FROM bumped b WHERE m.project_id = :project_id AND m.user_id = :rater_id
    )
    """
    + insert_lease(gold=True)
    + """
    RETURNING {returning}
    """.format(returning=", ".join(c.name for c in Assignment.__table__.columns))
).columns(*Assignment.__table__.columns)


_PICK_GOLD_STMT = select(Assignment).from_statement(_PICK_GOLD)


class Moved:
    """The item a waiting pick waited for was taken meanwhile: look again, in a new transaction."""


# Return run-out leases to the queue. SKIP LOCKED on the lease and on its item: a lease whose
# item someone else holds is left for the next call, so reclaiming never waits for a lock.
_RECLAIM_CTES = """
    WITH due AS (
        SELECT a.id, a.item_id FROM assignments a
        WHERE a.project_id = :project_id AND a.status = 'leased' AND a.expires_at < now()
        ORDER BY a.expires_at LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), lockable AS (
        SELECT i.id FROM items i WHERE i.id IN (SELECT item_id FROM due)
        ORDER BY i.id FOR NO KEY UPDATE SKIP LOCKED
    ), expired AS (
        UPDATE assignments a SET status = 'expired' FROM due
        WHERE a.id = due.id AND due.item_id IN (SELECT id FROM lockable)
        RETURNING a.item_id
    ), freed AS (
        UPDATE items i SET leased = i.leased - n.leases
        FROM (SELECT item_id, count(*) AS leases FROM expired GROUP BY item_id) n
        WHERE i.id = n.item_id
        RETURNING 1
    )"""
_RECLAIM = text(_RECLAIM_CTES + "\n    SELECT count(*) FROM expired")

# A verdict takes a slot on its item when one is free for it: a live lease holds one unless a
# lowered overlap left the item with all it wants; a run-out lease gave its slot back, so it
# needs a free one. The judgment that fills the item completes it and opens a new aggregate
# revision (what completed-item exports deliver).
#
# The submit locks the item with _LOCK_SLOT_ITEMS, a statement of its own that returns the
# counters of the row it locked (its newest version: a locking read follows the row's updates),
# and decides from them (_slot); no other transaction can change them before this one ends. The
# decision is then written by the judgment's own INSERT (_STORE_JUDGMENT_TAKING_SLOT, a CTE that
# updates the item by primary key): it takes no lock and never waits. Waiting in the statement that
# writes deadlocked two submits of one item (docs/ARCHITECTURE.md "Locks"): a statement that waited
# for a row which was updated meanwhile locks the row's newest version, but its UPDATE starts again
# from the version its snapshot sees; when that old version's xmax is a MultiXact still alive
# (another transaction's KEY SHARE from a foreign-key check, e.g. a post of scores inserting
# item_scores), the UPDATE queues for the old version's tuple lock, which the other submit holds
# while it waits for this one's lock on the newest version. A statement that starts after the lock
# is granted sees the newest version only.
_LOCK_SLOT_ITEMS = text(
    "SELECT id, wanted, leased, judged, completed_at IS NULL AS open"
    " FROM items WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE"
)
_LOCK_SLOT_ITEM = text(
    "SELECT id, wanted, leased, judged, completed_at IS NULL AS open FROM items WHERE id = :id FOR NO KEY UPDATE"
)


async def _by_ids(session: AsyncSession, one: Any, many: Any, ids: Sequence[uuid.UUID]) -> Sequence[Row[Any]]:
    """Run `many` (`= ANY(:ids)`) on `ids`, or `one` (`= :id`) when there is a single id, the common case:
    with `= ANY(:ids)` PostgreSQL planned a statement again at every execution (a prepared statement's
    generic plan is costed for an array of several ids, so a custom plan for one id always looked
    cheaper). The submit's item lock spent 0.13 ms planning per verdict so, nine times its execution
    (pg_stat_statements in make bench's page phase; docs/BENCHMARKS.md, "a fifth time")."""
    if len(ids) == 1:
        return (await session.execute(one, {"id": ids[0]})).all()
    return (await session.execute(many, {"ids": list(ids)})).all()


@dataclass(frozen=True, slots=True)
class _Slot:
    """What a verdict does to its item's counters, decided from the locked row."""

    counted: bool  # it takes a slot (counts toward `wanted`)
    completes: bool  # it fills the item: completed, a new aggregate revision
    released: int  # the live lease it gives back (1), or none (0)


def _slot(locked: Sequence[Row[Any]], item_id: uuid.UUID, *, held: bool) -> _Slot:
    """Decide the slot from the counters _LOCK_SLOT_ITEMS read from the locked row."""
    row = next(r for r in locked if r.id == item_id)
    counted = row.judged < row.wanted and (held or row.leased + row.judged < row.wanted)
    return _Slot(counted=counted, completes=counted and row.judged + 1 >= row.wanted and row.open, released=int(held))


# A gold verdict that ends its rater's leases (suspension, a failed qualification round) locks
# them first, in id order, then their items and the judged one, in id order, before the submit
# takes its slot: ending them later would wait for items while holding the judged item.
_LOCK_LEASES = text(
    """
    SELECT item_id FROM assignments
    WHERE project_id = :project_id AND rater_id = :rater_id AND status = 'leased'
    ORDER BY id FOR UPDATE
    """
)
_LOCK_ITEMS = text("SELECT id FROM items WHERE id = ANY(:ids) ORDER BY id FOR NO KEY UPDATE")
_LOCK_ITEM = text("SELECT id FROM items WHERE id = :id FOR NO KEY UPDATE")


async def _lock_items(session: AsyncSession, ids: Sequence[uuid.UUID]) -> None:
    """Lock items in id order, a statement of their own (see _LOCK_SLOT_ITEMS)."""
    await _by_ids(session, _LOCK_ITEM, _LOCK_ITEMS, ids)


# End live leases now (a rater removed or suspended; a batch or a project archived): leases in id
# order, then their items in id order, each locked by a statement of its own (_LOCK_ENDING, then
# _LOCK_ITEMS; see _LOCK_SLOT_ITEMS for why a statement that waits for rows does not write them), then
# this statement, which finds them locked; the slots go back to the queue at once. `{which}` narrows
# the project's leases to one rater's or one batch's.
_END_LEASES_SQL = """
    WITH ended AS (
        UPDATE assignments a SET status = 'ended', ended_reason = :reason, finished_at = now()
        FROM (SELECT id FROM assignments WHERE project_id = :project_id{which}
              AND status = 'leased' ORDER BY id FOR UPDATE) mine
        WHERE a.id = mine.id
        RETURNING a.item_id
    ), locked AS (
        SELECT id FROM items WHERE id IN (SELECT item_id FROM ended) ORDER BY id FOR NO KEY UPDATE
    ), freed AS (
        UPDATE items i SET leased = i.leased - n.leases
        FROM (SELECT item_id, count(*) AS leases FROM ended GROUP BY item_id) n, locked
        WHERE i.id = n.item_id AND locked.id = i.id
    )
    SELECT count(*) FROM ended
    """
_LOCK_ENDING_SQL = """
    SELECT item_id FROM assignments WHERE project_id = :project_id{which} AND status = 'leased'
    ORDER BY id FOR UPDATE
    """
_WHICH = {
    "rater": " AND rater_id = :rater_id",
    "batch": " AND item_id IN (SELECT id FROM items WHERE batch_id = :batch_id)",
    "project": "",
}
_END_LEASES = {scope: text(_END_LEASES_SQL.format(which=which)) for scope, which in _WHICH.items()}
_LOCK_ENDING = {scope: text(_LOCK_ENDING_SQL.format(which=which)) for scope, which in _WHICH.items()}


# The ORM statements of the rater loop, built once: building a select and its cache key costs
# about as much as SQLAlchemy's whole compiled-cache lookup (tens of microseconds each, several
# per request); the SQL sent is the same as when they were built per call.
_MEMBERSHIP_LOCK = (
    select(ProjectMember)
    .where(ProjectMember.project_id == bindparam("project_id"), ProjectMember.user_id == bindparam("rater_id"))
    .with_for_update()
    .execution_options(populate_existing=True)  # the row as locked, not as this session last saw it
)
_MEMBERSHIP_OF_ASSIGNMENT_LOCK = (
    select(ProjectMember)
    .where(
        ProjectMember.user_id == bindparam("rater_id"),
        ProjectMember.project_id
        == (
            select(Assignment.project_id)
            .where(Assignment.id == bindparam("assignment_id"), Assignment.rater_id == bindparam("rater_id"))
            .scalar_subquery()
        ),
    )
    .with_for_update()
    .execution_options(populate_existing=True)  # the row as locked, not as this session last saw it
)
# The API's `next` knows only the project's id: the membership is locked with its project read in
# the same statement (the project row is not locked; it is read from the statement's snapshot, as
# the separate read before the lock read it). A row found means what projects.service's
# accessible_project_ids grants any caller: a member of a project that is not deleted.
_MEMBERSHIP_WITH_PROJECT_LOCK = (
    select(ProjectMember, Project)
    .join(Project, Project.id == ProjectMember.project_id)
    .where(
        ProjectMember.project_id == bindparam("project_id"),
        ProjectMember.user_id == bindparam("rater_id"),
        Project.deleted_at.is_(None),
    )
    .with_for_update(of=ProjectMember)
    .execution_options(populate_existing=True)
)
_LOAD_ITEM = (
    select(Item, Candidate)
    .outerjoin(Candidate, Candidate.item_id == Item.id)  # a check, rating or answer has none
    .where(Item.id == bindparam("item_id"))
)
# `next`'s first statement after the membership lock: reclaim run-out leases (as _RECLAIM) and read
# the rater's live leases, in one round trip. The two never touch the same lease (run out: before
# now(); live: after it), and both come after the membership lock, so the live leases read are the
# ones the rater's last request committed. The CTEs run to completion though the SELECT reads none
# of them.
_LIVE_COLUMNS = list(Assignment.__table__.columns)
_RECLAIM_THEN_LIVE_LEASES = select(Assignment).from_statement(
    text(
        _RECLAIM_CTES
        + f"""
    SELECT {", ".join(c.name for c in _LIVE_COLUMNS)} FROM assignments
    WHERE rater_id = :rater_id AND project_id = :project_id AND status = 'leased' AND expires_at > now()
    ORDER BY leased_at"""  # clock_timestamp(): leases taken in one transaction keep their order
    ).columns(*_LIVE_COLUMNS)
)
# The item comes along (its kind: a comparison or a subtask), read without a lock: its row is
# locked later, in the lock order, when its slot is taken.
_SUBMITTED_ASSIGNMENT = (
    select(Assignment, Project, Item)
    .join(Project, Project.id == Assignment.project_id)
    .join(Item, Item.id == Assignment.item_id)
    .where(Assignment.id == bindparam("assignment_id"), Assignment.rater_id == bindparam("rater_id"))
    .with_for_update(of=Assignment)
)


# --- helpers -----------------------------------------------------------------------------------


def suspended_message(member: ProjectMember) -> str:
    reason = f" Reason: {member.suspended_reason}" if member.suspended_reason else ""
    return f"Your access to this project is suspended, so no items are given to you.{reason} Contact the project admin."


async def _lock_membership(session: AsyncSession, project: Project, rater: User) -> ProjectMember:
    """Lock the rater's membership (serialising their requests); refuse non-members and the suspended."""
    member = await session.scalar(_MEMBERSHIP_LOCK, {"project_id": project.id, "rater_id": rater.id})
    return _admitted(project, member, rater)


async def lock_membership_with_project(
    session: AsyncSession, *, project_id: uuid.UUID, rater: User
) -> tuple[ProjectMember, Project] | None:
    """Lock the rater's membership of a project known by its id and read the project with it, in one
    statement; None when the rater is no member of it, or it is deleted (the caller finds out which)."""
    row = (
        await session.execute(_MEMBERSHIP_WITH_PROJECT_LOCK, {"project_id": project_id, "rater_id": rater.id})
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def _admitted(project: Project, member: ProjectMember | None, rater: User) -> ProjectMember:
    """The locked membership, if it may be given items: refuse non-members and the suspended."""
    if member is None:
        raise Forbidden("You are not a member of this project; ask an admin to add you.")
    if member.suspended_at is not None:
        raise Forbidden(suspended_message(member))
    check_admitted(project, member, rater)
    return member


def check_admitted(project: Project, member: ProjectMember, rater: User) -> None:
    """Refuse a rater who did not pass the project's qualification round (until an admin lets them)."""
    if rules.qualification_pending(project, member, rater) and member.qualification_failed_at is not None:
        raise Forbidden(rules.NOT_ADMITTED.format(result=member.qualification_result or ""))


async def _qualifying(session: AsyncSession, project: Project, member: ProjectMember, rater: User) -> bool:
    """Whether the rater's next item belongs to their qualification round (so it must be gold)."""
    if not rules.qualification_pending(project, member, rater):
        return False
    return await rules.round_taken(session, project, member) < project.qualification_items


async def _check_gold_left(session: AsyncSession, project: Project, member: ProjectMember) -> None:
    """No gold item could be leased for the round: refuse when there are not enough of them."""
    left = await rules.gold_left(session, project, member.user_id)
    if left == 0:
        taken = await rules.round_taken(session, project, member)
        raise Conflict(rules.NOT_ENOUGH_GOLD.format(wanted=project.qualification_items, have=taken))


async def _lock_membership_of(session: AsyncSession, assignment_id: uuid.UUID, rater: User) -> ProjectMember | None:
    """The first lock of a submit, skip or heartbeat: the owner's membership (if it still exists)."""
    return await session.scalar(_MEMBERSHIP_OF_ASSIGNMENT_LOCK, {"assignment_id": assignment_id, "rater_id": rater.id})


# What a pick returns: the new assignment, its item and one of its candidates, per row (none when
# nothing was picked).
Picked = Sequence[Row[Assignment, Item, Candidate | None]]


async def _picked(session: AsyncSession, pick: Any, params: dict[str, object]) -> Picked:
    """Run one of the _pick statements."""
    return (await session.execute(pick, params)).all()


async def _load(session: AsyncSession, assignment: Assignment, picked: Picked = ()) -> Leased:
    """The assignment's item and its candidates, in one round trip (none when the pick brought them)."""
    if picked:
        rows: Sequence[Any] = [(item, candidate) for _, item, candidate in picked]
    else:
        rows = (await session.execute(_LOAD_ITEM, {"item_id": assignment.item_id})).all()
    by_id = {candidate.id: candidate for _, candidate in rows if candidate is not None}
    item = rows[0][0]
    target = None
    if item.subtask_candidate_id is not None:
        target = await session.get(Candidate, item.subtask_candidate_id)
    shown = assistance.is_shown(assignment)
    return Leased(
        assignment=assignment,
        item=item,
        candidates=[by_id[c] for c in assignment.shown_order],
        critiques=await critiques.shown(session, assignment),
        target=target,
        subtasks=await trees.results(session, item.id) if shown else [],
    )


async def _new_lease(session: AsyncSession, project: Project, member: ProjectMember, picked: Picked) -> Leased:
    """A lease just taken: decide whether it shows assistance (critiques/assistance.py), then load it."""
    leased = picked[0][0]
    await assistance.decide(session, project=project, member=member, assignment=leased)
    return await _load(session, leased, picked)


async def load(session: AsyncSession, assignment: Assignment) -> Leased:
    """An assignment with its item and candidates in the order the rater saw them (a revision shows it again)."""
    return await _load(session, assignment)


async def reclaim_expired(session: AsyncSession, project_id: uuid.UUID, *, limit: int) -> int:
    """Return the slots of run-out leases to the queue (at most `limit` per call; never waits)."""
    return int(await session.scalar(_RECLAIM, {"project_id": project_id, "limit": limit}) or 0)


async def end_leases(
    session: AsyncSession,
    *,
    project_id: uuid.UUID,
    reason: str,
    rater_id: uuid.UUID | None = None,
    batch_id: uuid.UUID | None = None,
) -> int:
    """End live leases in a project now: one rater's (removed, suspended), one batch's, or all (archived).

    A verdict sent later on an ended lease is stored uncounted and answered with why (ENDED).
    Returns how many leases ended.
    """
    params: dict[str, object] = {"project_id": project_id, "reason": reason}
    if rater_id is not None:
        scope = "rater"
        params["rater_id"] = rater_id
    elif batch_id is not None:
        scope = "batch"
        params["batch_id"] = batch_id
    else:
        scope = "project"
    items = list(await session.scalars(_LOCK_ENDING[scope], params))
    if not items:
        return 0
    await _lock_items(session, items)
    return int(await session.scalar(_END_LEASES[scope], params) or 0)


# --- next --------------------------------------------------------------------------------------


def _check_can_label(project: Project, rater: User) -> None:
    if project.archived_at is not None or project.deleted_at is not None:
        raise Conflict(f"Project '{project.name}' is archived; there is nothing to label in it.")
    if not project.is_active:
        raise Conflict(f"Project '{project.name}' is paused; labeling resumes when an admin restarts it.")
    if rater.suspended_at is not None:
        raise Forbidden("Your rating access is suspended; contact the project admin.")


async def _reclaim_then_live_leases(session: AsyncSession, project: Project, rater: User) -> list[Assignment]:
    """Return the project's run-out leases to the queue (as reclaim_expired), then the rater's live ones."""
    params = {"rater_id": rater.id, "project_id": project.id, "limit": settings.reclaim_batch}
    return list(await session.scalars(_RECLAIM_THEN_LIVE_LEASES, params))


async def _resume_point(session: AsyncSession, project: Project, member: ProjectMember) -> queue.Key | None:
    """Where the rater's pick resumes: after the last item it gave them, rewound past what moved
    ahead of it since (labeling/queue.py); None: walk the serving order from the start."""
    if member.resume_seq is None or member.resume_kb is None or member.resume_kp is None:
        return None
    resume = queue.Key(kb=member.resume_kb, kp=member.resume_kp, seq=member.resume_seq)
    if member.resume_epoch == project.queue_epoch:
        return resume
    return await queue.rewind_point(
        session, project.id, since=member.resume_epoch or 0, epoch=project.queue_epoch, resume=resume
    )


def _gold_after(member: ProjectMember) -> dict[str, object]:
    """The gold pick's own parameters: after the rater's last gold item, within their pool."""
    return {"after": member.gold_resume or 0, "pool": member.group}


def _pick_params(project: Project, rater: User) -> dict[str, object]:
    return {
        "project_id": project.id,
        "rater_id": rater.id,
        "lease_seconds": project.lease_seconds,
        "epoch": project.queue_epoch,
    }


async def next_assignment(
    session: AsyncSession,
    *,
    project: Project,
    rater: User,
    exclude: Collection[uuid.UUID] = (),
    member: ProjectMember | None = None,
) -> Leased | None:
    """The rater's oldest open lease if they hold one, else a new lease on the best open item.

    `exclude` names leases the caller already shows (the rater page keeps the next item leased
    ahead of the current one); those are passed over, so a new lease is taken instead, as long as
    the rater holds fewer than MAX_LEASES. Items locked at this instant are passed over, so None
    means "nothing left, or all of it locked just now": `wait_for_next` tells the two apart.
    `member` is the rater's membership when this transaction locked it already
    (`lock_membership_with_project`); otherwise it is locked here.
    """
    _check_can_label(project, rater)
    if member is None:
        member = await _lock_membership(session, project, rater)
    else:
        member = _admitted(project, member, rater)
    live = await _reclaim_then_live_leases(session, project, rater)
    shown = [a for a in live if a.id not in exclude]
    if shown:
        return await _load(session, shown[0])
    if len(live) >= MAX_LEASES:
        raise Conflict(f"You already hold {len(live)} items of this project; judge or skip one before taking another.")
    params = _pick_params(project, rater)
    if await _qualifying(session, project, member, rater):  # the round's items are all gold
        leased = await session.scalar(_PICK_GOLD_STMT, params | _gold_after(member))
        if leased is None:
            await _check_gold_left(session, project, member)
        return None if leased is None else await _load(session, leased)
    if project.gold_rate > 0 and random.random() < project.gold_rate:
        leased = await session.scalar(_PICK_GOLD_STMT, params | _gold_after(member))
        if leased is not None:
            await assistance.decide(session, project=project, member=member, assignment=leased)
            return await _load(session, leased)
    if handoff.is_model(rater):  # model judges pick from the model phase only, never the human queue
        leased = await handoff.pick(session, project=project, member=member, rater=rater)
        return None if leased is None else await _load(session, leased)
    picked: Picked = ()
    if member.group:
        picked = await _picked(session, _PICK_POOL, params | {"pool": member.group})
        if picked:
            return await _new_lease(session, project, member, picked)
    resume = await _resume_point(session, project, member)
    if resume is not None:
        picked = await _picked(session, _PICK_RESUMING, params | {"kb": resume.kb, "kp": resume.kp, "ks": resume.seq})
    if not picked:
        picked = await _picked(session, _PICK_FROM_START, params)
    return await _new_lease(session, project, member, picked) if picked else None


async def wait_for_next(session: AsyncSession, *, project: Project, rater: User) -> Leased | Moved | None:
    """Lease the first open item the rater has not seen, waiting for its lock; None when there is none.

    The caller must hold no item lock (labeling/flows.py runs this in a transaction of its own):
    it waits for one row while holding only the rater's membership, which comes first in the lock
    order. `Moved` means that row was filled while we waited: look again in a new transaction.
    """
    _check_can_label(project, rater)
    if handoff.is_model(rater):  # model judges poll; they never wait for a locked row
        return None
    member = await _lock_membership(session, project, rater)
    params = _pick_params(project, rater)
    if await _qualifying(session, project, member, rater):  # gold is never waited for: look again
        leased = await session.scalar(_PICK_GOLD_STMT, params | _gold_after(member))
        if leased is None:
            await _check_gold_left(session, project, member)
            return Moved()
        return await _load(session, leased)
    if member.group:  # the rater's group's own items first, as in next_assignment
        pooled = params | {"pool": member.group}
        candidate = await session.scalar(_FIRST_POOL_CANDIDATE, pooled)
        if candidate is not None:
            await _lock_items(session, [candidate])
            picked = await _picked(session, _PICK_THIS_POOL_WAITING, pooled | {"item_id": candidate})
            return await _new_lease(session, project, member, picked) if picked else Moved()
    candidate = await session.scalar(_FIRST_CANDIDATE, params)
    if candidate is None:
        return None
    await _lock_items(session, [candidate])
    picked = await _picked(session, _PICK_THIS_WAITING, params | {"item_id": candidate})
    return await _new_lease(session, project, member, picked) if picked else Moved()


# --- submit ------------------------------------------------------------------------------------


def same_verdict(judgment: Judgment, data: JudgmentCreate) -> bool:
    """Whether a resubmitted verdict is the stored one (choice, ranking, strength, tie, both-bad, rationale)."""
    choice = data.ranking[0] if data.ranking else data.choice
    return (
        choice == judgment.choice_id
        and (list(data.ranking) if data.ranking else None) == (list(judgment.ranking) if judgment.ranking else None)
        and data.strength == judgment.strength
        and data.tie == judgment.tie
        and data.both_bad == judgment.both_bad
        and ((data.rationale or "").strip() or None) == judgment.rationale
        and (data.answer.strip() if isinstance(data.answer, str) else data.answer) == judgment.answer
    )


async def _extras(
    session: AsyncSession, project: Project, assignment: Assignment, data: JudgmentCreate
) -> critiques.Extras:
    """The judgment's critique ratings and rater critiques, checked against what the assignment showed."""
    return await critiques.check(
        session,
        project=project,
        assignment=assignment,
        ratings=data.critique_ratings,
        critiques=data.critiques,
        flaws=data.flaws,
    )


async def _same_extras(
    session: AsyncSession, judgment: Judgment, project: Project, assignment: Assignment, data: JudgmentCreate
) -> bool:
    sent = await _extras(session, project, assignment, data)
    return sent.key() == (await critiques.stored(session, judgment)).key()


def _ended_refusal(reason: str | None) -> str:
    return f"{ENDED.get(reason or '', _ENDED_UNKNOWN)}, so your verdict is stored but does not count."


async def _gold_answer(session: AsyncSession, assignment: Assignment) -> GoldAnswer | None:
    """The gold answer of a gold assignment's item (None if an admin cleared it since)."""
    gold = await session.scalar(select(Item.gold).where(Item.id == assignment.item_id))
    return None if gold is None else GoldAnswer.model_validate(gold)


async def _scale(session: AsyncSession, assignment: Assignment) -> tuple[float | None, float | None]:
    """The scale of the assignment's item (a rating subtask's; (None, None) for other kinds)."""
    row = (await session.execute(select(Item.scale_min, Item.scale_max).where(Item.id == assignment.item_id))).one()
    return row.scale_min, row.scale_max


def _feedback(project: Project, answer: GoldAnswer, value: float | None) -> rules.Feedback | None:
    return rules.Feedback.of(answer, value) if project.gold_feedback else None


async def _stored(session: AsyncSession, assignment: Assignment, project: Project, data: JudgmentCreate) -> Submitted:
    existing = await session.scalar(select(Judgment).where(Judgment.assignment_id == assignment.id))
    assert existing is not None
    if not same_verdict(existing, data) or not await _same_extras(session, existing, project, assignment, data):
        from server.labeling.schemas import JudgmentRead  # the stored verdict goes back with the refusal

        raise Conflict(
            "You already judged this item with a different verdict; the first one is kept.",
            judgment=JudgmentRead.model_validate(existing).model_dump(mode="json"),
        )
    refusal = _ended_refusal(existing.surplus_reason) if existing.surplus_reason in ENDED else None
    feedback = None
    if existing.feedback_shown and (answer := await _gold_answer(session, assignment)) is not None:
        value = await rules.verdict_score(
            session,
            answer,
            item_id=assignment.item_id,
            choice=existing.choice_id,
            ranking=existing.ranking,
            tie=existing.tie,
            both_bad=existing.both_bad,
            answer=existing.answer,
            scale=await _scale(session, assignment),
        )
        feedback = rules.Feedback.of(answer, value)  # shown with the first answer: shown again
    return Submitted(judgment=existing, created=False, project=project, refusal=refusal, feedback=feedback)


async def _gold_rules(
    session: AsyncSession,
    *,
    project: Project,
    member: ProjectMember,
    rater: User,
    assignment: Assignment,
    verdict: Verdict,
    data: JudgmentCreate,
    stored_answer: object,
) -> tuple[rules.Feedback | None, rules.Decision]:
    """Score a gold verdict before it is stored: the feedback to show and what it decides."""
    answer = await _gold_answer(session, assignment)
    if answer is None:
        return None, rules.Decision()
    value = await rules.verdict_score(
        session,
        answer,
        item_id=assignment.item_id,
        choice=verdict.choice,
        ranking=verdict.ranking,
        tie=data.tie,
        both_bad=data.both_bad,
        answer=stored_answer,
        scale=await _scale(session, assignment),
    )
    decision = await rules.decide(session, project=project, member=member, rater=rater, value=value, now=_now())
    if project.suspension_window and rater.kind == UserKind.human:
        await reliability.keep_current(session, project)  # the rule's agreement part reads the figures
    return _feedback(project, answer, value), decision


def _now() -> datetime:
    return datetime.now(UTC)


async def _apply(
    session: AsyncSession, *, project: Project, member: ProjectMember, rater: User, decision: rules.Decision
) -> None:
    """Write what a gold verdict decided onto the (locked) membership; end the leases it ends."""
    if decision.qualified is not None:
        member.qualification_result = decision.qualification_result
        if decision.qualified:
            member.qualified_at = func.now()
        else:
            member.qualification_failed_at = func.now()
        audit.record(
            session,
            actor=None,
            action="member.qualify" if decision.qualified else "member.not_admitted",
            target_type="user",
            target_id=rater.id,
            project_id=project.id,
            data={"result": decision.qualification_result},
        )
    if decision.suspended_reason is not None:
        member.suspended_at = func.now()
        member.suspended_reason = decision.suspended_reason
        audit.record(
            session,
            actor=None,
            action="member.suspend",
            target_type="user",
            target_id=rater.id,
            project_id=project.id,
            data={"reason": decision.suspended_reason, "rule": decision.rule},
        )
    await session.flush()
    if decision.ends_leases:
        reason = SurplusReason.suspended if decision.suspended_reason else SurplusReason.not_admitted
        await end_leases(session, project_id=project.id, rater_id=rater.id, reason=reason)


# A verdict's judgment and its assignment's new status in one statement (an UPDATE in a CTE of the
# INSERT, where a flush sent two); the assignment's row is locked first (_SUBMITTED_ASSIGNMENT).
# Built once, like the selects above; seq, xid and created_at come back from their server defaults.
# The parameters are named `j_<column>`: a parameter named like a column would join the SET list.
_JUDGMENTS, _ASSIGNMENTS = cast(Table, Judgment.__table__), cast(Table, Assignment.__table__)
_STORED_COLUMNS = [c for c in _JUDGMENTS.columns if c.name not in ("seq", "xid", "created_at", "revised_at")]
_INSERT_JUDGMENT = (
    insert(_JUDGMENTS)
    .values({c.name: bindparam(f"j_{c.name}", type_=c.type) for c in _STORED_COLUMNS})
    .add_cte(
        update(_ASSIGNMENTS)
        .where(_ASSIGNMENTS.c.id == bindparam("j_assignment_id"))
        .values(status=literal_column(f"'{AssignmentStatus.submitted.value}'"), finished_at=func.now())
        .cte("finished")
    )
    .returning(*_JUDGMENTS.columns)
)
_STORE_JUDGMENT = select(Judgment).from_statement(_INSERT_JUDGMENT)
# The same, writing the item's slot too (see _LOCK_SLOT_ITEMS): one statement where two were sent.
_ITEMS = cast(Table, Item.__table__)
_COMPLETES = bindparam("s_completes", type_=Boolean)
_TAKE_SLOT = (
    update(_ITEMS)
    .where(_ITEMS.c.id == bindparam("j_item_id", type_=_JUDGMENTS.c.item_id.type))
    .values(
        leased=_ITEMS.c.leased - bindparam("s_released", type_=Integer),
        judged=_ITEMS.c.judged + bindparam("s_counted", type_=Integer),
        completed_at=case((_COMPLETES, func.now()), else_=_ITEMS.c.completed_at),
        aggregate_revision=_ITEMS.c.aggregate_revision + case((_COMPLETES, 1), else_=0),
        aggregate_xid=case((_COMPLETES, literal_column(CURRENT_XID)), else_=_ITEMS.c.aggregate_xid),
    )
    .cte("slot")
)
_STORE_JUDGMENT_TAKING_SLOT = select(Judgment).from_statement(_INSERT_JUDGMENT.add_cte(_TAKE_SLOT))


async def _store_judgment(
    session: AsyncSession, assignment: Assignment, slot: _Slot | None, **values: object
) -> Judgment:
    """Insert the judgment of a locked assignment and mark the assignment submitted, in one statement,
    which also writes the item's slot when the verdict changes its counters (`slot`; the item is locked)."""
    row = {
        "id": uuid.uuid4(),
        "assignment_id": assignment.id,
        "project_id": assignment.project_id,
        "item_id": assignment.item_id,
        "revision": 1,
        **values,
    }
    params = {f"j_{k}": v for k, v in row.items()}
    if slot is not None and (slot.counted or slot.released):
        counters = {"s_released": slot.released, "s_counted": int(slot.counted), "s_completes": slot.completes}
        judgment: Judgment = (await session.scalars(_STORE_JUDGMENT_TAKING_SLOT, params | counters)).one()
    else:  # a late verdict on a filled item changes no counter
        judgment = (await session.scalars(_STORE_JUDGMENT, params)).one()
    # What the statement wrote, as a flush would leave it: the status as stored, finished_at unread.
    set_committed_value(assignment, "status", AssignmentStatus.submitted)
    session.expire(assignment, ["finished_at"])
    return judgment


async def submit(session: AsyncSession, *, assignment_id: uuid.UUID, rater: User, data: JudgmentCreate) -> Submitted:
    """Store a verdict once; a retry returns the first; a late one on a filled item is kept as surplus.

    A verdict on a lease an admin ended (removal, suspension) is stored too, uncounted and marked
    with why; `Submitted.refusal` then says so. Nothing a rater sent is silently dropped. A gold
    verdict is scored first (quality/rules.py): feedback, the qualification round and the
    suspension rule are decided in this transaction, under the membership lock taken first. A
    model judge's verdict counts toward its item's model phase instead (labeling/handoff.py).
    """
    if data.confidence is not None and not handoff.is_model(rater):
        raise Invalid(HUMAN_CONFIDENCE)
    member = await _lock_membership_of(session, assignment_id, rater)
    row = (
        await session.execute(_SUBMITTED_ASSIGNMENT, {"assignment_id": assignment_id, "rater_id": rater.id})
    ).one_or_none()
    if row is None:
        raise NotFound(f"No assignment {assignment_id} of yours.")
    assignment, project, item = row
    if assignment.status == AssignmentStatus.submitted:
        return await _stored(session, assignment, project, data)
    if assignment.status == AssignmentStatus.skipped:
        raise Conflict("You skipped this item, so it cannot be judged any more.")
    if item.kind == "comparison":
        verdict = validate_verdict(project, list(assignment.shown_order), data)
        answer = trees.check_answer(item, data.answer)
    else:
        verdict, answer = validate_answer(project, item, data)
    extras = await _extras(session, project, assignment, data)
    feedback, decision = None, rules.Decision()
    if assignment.gold and member is not None and assignment.status != AssignmentStatus.ended:
        feedback, decision = await _gold_rules(
            session,
            project=project,
            member=member,
            rater=rater,
            assignment=assignment,
            verdict=verdict,
            data=data,
            stored_answer=answer,
        )
    # The item is locked by a statement of its own before its slot is taken (_LOCK_SLOT_ITEMS' comment
    # says why); a subtask's verdict may complete it and so open its parent: the two rows are locked
    # together, in id order (the parent's id may come first).
    takes_slot = assignment.status != AssignmentStatus.ended
    parent = [item.parent_id] if item.parent_id is not None and takes_slot else []
    locked: Sequence[Row[Any]] = ()
    if decision.ends_leases:  # the lock order: leases (id order), then every item involved (id order)
        held = await session.scalars(_LOCK_LEASES, {"project_id": project.id, "rater_id": rater.id})
        locked = await _by_ids(session, _LOCK_SLOT_ITEM, _LOCK_SLOT_ITEMS, [assignment.item_id, *parent, *held])
    elif takes_slot:
        locked = await _by_ids(session, _LOCK_SLOT_ITEM, _LOCK_SLOT_ITEMS, [assignment.item_id, *parent])
    decides, slot = False, None
    if assignment.status == AssignmentStatus.ended:
        counted, reason = False, assignment.ended_reason
    elif handoff.is_model(rater) and not assignment.gold:
        held_lease = assignment.status == AssignmentStatus.leased
        counted, model_judged = await handoff.take_slot(
            session, project=project, item_id=assignment.item_id, held=held_lease
        )
        reason = None if counted else SurplusReason.filled
        rule = handoff.rule_of(project)
        decides = counted and rule is not None and model_judged >= rule.min_judges
    else:
        slot = _slot(locked, assignment.item_id, held=assignment.status == AssignmentStatus.leased)
        counted = slot.counted  # written with the judgment below (_store_judgment)
        if slot.completes and parent:
            await trees.subtask_completed(session, parent[0])
        # A gold item wants nothing (its judgments measure the rater), so this is not surplus.
        reason = None if counted or assignment.gold else SurplusReason.filled
    judgment = await _store_judgment(
        session,
        assignment,
        slot,
        rater_id=rater.id,
        choice_id=verdict.choice,
        ranking=verdict.ranking,
        strength=verdict.strength,
        tie=data.tie,
        both_bad=data.both_bad,
        rationale=verdict.rationale,
        active_ms=data.active_ms,
        answer=answer,
        surplus=reason is not None,
        surplus_reason=reason,
        gold=assignment.gold,
        feedback_shown=feedback is not None,
        assistance_shown=assistance.is_shown(assignment),
        rater_kind=rater.kind,
        confidence=data.confidence,
    )
    if member is not None and (decision.qualified is not None or decision.suspended_reason is not None):
        await _apply(session, project=project, member=member, rater=rater, decision=decision)
    await critiques.store(session, judgment=judgment, rater=rater, extras=extras)
    if decides:  # this verdict completed the model phase: route the item (its lock is held)
        await handoff.decide(session, project=project, item_id=assignment.item_id)
    refusal = _ended_refusal(reason) if reason in ENDED else None
    return Submitted(judgment=judgment, created=True, project=project, refusal=refusal, feedback=feedback)


# --- skip, heartbeat ---------------------------------------------------------------------------


async def _own_assignment(session: AsyncSession, assignment_id: uuid.UUID, rater: User) -> Assignment:
    """Lock the caller's membership, then their assignment; someone else's is 404, as if it did not exist."""
    await _lock_membership_of(session, assignment_id, rater)
    assignment = await session.scalar(
        select(Assignment).where(Assignment.id == assignment_id, Assignment.rater_id == rater.id).with_for_update()
    )
    if assignment is None:
        raise NotFound(f"No assignment {assignment_id} of yours.")
    return assignment


def _lease_ended(assignment: Assignment) -> Conflict:
    return Conflict(f"{ENDED.get(assignment.ended_reason or '', _ENDED_UNKNOWN)}; there is nothing to renew or skip.")


async def skip(
    session: AsyncSession,
    *,
    assignment_id: uuid.UUID,
    rater: User,
    reason: str | None,
    reason_code: SkipReason | None = None,
) -> Assignment:
    """Give an item back, optionally saying why; it is never offered to this rater again. Skipping twice is
    harmless (the first skip's reason stays)."""
    assignment = await _own_assignment(session, assignment_id, rater)
    if assignment.status == AssignmentStatus.submitted:
        raise Conflict("You already judged this item; a judged item cannot be skipped.")
    if assignment.status == AssignmentStatus.skipped:
        return assignment
    if assignment.status == AssignmentStatus.ended:
        raise _lease_ended(assignment)
    if assignment.status == AssignmentStatus.leased:
        await session.execute(
            text("UPDATE items SET leased = leased - 1 WHERE id = :item_id"), {"item_id": assignment.item_id}
        )
    assignment.status = AssignmentStatus.skipped
    assignment.skip_reason = reason
    assignment.skip_reason_code = reason_code
    assignment.finished_at = func.now()
    await session.flush()
    await session.refresh(assignment)
    return assignment


async def heartbeat(session: AsyncSession, *, assignment_id: uuid.UUID, rater: User) -> Assignment:
    """Renew a lease while the rater is still on the item; a run-out lease is renewed if its slot is free."""
    assignment = await _own_assignment(session, assignment_id, rater)
    if assignment.status in (AssignmentStatus.submitted, AssignmentStatus.skipped):
        raise Conflict(f"This assignment is already {assignment.status}; there is no lease to renew.")
    if assignment.status == AssignmentStatus.ended:
        raise _lease_ended(assignment)
    project = await session.get_one(Project, assignment.project_id)
    if assignment.status == AssignmentStatus.expired:
        retaken = await session.scalar(
            text(
                "UPDATE items SET leased = leased + 1 WHERE id = :item_id AND NOT paused"
                " AND (gold_seq IS NOT NULL OR leased + judged < wanted) RETURNING id"
            ),
            {"item_id": assignment.item_id},
        )
        if retaken is None:
            if await session.scalar(select(Item.paused).where(Item.id == assignment.item_id)):
                raise Conflict(
                    "Your time on this item ran out and its batch has been paused since, so it cannot be renewed. "
                    "You can still submit it (it is kept, marked surplus) or move on to the next item."
                )
            raise Conflict(
                "Your time on this item ran out and other raters have since filled it. "
                "You can still submit (it is kept, marked surplus) or move on to the next item."
            )
    await session.execute(
        update(Assignment)
        .where(Assignment.id == assignment.id)
        .values(
            status=AssignmentStatus.leased,
            expires_at=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, project.lease_seconds),
        )
    )
    await session.refresh(assignment)
    return assignment
