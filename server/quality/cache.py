"""Quality figures cached per data version, served stale while a fresh one is computed.

A figure (agreement with bootstrap intervals, the leaderboard, ...) is computed from a project's
judgments; recomputing it on every page view would cost seconds at a million judgments. The
cache keeps one snapshot per (project, name) with the data version it was computed at.

The data version is `<queue_epoch>.<newest judgment xid>`: every new or revised judgment gets
a new `xid` (revisions restamp it), and everything that changes the project's data otherwise
(an import, a deleted batch, a cleared gold item, a new overlap) bumps `queue_epoch` under the
project lock. Reading it is one index-only step on `ix_judgments_export`.

While raters work, the version changes with every judgment. So a snapshot of an older version is
answered at once when computing the figure took longer than `SYNC_SECONDS` last time, and a
fresh one is computed in the background (one at a time per figure in each server process); the
answer says which version it is and when it was computed (`Figure.current`, `computed_at`), and
the pages say so. A cheap figure, or a caller that asks for `fresh`, is computed in the request.
A figure never computed is computed in the request for the API and exports; a page asks for it
with `page=True`: it waits up to `FIRST_WAIT_SECONDS` for a background computation and otherwise
gets `Computing`, says so, and asks again (a first view at a million judgments takes seconds).
No lock is held while a figure is computed; two computations that race both store a figure that
was right for the version it read, and the newer write wins.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.models import QualitySnapshot

logger = logging.getLogger(__name__)

# A figure whose last computation took longer than this is refreshed in the background.
SYNC_SECONDS = 0.25
# A page waits this long for a figure never computed before it says the figure is being computed
# (None: as long as it takes; the tests set that, so that what they read does not depend on speed).
FIRST_WAIT_SECONDS: float | None = 0.25

# A figure's computation: it runs in the caller's session or in a background session of its own, so
# it reads everything through the session it is given, never through ORM objects of the caller's.
Compute = Callable[[AsyncSession], Awaitable[dict[str, Any]]]

_VERSION = text(
    """
    SELECT p.queue_epoch::text || '.' || coalesce(
             (SELECT j.xid FROM judgments j WHERE j.project_id = p.id ORDER BY j.xid DESC LIMIT 1), 0)::text
    FROM projects p WHERE p.id = :project_id
    """
)

_refreshing: dict[tuple[uuid.UUID, str], asyncio.Task[None]] = {}


class Computing(Exception):
    """A figure never computed before is being computed in the background (a page shows that it is)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"The figure {name} is being computed.")
        self.name = name


@dataclass(frozen=True, slots=True)
class Figure:
    payload: dict[str, Any]
    version: str  # the data version the payload was computed at
    current: bool  # False: an older version's figure, while a fresh one is computed
    computed_at: datetime
    seconds: float  # how long computing it took


async def data_version(session: AsyncSession, project_id: uuid.UUID) -> str:
    """The version of a project's judgment data: changes whenever a cached figure could."""
    return str(await session.scalar(_VERSION, {"project_id": project_id}))


async def _compute_and_store(
    session: AsyncSession, project_id: uuid.UUID, name: str, version: str, compute: Compute
) -> Figure:
    started = time.perf_counter()
    payload = await compute(session)
    seconds = time.perf_counter() - started
    values = {"data_version": version, "payload": payload, "seconds": seconds}
    computed_at = await session.scalar(
        insert(QualitySnapshot)
        .values(project_id=project_id, name=name, **values)
        .on_conflict_do_update(
            index_elements=[QualitySnapshot.project_id, QualitySnapshot.name],
            set_={**values, "computed_at": text("now()")},
        )
        .returning(QualitySnapshot.computed_at)
    )
    assert computed_at is not None
    return Figure(payload=payload, version=version, current=True, computed_at=computed_at, seconds=seconds)


def _refresh_later(engine: AsyncEngine, project_id: uuid.UUID, name: str, compute: Compute) -> asyncio.Task[None]:
    key = (project_id, name)
    if key in _refreshing:
        return _refreshing[key]

    async def refresh() -> None:
        try:
            async with AsyncSession(engine, expire_on_commit=False) as session:
                version = await data_version(session, project_id)
                await _compute_and_store(session, project_id, name, version, compute)
                await session.commit()
        except Exception:
            logger.exception("quality.refresh failed project=%s figure=%s", project_id, name)
        finally:
            _refreshing.pop(key, None)

    task = _refreshing[key] = asyncio.get_running_loop().create_task(refresh())
    return task


async def refresh_if_old(
    session: AsyncSession, project_id: uuid.UUID, name: str, compute: Compute, *, seconds: float
) -> None:
    """Start computing the figure in the background unless its snapshot is of the current data version
    or was computed less than `seconds` ago (a figure that something reads without a view: at most
    one computation per `seconds`, one at a time). Reads two columns of one row; never waits."""
    engine = session.bind if isinstance(session.bind, AsyncEngine) else None
    if engine is None:
        return
    row = (
        await session.execute(
            select(QualitySnapshot.data_version, QualitySnapshot.computed_at).where(
                QualitySnapshot.project_id == project_id, QualitySnapshot.name == name
            )
        )
    ).one_or_none()
    if row is not None:
        if (datetime.now(UTC) - row.computed_at).total_seconds() < seconds:
            return
        if row.data_version == await data_version(session, project_id):
            return
    _refresh_later(engine, project_id, name, compute)


async def refreshes_done() -> None:
    """Wait for the background refreshes under way (tests; the app's shutdown)."""
    while _refreshing:
        await asyncio.gather(*list(_refreshing.values()), return_exceptions=True)


async def _snapshot(session: AsyncSession, project_id: uuid.UUID, name: str) -> QualitySnapshot | None:
    return await session.scalar(
        select(QualitySnapshot).where(QualitySnapshot.project_id == project_id, QualitySnapshot.name == name)
    )


async def cached(
    session: AsyncSession,
    project_id: uuid.UUID,
    name: str,
    compute: Compute,
    *,
    fresh: bool = False,
    page: bool = False,
) -> Figure:
    """The figure `name` for the project's data, computed by `compute(session)` into a JSON-ready dict.

    The current version's snapshot if there is one; else an older one at once while the figure is
    refreshed in the background (when it is slow to compute and `fresh` is not asked); else it is
    computed now, and the caller's transaction stores it (commit at the request boundary). For a
    `page`, a figure never computed is computed in the background, `fresh` or not; the page gets it
    if it is ready within `FIRST_WAIT_SECONDS`, and `Computing` if not.
    """
    version = await data_version(session, project_id)
    snapshot = await _snapshot(session, project_id, name)
    engine = session.bind if isinstance(session.bind, AsyncEngine) else None
    if snapshot is None and page and engine is not None:
        task = _refresh_later(engine, project_id, name, compute)
        await asyncio.wait({task}, timeout=FIRST_WAIT_SECONDS)
        if not task.done():
            raise Computing(name)
        snapshot = await _snapshot(session, project_id, name)  # stored by the background session
    if snapshot is not None:
        figure = Figure(
            payload=snapshot.payload,
            version=snapshot.data_version,
            current=snapshot.data_version == version,
            computed_at=snapshot.computed_at,
            seconds=snapshot.seconds,
        )
        if figure.current:
            return figure
        if not fresh and snapshot.seconds > SYNC_SECONDS and engine is not None:
            _refresh_later(engine, project_id, name, compute)
            return figure
    return await _compute_and_store(session, project_id, name, version, compute)
