"""Incremental export of judgments, in commit order, from one consistent snapshot.

The cursor is a transaction-id watermark, not a row number: a row is exported once every
transaction older than it has finished (its `xid` is below the snapshot's xmin). A row whose
transaction commits late, after later rows, is therefore never skipped: it is simply
delivered by the pull after it commits. Each export reads inside one REPEATABLE READ
transaction, so the rows and the cursor it returns describe the same snapshot.
"""

import base64
import binascii
import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.config import settings
from server.errors import Invalid
from server.exports.formats import ExportFormat, raw_row, trl_rows

CURSOR_PREFIX = "j1:"

_ROWS = text(
    """
    SELECT j.id, j.item_id, j.choice_id, j.ranking, j.strength, j.tie, j.both_bad, j.rationale,
           j.active_ms, j.surplus, j.assistance_shown, j.created_at, j.rater_id,
           i.external_id, i.prompt, a.shown_order, a.leased_at,
           (SELECT jsonb_agg(jsonb_build_object('id', c.id, 'text', c.text, 'messages', c.messages,
                                                'model', c.model, 'metadata', c.metadata) ORDER BY c.position)
              FROM candidates c WHERE c.item_id = j.item_id) AS candidates
    FROM judgments j
    JOIN items i ON i.id = j.item_id
    JOIN assignments a ON a.id = j.assignment_id
    WHERE j.project_id = :project_id AND j.xid >= :low AND j.xid < :high
    ORDER BY j.xid, j.seq
    """
)


# Committed rows this pull cannot include yet because an older transaction, anywhere in the
# PostgreSQL cluster, is still open (the watermark waits for it); the next pull delivers them.
_HELD_BACK = text("SELECT count(*) FROM judgments WHERE project_id = :project_id AND xid >= :high")


def encode_cursor(xid: int) -> str:
    return base64.urlsafe_b64encode(f"{CURSOR_PREFIX}{xid}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith(CURSOR_PREFIX):
            raise ValueError(raw)
        return int(raw[len(CURSOR_PREFIX) :])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise Invalid(
            "after is not a cursor from this server; pass the Assay-Next-Cursor value of your last export."
        ) from None


def rater_pseudonym(project_id: uuid.UUID, rater_id: uuid.UUID) -> str:
    """A stable per-project id for a rater that does not reveal who they are."""
    message = f"{project_id}:{rater_id}".encode()
    return "r_" + hmac.new(settings.secret_key.encode(), message, hashlib.sha256).hexdigest()[:16]


@dataclass
class Export:
    connection: AsyncConnection
    project_id: uuid.UUID
    low: int
    high: int
    held_back: int
    format: ExportFormat

    @property
    def next_cursor(self) -> str:
        return encode_cursor(self.high)

    async def lines(self) -> AsyncIterator[bytes]:
        """JSONL lines, streamed from a server-side cursor; closes the connection when done."""
        try:
            result = await self.connection.stream(
                _ROWS.execution_options(yield_per=1000),
                {"project_id": self.project_id, "low": self.low, "high": self.high},
            )
            async for partition in result.mappings().partitions(1000):
                chunk = bytearray()
                for row in partition:
                    for out in self._render(dict(row)):
                        chunk += orjson.dumps(out)
                        chunk += b"\n"
                yield bytes(chunk)
        finally:
            await self.connection.close()

    def _render(self, row: dict[str, object]) -> list[dict[str, object]]:
        if self.format == ExportFormat.trl:
            return trl_rows(row)
        rater = rater_pseudonym(self.project_id, row["rater_id"])  # type: ignore[arg-type]
        return [raw_row(row, rater)]


async def open_export(engine: AsyncEngine, *, project_id: uuid.UUID, after: str | None, format: ExportFormat) -> Export:
    """Take a snapshot and fix the cursor range; the caller streams `lines()` afterwards."""
    low = decode_cursor(after)
    connection = await engine.connect()
    try:
        connection = await connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        await connection.begin()
        xmin = await connection.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"))
        assert xmin is not None
        high = max(xmin, low)
        held_back = await connection.scalar(_HELD_BACK, {"project_id": project_id, "high": high})
    except BaseException:
        await connection.close()
        raise
    return Export(
        connection=connection, project_id=project_id, low=low, high=high, held_back=held_back or 0, format=format
    )
