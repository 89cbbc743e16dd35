"""Import task batches all-or-nothing, and steer them (pause, resume, priority).

An upload is parsed as a stream and copied in chunks into a temporary staging table inside
the request's transaction; duplicate ids and already-imported items are then found with
set-based SQL. Any error rolls the whole transaction back, so nothing is half-imported, and
Python's memory stays flat whatever the file's size: the parser refuses a file once it passes
the upload limits (settings ASSAY_UPLOAD_*: bytes after decompression, line, text, candidates,
items), and a chunk holds at most CHUNK_ROWS rows or CHUNK_BYTES of them.
"""

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson
from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server import audit
from server.batches.formats import (
    Encoding,
    ImportFormat,
    ImportLimits,
    ParsedItem,
    RowError,
    detect_encoding,
    iter_records,
)
from server.batches.preview import Preview, file_start, not_jsonl_summary, preview_file
from server.batches.schemas import MAX_BATCH_NAME, BatchProgress, BatchUpdate, ImportResult, UploadOptions
from server.config import Settings, settings
from server.errors import Invalid, NotFound
from server.items import search, subtasks
from server.labeling import queue
from server.models import Assignment, AssignmentStatus, Batch, Item, Judgment, Project, User
from server.models.xid import CURRENT_XID
from server.projects import lifecycle

MAX_LISTED_ERRORS = 50
CHUNK_ROWS = 5000
CHUNK_BYTES = 16 << 20  # rows of long texts: two chunks in flight stay small
STAGING_COLUMNS = ("line", "external_id", "prompt", "metadata", "gold", "candidates", "critiques", "subtasks")


class ImportRefused(Invalid):
    """A file with errors (422), or past a size limit (413): nothing was written."""


def import_limits(config: Settings = settings) -> ImportLimits:
    """The upload limits the settings set."""
    return ImportLimits(
        decompressed_bytes=config.upload_max_decompressed_bytes,
        line_bytes=config.upload_max_line_bytes,
        text_chars=config.upload_max_text_chars,
        messages=config.upload_max_messages,
        candidates=config.upload_max_candidates,
        items=config.upload_max_items,
        parquet_row_group_bytes=config.upload_max_parquet_row_group_bytes,
    )


def _staging_row(item: ParsedItem) -> tuple[Any, ...]:
    # Absent keys, not JSON nulls: the insert reads `->` and needs SQL NULL for a missing side.
    candidates = [
        {k: v for k, v in (("text", c.text), ("messages", c.messages), ("model", c.model)) if v is not None}
        | {"metadata": c.metadata}
        | ({"planted": c.planted} if c.planted else {})
        for c in item.candidates
    ]
    return (
        item.line,
        item.external_id,
        orjson.dumps(item.prompt).decode(),
        orjson.dumps(item.metadata).decode(),
        None if item.gold is None else orjson.dumps(item.gold).decode(),
        orjson.dumps(candidates).decode(),
        orjson.dumps(item.critiques).decode() if item.critiques else None,
        orjson.dumps(item.subtasks).decode() if item.subtasks else None,
    )


class _Chunks:
    """Pulls parsed rows in chunks (in a worker thread) and keeps the error tally."""

    def __init__(self, records: Iterator[ParsedItem | RowError]) -> None:
        self.records = records
        self.errors: list[RowError] = []
        self.error_count = 0
        self.rows = 0
        self.has_messages = False
        self.has_critiques = False
        self.has_planted = False
        self.has_subtasks = False
        self.too_large = False

    def next_chunk(self) -> list[tuple[Any, ...]]:
        chunk: list[tuple[Any, ...]] = []
        size = 0
        for record in self.records:
            if isinstance(record, RowError):
                self.error_count += 1
                self.too_large = self.too_large or record.too_large
                if len(self.errors) < MAX_LISTED_ERRORS or record.too_large:
                    self.errors.append(record)
            elif not self.error_count:  # after the first error, only keep checking
                row = _staging_row(record)
                chunk.append(row)
                size += len(row[2]) + len(row[3]) + len(row[5]) + (len(row[4]) if row[4] else 0)
                size += (len(row[6]) if row[6] else 0) + (len(row[7]) if row[7] else 0)
                self.has_critiques = self.has_critiques or bool(record.critiques)
                self.has_planted = self.has_planted or any(c.planted for c in record.candidates)
                self.has_subtasks = self.has_subtasks or bool(record.subtasks)
                if not self.has_messages:
                    self.has_messages = isinstance(record.prompt, list) or any(c.messages for c in record.candidates)
            self.rows += 1
            if len(chunk) >= CHUNK_ROWS or size >= CHUNK_BYTES:
                break
        return chunk


def file_sha256(file: BinaryIO) -> str:
    digest = hashlib.sha256()
    file.seek(0)
    while block := file.read(1 << 20):
        digest.update(block)
    file.seek(0)
    return digest.hexdigest()


async def _copy_to_staging(session: AsyncSession, chunks: _Chunks) -> None:
    # One big set-based insert follows: JIT compilation only adds latency, and the sort by line
    # should stay in memory.
    await session.execute(text("SET LOCAL jit = off"))
    await session.execute(text("SET LOCAL work_mem = '64MB'"))
    # A second import in the same transaction (the demo's projects) finds the first one's table.
    await session.execute(text("DROP TABLE IF EXISTS pg_temp.import_staging"))
    await session.execute(
        text(
            "CREATE TEMP TABLE import_staging (line int, external_id text, prompt jsonb, metadata jsonb,"
            " gold jsonb, candidates jsonb, critiques jsonb, subtasks jsonb) ON COMMIT DROP"
        )
    )
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None
    # Parse the next chunk in a thread while PostgreSQL copies this one.
    pending = asyncio.ensure_future(asyncio.to_thread(chunks.next_chunk))
    try:
        while chunk := await pending:
            pending = asyncio.ensure_future(asyncio.to_thread(chunks.next_chunk))
            await raw.copy_records_to_table("import_staging", records=chunk, columns=STAGING_COLUMNS)
    finally:
        if not pending.done():
            await asyncio.wait([pending])
    # Temporary tables are never auto-analyzed: without statistics the planner guesses a few
    # hundred rows and picks nested loops and on-disk sorts for the inserts that follow.
    await session.execute(text("ANALYZE import_staging"))


async def _duplicate_errors(session: AsyncSession) -> tuple[list[RowError], int]:
    rows = (
        await session.execute(
            text(
                "SELECT external_id, array_agg(line ORDER BY line) AS lines, count(*) OVER () AS total"
                " FROM import_staging GROUP BY external_id HAVING count(*) > 1"
                " ORDER BY min(line) LIMIT :limit"
            ),
            {"limit": MAX_LISTED_ERRORS},
        )
    ).all()
    errors = [
        RowError(
            line=r.lines[1],
            field="id",
            message=f"id {r.external_id!r} is used again; it first appears on line {r.lines[0]}. "
            "Ids must be unique within a project.",
        )
        for r in rows
    ]
    return errors, (rows[0].total if rows else 0)


_INSERT_ITEMS = text(
    f"""
    WITH new AS (
        INSERT INTO items (id, project_id, batch_id, external_id, prompt, metadata, gold, gold_seq, wanted,
                           batch_priority, paused, awaiting_models, aggregate_revision, aggregate_xid)
        SELECT gen_random_uuid(), :project_id, :batch_id, s.external_id, s.prompt, s.metadata, s.gold,
               CASE WHEN s.gold IS NULL THEN NULL ELSE nextval('items_gold_seq') END,
               CASE WHEN s.gold IS NULL THEN :wanted ELSE 0 END, :batch_priority, :paused,
               -- the hand-off: model judges get every new item first (gold measures raters: never)
               s.gold IS NULL AND CAST(:handoff AS boolean),
               -- a gold item's answer is its first aggregate revision (gold=include exports deliver it)
               CASE WHEN s.gold IS NULL THEN 0 ELSE 1 END,
               CASE WHEN s.gold IS NULL THEN NULL ELSE {CURRENT_XID} END
        FROM import_staging s ORDER BY s.line
        ON CONFLICT (project_id, external_id) DO NOTHING
        RETURNING id, external_id
    ), cands AS (
        INSERT INTO candidates (id, item_id, position, text, messages, model, metadata)
        SELECT gen_random_uuid(), new.id, c.ord - 1, c.value ->> 'text', c.value -> 'messages',
               c.value ->> 'model', coalesce(c.value -> 'metadata', '{{}}'::jsonb)
        FROM new
        JOIN import_staging s ON s.external_id = new.external_id
        CROSS JOIN LATERAL jsonb_array_elements(s.candidates) WITH ORDINALITY AS c(value, ord)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM new) AS created, (SELECT count(*) FROM import_staging) AS total,
           (SELECT count(*) FROM cands) AS candidates
    """
)


# Critiques given in the records (native `critiques`), for the items this import created.
_INSERT_CRITIQUES = text(
    """
    INSERT INTO critiques (id, project_id, item_id, candidate_id, text, author_model, severity,
                           span_message, span_start, span_end)
    SELECT gen_random_uuid(), i.project_id, i.id, c.id, cr.value ->> 'text', cr.value ->> 'author',
           cr.value ->> 'severity', (cr.value ->> 'message')::smallint, (cr.value ->> 'start')::int,
           (cr.value ->> 'end')::int
    FROM import_staging s
    JOIN items i ON i.project_id = :project_id AND i.external_id = s.external_id AND i.batch_id = :batch_id
    CROSS JOIN LATERAL jsonb_array_elements(s.critiques) WITH ORDINALITY AS cr(value, ord)
    JOIN candidates c ON c.item_id = i.id AND c.position = (cr.value ->> 'candidate')::int
    WHERE s.critiques IS NOT NULL
    ORDER BY s.line, cr.ord
    """
)


# Flaws planted in the responses (native `responses[i].planted`), for the items this import created.
_INSERT_PLANTED = text(
    """
    INSERT INTO planted_flaws (id, project_id, item_id, candidate_id, span_message, span_start, span_end,
                               description, created_by)
    SELECT gen_random_uuid(), i.project_id, i.id, c.id, (p.value ->> 'message')::smallint,
           (p.value ->> 'start')::int, (p.value ->> 'end')::int, p.value ->> 'description', :actor
    FROM import_staging s
    JOIN items i ON i.project_id = :project_id AND i.external_id = s.external_id AND i.batch_id = :batch_id
    CROSS JOIN LATERAL jsonb_array_elements(s.candidates) WITH ORDINALITY AS r(value, ord)
    CROSS JOIN LATERAL jsonb_array_elements(r.value -> 'planted') WITH ORDINALITY AS p(value, ord)
    JOIN candidates c ON c.item_id = i.id AND c.position = r.ord - 1
    WHERE r.value ? 'planted'
    ORDER BY s.line, r.ord, p.ord
    """
)


async def import_file(
    session: AsyncSession,
    *,
    project: Project,
    file: BinaryIO,
    filename: str | None,
    name: str | None,
    format: ImportFormat | None,
    encoding: Encoding | None,
    priority: int,
    actor: User,
) -> ImportResult:
    """Import a file as a new batch, or refuse it whole with errors that name line and field."""
    sha = file_sha256(file)
    file.seek(0)
    if encoding is None:
        encoding = detect_encoding(file.read(4096), filename)
        file.seek(0)
    records = iter_records(file, encoding=encoding, format=format, filename=filename, limits=import_limits())
    chunks = _Chunks(records)
    await _copy_to_staging(session, chunks)
    if not chunks.error_count:
        dup_errors, dup_count = await _duplicate_errors(session)
        chunks.errors, chunks.error_count = dup_errors, dup_count
    if chunks.too_large:
        limit = next(e for e in chunks.errors if e.too_large)
        raise ImportRefused(
            f"The file was refused: {limit.message} Nothing was imported.",
            status_code=413,
            errors=[{"line": e.line, "field": e.field, "message": e.message} for e in chunks.errors],
            error_count=chunks.error_count,
        )
    if chunks.error_count:
        summary = not_jsonl_summary(
            encoding, items=chunks.rows - chunks.error_count, errors=chunks.errors, head=file_start(file)
        )
        raise ImportRefused(
            f"The file was refused: {summary + ' ' if summary else ''}{chunks.error_count} error(s). Nothing was "
            "imported; fix the lines listed and upload it again.",
            errors=[{"line": e.line, "field": e.field, "message": e.message} for e in chunks.errors],
            error_count=chunks.error_count,
        )
    if chunks.rows == 0:
        raise ImportRefused(
            "The file holds no items.",
            errors=[{"line": 0, "field": "(file)", "message": "The file holds no items."}],
            error_count=1,
        )
    # Imports of one project queue up here (the project row is the first lock in the order), and
    # the overlap read under the lock is the one in force even if a settings change just landed.
    wanted = await queue.lock_for_reorder(session, project.id)
    # In an archived project new items are out of the queue too (projects/lifecycle.py: one rule for `paused`).
    archived, handoff = (
        await session.execute(select(Project.archived_at, Project.handoff).where(Project.id == project.id))
    ).one()
    batch = Batch(
        project_id=project.id,
        name=name or (filename or "upload").replace("\x00", "")[:MAX_BATCH_NAME],
        source_format=f"{format or 'auto'}/{encoding}",
        priority=priority,
        sha256=sha,
        has_messages=chunks.has_messages,
        created_by_id=actor.id,
    )
    session.add(batch)
    await session.flush()
    counts = (
        await session.execute(
            _INSERT_ITEMS,
            {
                "project_id": project.id,
                "batch_id": batch.id,
                "wanted": wanted,
                "batch_priority": priority,
                "paused": archived is not None,
                "handoff": handoff is not None,
            },
        )
    ).one()
    skipped = counts.total - counts.created
    if counts.created:  # the items' search vectors are written once this commits (items/search.py)
        await search.mark_pending(session, batch_id=batch.id, project_id=project.id)
    if chunks.has_critiques:
        await session.execute(_INSERT_CRITIQUES, {"project_id": project.id, "batch_id": batch.id})
    if chunks.has_planted:
        await session.execute(_INSERT_PLANTED, {"project_id": project.id, "batch_id": batch.id, "actor": actor.id})
    if chunks.has_subtasks:  # the new items' trees; a parent of an item skipped as existing gets none
        await subtasks.insert_staged(session, project=project, batch=batch, wanted=wanted)
    await queue.rewind_to(session, project.id, "i.batch_id = :batch_id", {"batch_id": batch.id})
    if counts.created == 0:
        await session.delete(batch)
        await session.flush()
        return ImportResult(
            id=None,
            created=0,
            skipped_existing=skipped,
            message=f"All {skipped} items are already in this project; nothing was added.",
        )
    batch.item_count = counts.created
    audit.record(
        session,
        actor=actor,
        action="batch.import",
        target_type="batch",
        target_id=batch.id,
        project_id=project.id,
        data={"created": counts.created, "skipped_existing": skipped, "sha256": sha},
    )
    await session.flush()
    message = f"Imported {counts.created} items."
    if skipped:
        message += f" {skipped} items were already in this project and were skipped."
    return ImportResult(id=batch.id, created=counts.created, skipped_existing=skipped, message=message)


async def preview_upload(file: BinaryIO, *, filename: str | None, options: UploadOptions) -> Preview:
    """The dry run of an upload (the page's "Preview first items" and the API's /preview): the import's
    parser and limits, in a worker thread; nothing is written."""
    return await asyncio.to_thread(
        preview_file,
        file,
        filename=filename,
        format=options.format,
        encoding=options.encoding,
        limits=import_limits(),
    )


async def get(session: AsyncSession, batch_id: uuid.UUID) -> Batch:
    batch = await session.get(Batch, batch_id)
    if batch is None:
        raise NotFound(f"No batch with id {batch_id}.")
    return batch


async def _count_by_batch(session: AsyncSession, statement: Select[uuid.UUID, int]) -> dict[uuid.UUID, int]:
    return {batch_id: count for batch_id, count in await session.execute(statement)}


async def list_with_progress(session: AsyncSession, project: Project) -> list[BatchProgress]:
    """The project's batches with items complete, judgments, skips and live leases (a scan: admin pages only)."""
    batches = list(
        await session.scalars(select(Batch).where(Batch.project_id == project.id).order_by(Batch.created_at))
    )
    # Gold items are left out: they measure raters, they are not the batch's work.
    by_item = (
        select(Item.batch_id).where(Item.project_id == project.id, Item.gold_seq.is_(None)).group_by(Item.batch_id)
    )
    completed = await _count_by_batch(session, by_item.add_columns(func.count(Item.completed_at)))
    judged = await _count_by_batch(
        session, by_item.add_columns(func.count(Judgment.id)).join(Judgment, Judgment.item_id == Item.id)
    )
    leased = await _count_by_batch(
        session,
        by_item.add_columns(func.count(Assignment.id))
        .join(Assignment, Assignment.item_id == Item.id)
        .where(Assignment.status == "leased", Assignment.expires_at > func.now()),
    )
    skipped = await _count_by_batch(
        session,
        by_item.add_columns(func.count(Assignment.id))
        .join(Assignment, Assignment.item_id == Item.id)
        .where(Assignment.status == AssignmentStatus.skipped),
    )
    return [
        BatchProgress.model_validate(
            {
                **BatchProgress.model_validate(b).model_dump(),
                "completed_items": completed.get(b.id, 0),
                "judgments": judged.get(b.id, 0),
                "active_leases": leased.get(b.id, 0),
                "skipped": skipped.get(b.id, 0),
            }
        )
        for b in batches
    ]


async def steer(session: AsyncSession, batch: Batch, data: BatchUpdate, *, actor: User) -> Batch:
    """Rename, pause/resume, reprioritise, archive or unarchive a batch; its items follow in the queue at once."""
    changes = data.model_dump(exclude_none=True)  # null: unchanged
    archived = changes.pop("archived", None)
    if archived is not None:
        await lifecycle.set_batch_archived(session, batch, archived, actor=actor)
    moves = ("status" in changes and changes["status"] != batch.status) or (
        "priority" in changes and changes["priority"] != batch.priority
    )
    if moves:
        # Lock order: the project row, then the batch row, then its items in id order.
        await queue.lock_for_reorder(session, batch.project_id)
        batch = await lifecycle.lock_batch(session, batch)
        project_archived = await session.scalar(select(Project.archived_at).where(Project.id == batch.project_id))
        steer = {
            "batch_id": batch.id,
            # An archived batch (or project) stays out of the queue whatever its own status.
            "paused": changes.get("status", batch.status) == "paused"
            or batch.archived_at is not None
            or project_archived is not None,
            "priority": changes.get("priority", batch.priority),
        }
        await session.execute(_LOCK_STEER_TARGET, steer)
        await session.execute(_STEER_ITEMS, steer)
        # Pausing moves nothing ahead; resuming or reprioritising moves this batch's items.
        await queue.rewind_to(session, batch.project_id, "i.batch_id = :batch_id", {"batch_id": batch.id})
    if not changes:
        return batch
    for key, value in changes.items():
        setattr(batch, key, value)
    await session.flush()
    await session.refresh(batch)
    audit.record(
        session,
        actor=actor,
        action="batch.update",
        target_type="batch",
        target_id=batch.id,
        project_id=batch.project_id,
        data={k: str(v) for k, v in changes.items()},
    )
    return batch


# The items are locked by a statement of their own first: a statement that waits for rows does not
# write them (docs/ARCHITECTURE.md "Locks").
_STEER_TARGET = """
        SELECT id FROM items WHERE batch_id = :batch_id
          AND (paused IS DISTINCT FROM :paused OR batch_priority IS DISTINCT FROM :priority)
        ORDER BY id FOR NO KEY UPDATE"""
_LOCK_STEER_TARGET = text(_STEER_TARGET)
_STEER_ITEMS = text(
    f"""
    WITH target AS ({_STEER_TARGET}
    )
    UPDATE items i SET paused = :paused, batch_priority = :priority FROM target WHERE i.id = target.id
    """
)
