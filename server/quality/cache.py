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
the pages say so. A cheap figure, a figure never computed, or a caller that asks for `fresh` is
computed in the request. No lock is held while a figure is computed; two computations that race
both store a figure that was right for the version it read, and the newer write wins.
"""

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from server.models import QualitySnapshot

logger = logging.getLogger(__name__)

# A figure whose last computation took longer than this is refreshed in the background.
SYNC_SECONDS = 0.25

Compute = Callable[[AsyncSession], Awaitable[dict[str, Any]]]

_VERSION = text(
    """
    SELECT p.queue_epoch::text || '.' || coalesce(
             (SELECT j.xid FROM judgments j WHERE j.project_id = p.id ORDER BY j.xid DESC LIMIT 1), 0)::text
    FROM projects p WHERE p.id = :project_id
    """
)

_refreshing: dict[tuple[uuid.UUID, str], asyncio.Task[None]] = {}


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


def _refresh_later(engine: AsyncEngine, project_id: uuid.UUID, name: str, compute: Compute) -> None:
    key = (project_id, name)
    if key in _refreshing:
        return

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

    _refreshing[key] = asyncio.get_running_loop().create_task(refresh())


async def refreshes_done() -> None:
    """Wait for the background refreshes under way (tests; the app's shutdown)."""
    while _refreshing:
        await asyncio.gather(*list(_refreshing.values()), return_exceptions=True)


async def cached(
    session: AsyncSession, project_id: uuid.UUID, name: str, compute: Compute, *, fresh: bool = False
) -> Figure:
    """The figure `name` for the project's data, computed by `compute(session)` into a JSON-ready dict.

    The current version's snapshot if there is one; else an older one at once while the figure is
    refreshed in the background (when it is slow to compute and `fresh` is not asked); else it is
    computed now, and the caller's transaction stores it (commit at the request boundary).
    """
    version = await data_version(session, project_id)
    snapshot = await session.scalar(
        select(QualitySnapshot).where(QualitySnapshot.project_id == project_id, QualitySnapshot.name == name)
    )
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
        if not fresh and snapshot.seconds > SYNC_SECONDS and isinstance(session.bind, AsyncEngine):
            _refresh_later(session.bind, project_id, name, compute)
            return figure
    return await _compute_and_store(session, project_id, name, version, compute)
