"""Archive (reversibly) and delete a batch or a project, in one place for the API and the pages.

Archiving stops serving the work and keeps all of it: the batch's (or project's) items are paused
in the queue (`items.paused`, the mechanism a paused batch uses), their live leases end through
`labeling.service.end_leases` (a verdict sent later on one is stored uncounted and answered 409
with why), and exports go on delivering everything. Unarchiving serves the items again unless
their batch is paused for its own sake. An archived project is also left out of raters' lists.

Deleting removes a batch's items with their candidates, assignments, judgments and revisions (a
project: every batch's), and keeps export manifests and the audit log: rows already delivered to
a trainer are history, and an incremental pull after the deletion simply has nothing new for
those items (docs/ARCHITECTURE.md, "Archive and delete"). A deleted project's row stays as a
tombstone (`deleted_at`) so its manifests keep their project; it is visible to nobody.

Both take the locks in the documented order (docs/ARCHITECTURE.md, "Locks"): the project row
(`queue.lock_for_reorder`, which also starts a new queue epoch and so invalidates the quality
cache), then batches, then every membership of the project (so no rater request of the project is
in flight: the ones that started finish first, the next ones wait and then find nothing), then
assignments and items in id order.
"""

import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit
from server.errors import Invalid, NotFound
from server.labeling import queue
from server.labeling import service as labeling
from server.models import Batch, Project, SurplusReason, User
from server.projects.schemas import Deleted


@dataclass(frozen=True, slots=True)
class Impact:
    """What a deletion removes (and what archiving ends: `live_leases`)."""

    items: int
    judgments: int
    raters: int
    live_leases: int

    def sentence(self) -> str:
        """“1,234 items, 3,456 judgments by 12 raters”."""
        raters = f" by {self.raters:,} rater{'s' if self.raters != 1 else ''}" if self.judgments else ""
        items = f"{self.items:,} item{'s' if self.items != 1 else ''}"
        return f"{items}, {self.judgments:,} judgment{'s' if self.judgments != 1 else ''}{raters}"


def confirm_sentence(kind: str, name: str, impact: Impact) -> str:
    """The one sentence that names what a deletion removes, for the page and the API."""
    return f"Delete {kind} “{name}”: {impact.sentence()}."


def confirmed(name: str, confirm: str | None) -> bool:
    """Whether the typed confirmation is the name (surrounding spaces aside)."""
    return confirm is not None and confirm.strip() == name.strip()


def refusal(kind: str, name: str, impact: Impact) -> Invalid:
    """The API's answer to a deletion without its confirmation (nothing was deleted)."""
    return Invalid(
        f"{confirm_sentence(kind, name, impact)} Nothing was deleted: "
        f"send the {kind}'s name as `confirm` to delete it.",
        impact={"items": impact.items, "judgments": impact.judgments, "raters": impact.raters},
    )


def deleted_result(kind: str, name: str, removed: Impact) -> Deleted:
    return Deleted(
        items=removed.items,
        judgments=removed.judgments,
        raters=removed.raters,
        message=f"Deleted {kind} “{name}”: {removed.sentence()}. Export manifests are kept.",
    )


_SCOPE = {"batch": "i.batch_id = :target", "project": "i.project_id = :target"}


async def impact(
    session: AsyncSession, *, batch_id: uuid.UUID | None = None, project_id: uuid.UUID | None = None
) -> Impact:
    """Items, judgments, distinct raters and live leases of a batch or a project (a scan: admin pages only)."""
    kind, target = ("batch", batch_id) if batch_id is not None else ("project", project_id)
    where = _SCOPE[kind]
    row = (
        await session.execute(
            text(
                f"""
                SELECT (SELECT count(*) FROM items i WHERE {where}) AS items,
                       (SELECT count(*) FROM judgments j JOIN items i ON i.id = j.item_id WHERE {where}) AS judgments,
                       (SELECT count(DISTINCT j.rater_id) FROM judgments j JOIN items i ON i.id = j.item_id
                        WHERE {where}) AS raters,
                       (SELECT count(*) FROM assignments a JOIN items i ON i.id = a.item_id
                        WHERE {where} AND a.status = 'leased' AND a.expires_at > now()) AS live_leases
                """
            ),
            {"target": target},
        )
    ).one()
    return Impact(items=row.items, judgments=row.judgments, raters=row.raters, live_leases=row.live_leases)


# The third lock in the order: every membership of the project, so that no rater request of the
# project runs while the work moves (each starts by locking its membership).
_LOCK_MEMBERSHIPS = text("SELECT 1 FROM project_members WHERE project_id = :project_id ORDER BY user_id FOR UPDATE")

# Items are served unless their batch is paused or archived, or their project archived: set
# `paused` to that rule for a batch's or a project's items (only those that change), in id order.
# (The items are locked by a statement of their own first: a statement that waits for rows does not
# write them, docs/ARCHITECTURE.md "Locks".)
_REPAUSE_TARGET = """
        SELECT i.id, (b.status = 'paused' OR b.archived_at IS NOT NULL OR p.archived_at IS NOT NULL) AS paused
        FROM items i JOIN batches b ON b.id = i.batch_id JOIN projects p ON p.id = i.project_id
        WHERE {where}
          AND i.paused IS DISTINCT FROM (b.status = 'paused' OR b.archived_at IS NOT NULL OR p.archived_at IS NOT NULL)
        ORDER BY i.id FOR NO KEY UPDATE OF i"""
_REPAUSE_SQL = """
    WITH target AS ({target}
    )
    UPDATE items i SET paused = target.paused FROM target WHERE i.id = target.id
    """
_LOCK_REPAUSE = {kind: text(_REPAUSE_TARGET.format(where=where)) for kind, where in _SCOPE.items()}
_REPAUSE = {
    kind: text(_REPAUSE_SQL.format(target=_REPAUSE_TARGET.format(where=where))) for kind, where in _SCOPE.items()
}

# Deleting: assignments first (their judgments and revisions go with them), in id order, then the
# items (candidates, scores and subtasks go with them), in id order.
_DELETE_SQL = {
    "assignments": """
        DELETE FROM assignments a USING (
            SELECT a.id FROM assignments a JOIN items i ON i.id = a.item_id WHERE {where}
            ORDER BY a.id FOR UPDATE OF a
        ) t WHERE a.id = t.id
        """,
    "items": """
        DELETE FROM items d USING (
            SELECT i.id FROM items i WHERE {where} ORDER BY i.id FOR UPDATE OF i
        ) t WHERE d.id = t.id
        """,
}
_DELETE = {
    (kind, table): text(sql.format(where=where)) for kind, where in _SCOPE.items() for table, sql in _DELETE_SQL.items()
}


async def lock_batch(session: AsyncSession, batch: Batch, *, delete: bool = False) -> Batch:
    """The batch row locked (after the project row) and read again; 404 when it was deleted meanwhile."""
    locked = await session.scalar(
        select(Batch)
        .where(Batch.id == batch.id)
        .with_for_update(key_share=not delete)
        .execution_options(populate_existing=True)
    )
    if locked is None:
        raise NotFound(f"Batch {batch.id} was deleted meanwhile; nothing was changed.")
    return locked


async def _lock_project_and_memberships(session: AsyncSession, project_id: uuid.UUID, batch: Batch | None) -> None:
    await queue.lock_for_reorder(session, project_id)
    if batch is not None:
        await lock_batch(session, batch)
    await session.execute(_LOCK_MEMBERSHIPS, {"project_id": project_id})


async def set_batch_archived(session: AsyncSession, batch: Batch, archived: bool, *, actor: User) -> int:
    """Archive a batch (its items are served to nobody, live leases end now) or unarchive it.

    Returns how many leases ended. Setting the state it already has changes nothing.
    """
    await _lock_project_and_memberships(session, batch.project_id, batch)
    if archived == (batch.archived_at is not None):
        return 0
    return await _set_archived(session, "batch", batch, batch.project_id, archived, actor=actor)


async def set_project_archived(session: AsyncSession, project: Project, archived: bool, *, actor: User) -> int:
    """Archive a project (hidden from raters, nothing served, live leases end now) or unarchive it."""
    await _lock_project_and_memberships(session, project.id, None)
    await session.refresh(project)
    if archived == (project.archived_at is not None):
        return 0
    return await _set_archived(session, "project", project, project.id, archived, actor=actor)


async def _set_archived(
    session: AsyncSession, kind: str, row: Batch | Project, project_id: uuid.UUID, archived: bool, *, actor: User
) -> int:
    """Archive or unarchive a locked batch or project: end its live leases, re-pause its items, audit."""
    ended = 0
    if archived:
        scope = {"batch_id": row.id} if kind == "batch" else {}
        ended = await labeling.end_leases(session, project_id=project_id, reason=SurplusReason.archived, **scope)
    row.archived_at = func.now() if archived else None
    await session.flush()
    await session.execute(_LOCK_REPAUSE[kind], {"target": row.id})
    await session.execute(_REPAUSE[kind], {"target": row.id})
    await session.refresh(row)
    audit.record(
        session,
        actor=actor,
        action=f"{kind}.archive" if archived else f"{kind}.unarchive",
        target_type=kind,
        target_id=row.id,
        project_id=project_id,
        data={"name": row.name, "leases_ended": ended} if archived else {"name": row.name},
    )
    return ended


# Search vectors (items/search.py, no foreign keys): the pending mark first, which waits for the
# indexer's chunk under way to commit and then keeps it away from this batch or project.
_DELETE_SEARCH = {
    kind: (
        text(f"DELETE FROM search_pending WHERE {column} = :target"),
        text(f"DELETE FROM item_search s USING items i WHERE s.item_id = i.id AND {where}"),
    )
    for (kind, where), column in zip(_SCOPE.items(), ("batch_id", "project_id"), strict=True)
}


async def _delete_work(session: AsyncSession, kind: str, target: uuid.UUID) -> None:
    for statement in _DELETE_SEARCH[kind]:
        await session.execute(statement, {"target": target})
    await session.execute(_DELETE[(kind, "assignments")], {"target": target})
    await session.execute(_DELETE[(kind, "items")], {"target": target})


async def delete_batch(session: AsyncSession, batch: Batch, *, confirm: str | None, actor: User) -> Impact:
    """Delete a batch with its items, assignments and judgments, once its name is typed as `confirm`."""
    if not confirmed(batch.name, confirm):
        raise refusal("batch", batch.name, await impact(session, batch_id=batch.id))
    await queue.lock_for_reorder(session, batch.project_id)
    await lock_batch(session, batch, delete=True)
    await session.execute(_LOCK_MEMBERSHIPS, {"project_id": batch.project_id})
    removed = await impact(session, batch_id=batch.id)  # exact: nothing of the project moves now
    await _delete_work(session, "batch", batch.id)
    await session.delete(batch)
    audit.record(
        session,
        actor=actor,
        action="batch.delete",
        target_type="batch",
        target_id=batch.id,
        project_id=batch.project_id,
        data={"name": batch.name, "items": removed.items, "judgments": removed.judgments, "raters": removed.raters},
    )
    await session.flush()
    return removed


async def delete_project(session: AsyncSession, project: Project, *, confirm: str | None, actor: User) -> Impact:
    """Delete a project's batches, items, assignments and judgments once its name is typed as `confirm`;
    the row stays as a tombstone for its export manifests and audit log, seen by nobody."""
    if not confirmed(project.name, confirm):
        raise refusal("project", project.name, await impact(session, project_id=project.id))
    await queue.lock_for_reorder(session, project.id)
    await session.execute(select(Batch.id).where(Batch.project_id == project.id).order_by(Batch.id).with_for_update())
    await session.execute(_LOCK_MEMBERSHIPS, {"project_id": project.id})
    removed = await impact(session, project_id=project.id)
    await _delete_work(session, "project", project.id)
    await session.execute(text("DELETE FROM batches WHERE project_id = :project_id"), {"project_id": project.id})
    project.deleted_at = func.now()
    await session.flush()
    await session.refresh(project)
    audit.record(
        session,
        actor=actor,
        action="project.delete",
        target_type="project",
        target_id=project.id,
        project_id=project.id,
        data={"name": project.name, "items": removed.items, "judgments": removed.judgments, "raters": removed.raters},
    )
    await session.flush()
    return removed
