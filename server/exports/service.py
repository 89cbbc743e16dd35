"""Incremental exports of judgments, in commit order, from one consistent snapshot.

The cursor is a transaction-id watermark, not a row number: a row is exported once every
transaction older than it has finished (its `xid` is below the watermark: the oldest
transaction of this database still running when the snapshot was taken). A row whose
transaction commits late, after later rows, is therefore never skipped: it is simply
delivered by the pull after it commits. Each export reads inside one REPEATABLE READ
transaction, so the rows and the cursor it returns describe the same snapshot.

Two row sources share that cursor:
- per judgment: the judgments whose `xid` lies in [after, watermark);
- per completed item (`granularity=item`, or `completed=true`): the completed items whose
  current aggregate was written in that range (`items.aggregate_xid`). Each completion of an
  item is an aggregate revision (`aggregate_revision`, counting up): an item is delivered
  exactly once per aggregate revision, in the pull that sees that revision; surplus judgments
  (work on an item that already had all it wanted) stay out of it. A lowered overlap completes
  items with the judgments they have (a new revision, delivered); a raised one reopens them
  until they complete again (another revision). Consumers keep, per `item_id`, the row with the
  highest `aggregate_revision`.
"""

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from server.auth.service import Principal
from server.config import settings
from server.errors import Invalid, NotFound
from server.exports.encoders import Encoding, make_encoder
from server.exports.formats import (
    FORMAT_VERSION,
    ExportFormat,
    Granularity,
    Renderer,
    aggregate_item,
    item_pairs,
    judgment_pairs,
    raw_item_row,
    raw_row,
)
from server.models import Export, Item, Project, Scale, User
from server.projects.service import accessible_project_ids

CURSOR_PREFIX = "j2"
FETCH_ROWS = 1000  # rows per round trip of the server-side cursor


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What a trainer asked for. The row-selection part is bound into the cursor it gets back."""

    format: ExportFormat = ExportFormat.trl
    encoding: Encoding = Encoding.jsonl
    granularity: Granularity = Granularity.judgment
    batch_id: uuid.UUID | None = None
    completed: bool = False
    since: datetime | None = None
    until: datetime | None = None
    min_agreement: float | None = None
    margin: bool = False

    @property
    def by_completed_item(self) -> bool:
        return self.completed or self.granularity == Granularity.item

    def filters(self) -> dict[str, Any]:
        """The filters that choose rows (not their shape), as stored in the manifest."""
        return {
            "granularity": self.granularity.value,
            "batch_id": None if self.batch_id is None else str(self.batch_id),
            "completed": self.by_completed_item,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "min_agreement": self.min_agreement,
        }

    def selection_key(self) -> str:
        return hashlib.sha256(orjson.dumps(self.filters(), option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]

    def check(self, project: Project) -> None:
        """Refuse combinations that cannot mean what the trainer wants, saying what to change."""
        if self.min_agreement is not None and self.granularity != Granularity.item:
            raise Invalid(
                "min_agreement filters the raters' aggregate of an item: add granularity=item or drop min_agreement."
            )
        if self.margin and self.format != ExportFormat.trl:
            raise Invalid(f"margin is a column of the trl format; format={self.format} has no margin.")
        if self.margin and project.scale == Scale.binary:
            raise Invalid(
                f"margin comes from the raters' strength, and project '{project.name}' uses the binary scale "
                "(no strength); drop margin=true."
            )
        if self.since and self.until and self.since >= self.until:
            raise Invalid("since must be earlier than until.")


def encode_cursor(xid: int, request: ExportRequest) -> str:
    raw = f"{CURSOR_PREFIX}:{xid}:{request.selection_key()}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, request: ExportRequest) -> int:
    if not cursor:
        return 0
    try:
        prefix, xid, key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(":")
        if prefix != CURSOR_PREFIX:
            raise ValueError(prefix)
        value = int(xid)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid(
            "after is not a cursor from this server; pass the Assay-Next-Cursor value of your last export."
        ) from None
    if key != request.selection_key():
        raise Invalid(
            "This cursor belongs to an export with other filters (granularity, batch_id, completed, since, until, "
            "min_agreement): repeat that export's filters, or start again without after."
        )
    return value


def rater_pseudonym(project_id: uuid.UUID, rater_id: uuid.UUID) -> str:
    """A stable per-project id for a rater that does not reveal who they are."""
    message = f"{project_id}:{rater_id}".encode()
    return "r_" + hmac.new(settings.secret_key.encode(), message, hashlib.sha256).hexdigest()[:16]


# --- SQL -------------------------------------------------------------------------------------

_CANDIDATES = """(SELECT jsonb_agg(jsonb_build_object('id', c.id, 'text', c.text, 'messages', c.messages,
                                                   'model', c.model, 'metadata', c.metadata) ORDER BY c.position)
                   FROM candidates c WHERE c.item_id = i.id) AS candidates"""

_JUDGMENT_COLUMNS = f"""j.id, j.item_id, j.choice_id, j.ranking, j.strength, j.tie, j.both_bad, j.rationale,
       j.active_ms, j.surplus, j.surplus_reason, j.assistance_shown, j.created_at, j.rater_id,
       i.external_id, i.prompt, i.batch_id, a.shown_order, a.leased_at, {_CANDIDATES}"""

# Completed items whose current aggregate was written in [low, high) (`aggregate_xid`: the
# transaction that completed the item, see labeling/service.py and projects/service.py). Every
# counted judgment of such an item is older, so all are visible in the snapshot. An aggregate
# that changes (the item reopens and completes again) gets a new revision and a new xid, so it is
# delivered again: exactly once per aggregate revision.
_FINALISED = """
    WITH final AS (
        SELECT i.id AS item_id, i.aggregate_xid AS last_xid
        FROM items i
        WHERE i.project_id = :project_id AND i.aggregate_xid >= :low AND i.aggregate_xid < :high
          AND i.completed_at IS NOT NULL
    )"""


def _filters_sql(request: ExportRequest, time_column: str) -> str:
    clauses = []
    if request.batch_id is not None:
        clauses.append("i.batch_id = :batch_id")
    if request.since is not None:
        clauses.append(f"{time_column} >= :since")
    if request.until is not None:
        clauses.append(f"{time_column} < :until")
    return "".join(f" AND {c}" for c in clauses)


def rows_sql(request: ExportRequest) -> str:
    if not request.by_completed_item:
        return f"""
            SELECT {_JUDGMENT_COLUMNS}, NULL::int AS aggregate_revision
            FROM judgments j
            JOIN items i ON i.id = j.item_id
            JOIN assignments a ON a.id = j.assignment_id
            WHERE j.project_id = :project_id AND j.xid >= :low AND j.xid < :high{_filters_sql(request, "j.created_at")}
            ORDER BY j.xid, j.seq"""
    if request.granularity == Granularity.judgment:
        return f"""{_FINALISED}
            SELECT {_JUDGMENT_COLUMNS}, i.aggregate_revision
            FROM final
            JOIN items i ON i.id = final.item_id
            JOIN judgments j ON j.item_id = final.item_id AND NOT j.surplus
            JOIN assignments a ON a.id = j.assignment_id
            WHERE true{_filters_sql(request, "i.completed_at")}
            ORDER BY final.last_xid, i.seq, j.seq"""
    return f"""{_FINALISED}
        SELECT i.id AS item_id, i.external_id, i.prompt, i.batch_id, i.completed_at, i.aggregate_revision,
               {_CANDIDATES},
               (SELECT jsonb_agg(jsonb_build_object('choice_id', j.choice_id, 'ranking', j.ranking,
                                                    'strength', j.strength, 'tie', j.tie, 'both_bad', j.both_bad)
                                 ORDER BY j.seq)
                  FROM judgments j WHERE j.item_id = i.id AND NOT j.surplus) AS judgments
        FROM final
        JOIN items i ON i.id = final.item_id
        WHERE true{_filters_sql(request, "i.completed_at")}
        ORDER BY final.last_xid, i.seq"""


# The watermark: the oldest transaction id that was still running when the snapshot was taken,
# leaving out the ones that run in *another* database (they can never write our judgments).
# Transaction ids are cluster-wide, so without that, any long transaction on the same
# PostgreSQL server would stall every export. A running id whose database cannot be read
# (it ended meanwhile, or the role may not see other users' sessions) counts as ours: the
# watermark may then wait longer than needed, never less. The snapshot is the transaction's
# (REPEATABLE READ), so the rows read afterwards are exactly those it shows as committed.
_WATERMARK = text(
    """
    WITH snap AS (SELECT pg_current_snapshot() AS s)
    SELECT least(
        pg_snapshot_xmax(s)::text::bigint,
        (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s) AS x
         WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                           WHERE a.backend_xid::text::bigint = x::text::bigint % 4294967296
                             AND a.datname IS DISTINCT FROM current_database()))
    )
    FROM snap
    """
)

# Committed rows this pull cannot include yet because an older transaction in this database
# is still open (the watermark waits for it); the next pull delivers them.
_HELD_BACK = text("SELECT count(*) FROM judgments WHERE project_id = :project_id AND xid >= :high")
_HAS_MESSAGES = text("SELECT coalesce(bool_or(has_messages), false) FROM batches WHERE project_id = :project_id")


# --- the stream ------------------------------------------------------------------------------


@dataclass
class ExportStream:
    connection: AsyncConnection  # REPEATABLE READ, read only: the snapshot
    engine: AsyncEngine
    record_id: uuid.UUID
    project_id: uuid.UUID
    request: ExportRequest
    low: int
    high: int
    held_back: int
    chat: bool

    @property
    def next_cursor(self) -> str:
        return encode_cursor(self.high, self.request)

    def _params(self) -> dict[str, Any]:
        params = {"project_id": self.project_id, "low": self.low, "high": self.high}
        return params | {k: v for k, v in asdict(self.request).items() if k in ("batch_id", "since", "until")}

    async def body(self) -> AsyncIterator[bytes]:
        """The encoded rows, streamed from a server-side cursor; the manifest is completed at the end."""
        request = self.request
        renderer = Renderer(request.format, chat=self.chat, margin=request.margin)
        encoder = make_encoder(
            request.encoding, request.format, request.granularity, chat=self.chat, margin=request.margin
        )
        digest, rows, size = hashlib.sha256(), 0, 0
        try:
            result = await self.connection.stream(text(rows_sql(request)), self._params())
            async for partition in result.mappings().partitions(FETCH_ROWS):
                out: list[dict[str, Any]] = []
                for row in partition:
                    out.extend(self._render(renderer, row))
                chunk = encoder.encode(out)
                rows += len(out)
                if chunk:
                    digest.update(chunk)
                    size += len(chunk)
                    yield chunk
            if tail := encoder.finish():
                digest.update(tail)
                size += len(tail)
                yield tail
        finally:
            await self.connection.close()
        async with self.engine.begin() as connection:
            await connection.execute(
                update(Export)
                .where(Export.id == self.record_id)
                .values(status="complete", rows=rows, bytes=size, sha256=digest.hexdigest(), finished_at=text("now()"))
            )

    def _render(self, renderer: Renderer, row: Mapping[Any, Any]) -> list[dict[str, Any]]:
        request = self.request
        if request.granularity == Granularity.item:
            aggregate = aggregate_item(row["candidates"], row["judgments"] or [])
            if request.format == ExportFormat.raw:
                return [raw_item_row(row, aggregate)]
            pairs = item_pairs(row, aggregate, min_agreement=request.min_agreement or 0.0)
            if not aggregate.pairs and aggregate.both_bad * 2 > aggregate.judgments:
                return renderer.both_bad_rows(row["prompt"], row["candidates"])
        else:
            if request.format == ExportFormat.raw:
                return [raw_row(row, rater_pseudonym(self.project_id, row["rater_id"]))]
            pairs = judgment_pairs(row)
            if not pairs and row["both_bad"]:
                return renderer.both_bad_rows(row["prompt"], row["candidates"])
        return [out for pair in pairs for out in renderer.rows(pair)]


async def open_export(
    engine: AsyncEngine, *, project: Project, requester: User, after: str | None, request: ExportRequest
) -> ExportStream:
    """Record the export, take the snapshot and fix the cursor range; the caller streams `body()`.

    The manifest row is written (and committed) before the snapshot is taken, so the export's
    own write never holds the watermark back.
    """
    request.check(project)
    low = decode_cursor(after, request)
    async with engine.begin() as connection:
        record_id = await connection.scalar(
            insert(Export)
            .values(
                id=uuid.uuid4(),
                project_id=project.id,
                requested_by_id=requester.id,
                format=request.format.value,
                encoding=request.encoding.value,
                granularity=request.granularity.value,
                filters=request.filters() | {"margin": request.margin},
                format_version=FORMAT_VERSION,
                cursor_from=low,
                cursor_to=low,
                status="streaming",
            )
            .returning(Export.id)
        )
    assert record_id is not None
    connection = await engine.connect()
    try:
        connection = await connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        await connection.begin()
        watermark = await connection.scalar(_WATERMARK)
        assert watermark is not None
        high = max(watermark, low)
        params = {"project_id": project.id, "high": high}
        held_back = await connection.scalar(_HELD_BACK, params) or 0
        chat = bool(await connection.scalar(_HAS_MESSAGES, params))
    except BaseException:
        await connection.close()
        raise
    async with engine.begin() as writer:
        await writer.execute(update(Export).where(Export.id == record_id).values(cursor_to=high))
    return ExportStream(
        connection=connection,
        engine=engine,
        record_id=record_id,
        project_id=project.id,
        request=request,
        low=low,
        high=high,
        held_back=held_back,
        chat=chat,
    )


async def get_manifest(session: AsyncSession, principal: Principal, export_id: uuid.UUID) -> Export:
    """An export's manifest, if the caller may see its project (404 alike otherwise)."""
    record = await session.scalar(
        select(Export).where(Export.id == export_id, Export.project_id.in_(accessible_project_ids(principal)))
    )
    if record is None:
        raise NotFound(f"No export {export_id} is visible to you.")
    return record


async def list_manifests(session: AsyncSession, project_id: uuid.UUID, *, limit: int = 100) -> list[Export]:
    return list(
        await session.scalars(
            select(Export).where(Export.project_id == project_id).order_by(Export.created_at.desc()).limit(limit)
        )
    )


async def why_no_items(session: AsyncSession, project: Project) -> str | None:
    """Why a `granularity=item` export of the project would be empty, or None when it would not be."""
    if await session.scalar(select(Item.id).where(Item.project_id == project.id).limit(1)) is None:
        return "This project has no items yet: upload a batch first."
    if await session.scalar(
        select(Item.id).where(Item.project_id == project.id, Item.completed_at.is_not(None)).limit(1)
    ):
        return None
    need = "1 judgment" if project.overlap == 1 else f"{project.overlap} judgments"
    return (
        f"No item is complete yet: with overlap {project.overlap} an item completes when it has {need}, "
        "and granularity=item exports only completed items."
    )


def cursor_of(record: Export, xid: int) -> str:
    """The cursor string a manifest shows, rebuilt from its stored filters."""
    filters = record.filters
    request = ExportRequest(
        granularity=Granularity(filters["granularity"]),
        batch_id=uuid.UUID(filters["batch_id"]) if filters.get("batch_id") else None,
        completed=bool(filters["completed"]),
        since=datetime.fromisoformat(filters["since"]) if filters.get("since") else None,
        until=datetime.fromisoformat(filters["until"]) if filters.get("until") else None,
        min_agreement=filters.get("min_agreement"),
    )
    return encode_cursor(xid, request)
