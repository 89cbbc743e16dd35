"""Which database this is, and keeping its xid stamps in order across a backup and restore.

Rows are stamped with `assay_xid()` (models/xid.py): the cluster's transaction counter plus
`assay_meta.xid_offset` (written into the function as a constant, see `stamp_function`). A
pg_dump restored into a newly initialised cluster brings stamps from the old cluster, whose
counter was further along; without a correction the new cluster's
transactions would stamp rows *below* them and exports (which page by stamps) would hold back or
skip them. `settle()` runs at `assay migrate` and at every server start: when this cluster's
counter plus the offset is not above the largest stored stamp, it raises the offset past that
stamp by `SETTLE_GAP`, so every later stamp sorts after every restored one. The gap is generous
(2^32 transactions: more than the old cluster can have run between the backup and any cursor a
trainer still holds), so cursors issued by the old cluster after the backup was taken still
sort below the new stamps and keep working.

`assay_meta.database_id` is made once with the schema and travels with the dump: a restored
database is the same database to its cursors, and another Assay database has another id.
"""

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

logger = logging.getLogger("assay.exports")

SETTLE_GAP = 1 << 32


@dataclass(frozen=True, slots=True)
class Identity:
    database_id: uuid.UUID
    xid_offset: int


_IDENTITY = text("SELECT database_id, xid_offset FROM assay_meta WHERE id")

# The largest stamp stored anywhere, one index probe per project (judgments by
# ix_judgments_export, items by their aggregate_xid index); export manifests record the cursors
# handed out, which count too.
_HIGHEST_STAMP = text(
    """
    SELECT greatest(
        (SELECT max(j.xid) FROM projects p
           CROSS JOIN LATERAL (SELECT xid FROM judgments WHERE project_id = p.id ORDER BY xid DESC LIMIT 1) j),
        (SELECT max(i.aggregate_xid) FROM projects p
           CROSS JOIN LATERAL (SELECT aggregate_xid FROM items WHERE project_id = p.id AND aggregate_xid IS NOT NULL
                               ORDER BY aggregate_xid DESC LIMIT 1) i),
        (SELECT max(cursor_to) FROM exports)
    )
    """
)


def stamp_function(offset: int) -> str:
    """`assay_xid()` with the offset written in as a constant: an inlinable SQL function, so a stamp
    costs what the bare transaction id costs (a lookup of `assay_meta` per stamp cost 30 times more,
    `python -m bench.xid_cost`). pg_dump carries the function with its constant, as it carries
    `assay_meta`, and `set_offset()` changes both in one transaction."""
    return (
        "CREATE OR REPLACE FUNCTION assay_xid() RETURNS bigint LANGUAGE sql VOLATILE AS "
        f"$$ SELECT (pg_current_xact_id()::text)::bigint + {int(offset)} $$"
    )


async def set_offset(connection: AsyncConnection, offset: int) -> None:
    await connection.execute(
        text("UPDATE assay_meta SET xid_offset = :offset, settled_at = now() WHERE id"), {"offset": offset}
    )
    await connection.execute(text(stamp_function(offset)))


async def identity(connection: AsyncConnection) -> Identity:
    row = (await connection.execute(_IDENTITY)).one()
    return Identity(database_id=row.database_id, xid_offset=row.xid_offset)


async def settle(engine: AsyncEngine) -> int | None:
    """Raise the xid offset past every stored stamp when this cluster's counter is behind them.

    Returns the new offset when it changed. Takes the `assay_meta` row lock (nothing else is
    held), so server processes starting together settle one after the other and the later ones
    find nothing to do.
    """
    async with engine.begin() as connection:
        await connection.execute(
            text("INSERT INTO assay_meta (id) VALUES (true) ON CONFLICT (id) DO NOTHING")  # a truncated table
        )
        offset = await connection.scalar(text("SELECT xid_offset FROM assay_meta WHERE id FOR UPDATE"))
        assert offset is not None
        counter = await connection.scalar(text("SELECT (pg_current_xact_id()::text)::bigint"))
        assert counter is not None
        highest = await connection.scalar(_HIGHEST_STAMP)
        if highest is None or counter + offset > highest:
            return None
        new_offset: int = highest + SETTLE_GAP - counter
        await set_offset(connection, new_offset)
    logger.warning(
        "exports.settled counter=%s highest_stamp=%s xid_offset=%s: this database was restored into a younger "
        "PostgreSQL cluster; new rows are stamped after every restored one",
        counter,
        highest,
        new_offset,
    )
    return new_offset
