"""Quality figures cached per data version.

A figure (agreement with bootstrap intervals, the leaderboard, ...) is computed from a project's
judgments; recomputing it on every page view would cost seconds at a million judgments. The
cache keeps one snapshot per (project, name) with the data version it was computed at and
returns it while the version is unchanged.

The data version is `<queue_epoch>.<newest judgment xid>`: every new or revised judgment gets
a new `xid` (revisions restamp it), and everything that changes the project's data otherwise
(an import, a deleted batch, a cleared gold item, a new overlap) bumps `queue_epoch` under the
project lock. Reading it is one index-only step on `ix_judgments_export`.

Two requests that miss at once both compute and the last write wins: no lock is held while a
figure is computed, and both results are right for the version they read.
"""

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from server.models import QualitySnapshot

_VERSION = text(
    """
    SELECT p.queue_epoch::text || '.' || coalesce(
             (SELECT j.xid FROM judgments j WHERE j.project_id = p.id ORDER BY j.xid DESC LIMIT 1), 0)::text
    FROM projects p WHERE p.id = :project_id
    """
)


async def data_version(session: AsyncSession, project_id: uuid.UUID) -> str:
    """The version of a project's judgment data: changes whenever a cached figure could."""
    return str(await session.scalar(_VERSION, {"project_id": project_id}))


async def cached(
    session: AsyncSession,
    project_id: uuid.UUID,
    name: str,
    compute: Callable[[], Awaitable[dict[str, Any]]],
) -> tuple[dict[str, Any], str]:
    """The figure `name` for the project's current data version, and that version.

    `compute` returns a JSON-ready dict; it runs only when no snapshot of this version exists.
    The caller's transaction stores the new snapshot (commit at the request boundary).
    """
    version = await data_version(session, project_id)
    snapshot = await session.scalar(
        select(QualitySnapshot).where(QualitySnapshot.project_id == project_id, QualitySnapshot.name == name)
    )
    if snapshot is not None and snapshot.data_version == version:
        return snapshot.payload, version
    started = time.perf_counter()
    payload = await compute()
    seconds = time.perf_counter() - started
    values = {"data_version": version, "payload": payload, "seconds": seconds}
    await session.execute(
        insert(QualitySnapshot)
        .values(project_id=project_id, name=name, **values)
        .on_conflict_do_update(
            index_elements=[QualitySnapshot.project_id, QualitySnapshot.name],
            set_={**values, "computed_at": text("now()")},
        )
    )
    return payload, version
