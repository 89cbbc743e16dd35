"""The rater loop's requests as sequences of transactions (the only place in labeling that commits).

A verdict and the lease of the item after it used to share one transaction. When SKIP LOCKED
found nothing, the pick then waited for another rater's item lock while still holding the
judged item's lock, and two raters near the end of a project deadlocked (the victim's verdict
was rolled back with a 500). Here every request is split so that a transaction only waits for
a lock when it holds no item lock:

- `lease_next`: reclaim and pick with SKIP LOCKED; only when that finds nothing, commit and wait
  for the first open item the rater has not seen, in a new transaction that holds just the
  rater's membership (which comes before items in the lock order) and waits for that one row.
- `judge_then_lease` / `skip_then_lease` (the rater page): store the verdict and commit it, so it
  is durable before anything else happens, then `lease_next` the item after the ones the page
  holds. A failure to lease ahead never takes the verdict with it.

A deadlock or serialisation failure is retried a few times as defence in depth; the lock order
(docs/ARCHITECTURE.md) is what prevents them.
"""

import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from server.auth.service import Principal
from server.errors import AssayError
from server.labeling import service
from server.labeling.schemas import JudgmentCreate
from server.logs import get_logger
from server.models import Assignment, Project, ProjectMember, SkipReason, User
from server.projects import service as projects

T = TypeVar("T")
RETRIES = 3
WAIT_ROUNDS = 20  # items filled while we waited for them, before "nothing left" is answered
RETRIED_STATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure
log = get_logger("labeling")


@dataclass(frozen=True, slots=True)
class Ahead:
    """What the page gets after a verdict or skip: the next lease, nothing left, or why labeling stopped."""

    leased: service.Leased | None
    stopped: str | None = None


async def _retrying(session: AsyncSession, step: Callable[[], Awaitable[T]], *, reload: Collection[Any] = ()) -> T:
    for attempt in range(1, RETRIES + 1):
        try:
            return await step()
        except DBAPIError as exc:
            state = getattr(exc.orig, "sqlstate", None)
            if state not in RETRIED_STATES or attempt == RETRIES:
                raise
            log.warning("labeling.retry", sqlstate=state, attempt=attempt)
            await session.rollback()
            for instance in reload:  # a rollback expires what the session loaded
                await session.refresh(instance)
    raise AssertionError("unreachable")


async def lease_next(
    session: AsyncSession,
    *,
    project: Project,
    rater: User,
    exclude: Collection[uuid.UUID] = (),
    member: ProjectMember | None = None,
) -> service.Leased | None:
    """The rater's current lease or a new one; None when nothing is left for them. `member`: the
    rater's membership, locked by this transaction already (a retry after a rollback locks it again)."""
    locked = [member] if member is not None else []

    async def pick() -> service.Leased | None:
        held = locked.pop() if locked else None
        return await service.next_assignment(session, project=project, rater=rater, exclude=exclude, member=held)

    async def wait() -> service.Leased | service.Moved | None:
        return await service.wait_for_next(session, project=project, rater=rater)

    leased = await _retrying(session, pick, reload=(project, rater))
    # "Nothing unlocked" is not "nothing left": wait for the first locked item, in a transaction
    # that holds no item lock, one row at a time.
    for _ in range(WAIT_ROUNDS if leased is None else 0):
        await session.commit()
        waited = await _retrying(session, wait, reload=(project, rater))
        if not isinstance(waited, service.Moved):
            leased = waited
            break
    if leased is not None:
        log.info("labeling.lease", project_id=str(project.id), rater_id=str(rater.id), item_id=str(leased.item.id))
    return leased


async def lease_next_in(session: AsyncSession, *, project_id: uuid.UUID, principal: Principal) -> service.Leased | None:
    """The API's `next`: as lease_next, with the project found by its id in the statement that locks
    the caller's membership; a caller who is no member of it is answered as before (404 when they
    may not see it, else 403)."""
    locked = await service.lock_membership_with_project(session, project_id=project_id, rater=principal.user)
    if locked is None:
        project = await projects.get_accessible(session, principal, project_id)
        return await lease_next(session, project=project, rater=principal.user)
    member, project = locked
    return await lease_next(session, project=project, rater=principal.user, member=member)


async def _then_lease(session: AsyncSession, project: Project, rater: User, ahead: Collection[uuid.UUID]) -> Ahead:
    await session.commit()  # the verdict (or skip) is stored before anything else can go wrong
    try:
        return Ahead(leased=await lease_next(session, project=project, rater=rater, exclude=ahead))
    except AssayError as exc:  # paused project, membership removed or suspended meanwhile
        await session.rollback()
        if exc.status_code >= 500:  # the server, not the rater's project, failed: the page retries
            raise
        return Ahead(leased=None, stopped=exc.message)


async def judge(
    session: AsyncSession, *, assignment_id: uuid.UUID, rater: User, data: JudgmentCreate
) -> service.Submitted:
    """Store a verdict (the API's judgment), retried after a deadlock or serialisation failure."""
    return await _retrying(
        session, lambda: service.submit(session, assignment_id=assignment_id, rater=rater, data=data), reload=(rater,)
    )


async def judge_then_lease(
    session: AsyncSession,
    *,
    assignment_id: uuid.UUID,
    rater: User,
    data: JudgmentCreate,
    ahead: Collection[uuid.UUID],
) -> tuple[service.Submitted, Ahead]:
    """Store a verdict (committed), then lease the item after the ones in `ahead`."""
    result = await judge(session, assignment_id=assignment_id, rater=rater, data=data)
    log.info(
        "labeling.judge",
        assignment_id=str(assignment_id),
        rater_id=str(rater.id),
        created=result.created,
        surplus_reason=result.judgment.surplus_reason,
    )
    after = await _then_lease(session, result.project, rater, ahead)
    if after.stopped is not None:  # the failed lease was rolled back, which expired what the page reads
        await session.refresh(result.judgment)
        await session.refresh(result.project)
    return result, after


async def skip_then_lease(
    session: AsyncSession,
    *,
    assignment_id: uuid.UUID,
    rater: User,
    reason: str | None,
    reason_code: SkipReason | None,
    ahead: Collection[uuid.UUID],
) -> tuple[Assignment, Ahead]:
    """Skip an item (committed), then lease the item after the ones in `ahead`."""
    assignment = await _retrying(
        session,
        lambda: service.skip(session, assignment_id=assignment_id, rater=rater, reason=reason, reason_code=reason_code),
        reload=(rater,),
    )
    project = await session.get_one(Project, assignment.project_id)
    log.info(
        "labeling.skip",
        assignment_id=str(assignment_id),
        rater_id=str(rater.id),
        reason_code=assignment.skip_reason_code,
    )
    return assignment, await _then_lease(session, project, rater, ahead)
