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

import hashlib
import hmac
import logging
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import insert, select, text, update
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from server.auth.service import Principal
from server.config import settings
from server.errors import Conflict, Invalid, NotFound
from server.exports import cursors
from server.exports.encoders import Encoding, make_encoder
from server.exports.formats import (
    FORMAT_VERSION,
    Aggregation,
    ExportFormat,
    GoldItems,
    Granularity,
    Judges,
    Pair,
    Raters,
    Renderer,
    aggregate_item,
    critique_rows,
    item_pairs,
    judgment_pairs,
    raw_item_row,
    raw_row,
    tree_row,
    with_ids,
)
from server.exports.limits import pool_busy, take_slot
from server.exports.weighted import LabelledPair, gold_pairs, weighted_pairs
from server.items import search, subtasks
from server.models import Export, Item, Project, Scale, User
from server.projects.service import accessible_project_ids
from server.quality.aggregate import Fit
from server.quality.trust import rater_is_trusted_sql

logger = logging.getLogger("assay.exports")
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
    ids: bool = False  # add the columns that let a consumer replace revised rows (formats.py)
    aggregation: Aggregation = Aggregation.majority  # granularity=item: how votes become the label
    raters: Raters = Raters.all  # trusted: only judgments of raters trusted at pull time (quality/trust.py)
    gold: GoldItems = GoldItems.exclude  # granularity=item: include gold items, labelled by their answer
    judges: Judges = Judges.human  # whose labels: humans' (default), model judges', or both

    @property
    def by_completed_item(self) -> bool:
        return self.completed or self.granularity == Granularity.item or self.format == ExportFormat.tree

    def filters(self) -> dict[str, Any]:
        """The filters that choose rows or their labels (not their shape), as stored in the manifest.

        The parameters added later (aggregation, raters, gold, judges) appear only when not at their
        default, so a cursor issued before they existed keeps its selection key."""
        filters: dict[str, Any] = {
            "granularity": self.granularity.value,
            "batch_id": None if self.batch_id is None else str(self.batch_id),
            "completed": self.by_completed_item,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "min_agreement": self.min_agreement,
        }
        if self.aggregation != Aggregation.majority:
            filters["aggregation"] = self.aggregation.value
        if self.raters != Raters.all:
            filters["raters"] = self.raters.value
        if self.gold != GoldItems.exclude:
            filters["gold"] = self.gold.value
        if self.format == ExportFormat.tree:  # other rows: completed items with subtasks
            filters["tree"] = True
        if self.judges != Judges.human:
            filters["judges"] = self.judges.value
        return filters

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
        if self.aggregation == Aggregation.weighted and self.granularity != Granularity.item:
            raise Invalid(
                "aggregation=weighted labels each item from its raters' judgments: add granularity=item or drop "
                "aggregation."
            )
        if self.aggregation == Aggregation.weighted and self.min_agreement is not None:
            raise Invalid(
                "min_agreement filters majority votes; with aggregation=weighted each row has a confidence column "
                "to filter on instead: drop min_agreement."
            )
        if self.gold == GoldItems.include and self.granularity != Granularity.item:
            raise Invalid(
                "gold=include adds gold items to item-granularity exports (per-judgment exports already carry "
                "gold judgments): add granularity=item or drop gold."
            )
        if self.format == ExportFormat.tree and self.encoding != Encoding.jsonl:
            raise Invalid("format=tree nests each item's subtasks in its row; use encoding=jsonl.")
        if self.format == ExportFormat.tree and (
            self.granularity == Granularity.item
            or self.aggregation != Aggregation.majority
            or self.gold != GoldItems.exclude
        ):
            raise Invalid(
                "format=tree has one row per completed item with its subtasks, judgments and answers: "
                "drop granularity, aggregation and gold."
            )
        if self.format == ExportFormat.critiques and self.granularity == Granularity.item:
            raise Invalid(
                "format=critiques has a row per critique in each judgment; drop granularity=item "
                "(completed=true keeps to completed items)."
            )


def rater_pseudonym(project_id: uuid.UUID, rater_id: uuid.UUID) -> str:
    """A stable per-project id for a rater that does not reveal who they are."""
    message = f"{project_id}:{rater_id}".encode()
    return "r_" + hmac.new(settings.secret_key.encode(), message, hashlib.sha256).hexdigest()[:16]


# --- SQL -------------------------------------------------------------------------------------

_CANDIDATES = """(SELECT jsonb_agg(jsonb_build_object('id', c.id, 'text', c.text, 'messages', c.messages,
                                                   'model', c.model, 'metadata', c.metadata) ORDER BY c.position)
                   FROM candidates c WHERE c.item_id = i.id) AS candidates"""

_TRUSTED = rater_is_trusted_sql("j.project_id", "j.rater_id")
_JUDGMENT_COLUMNS = f"""j.id, j.item_id, j.revision, j.choice_id, j.ranking, j.strength, j.tie, j.both_bad, j.rationale,
       j.active_ms, j.surplus, j.surplus_reason, j.assistance_shown, j.created_at, j.rater_id, j.answer,
       j.rater_kind, j.confidence, i.kind, i.question, i.parent_id,
       {_TRUSTED} AS rater_trusted,
       i.external_id, i.prompt, i.batch_id, a.shown_order, a.leased_at, {_CANDIDATES}"""


# Completed items whose current aggregate was written in [low, high) (`aggregate_xid`: the
# transaction that completed the item, see labeling/service.py and projects/service.py). Every
# counted judgment of such an item is older, so all are visible in the snapshot. An aggregate
# that changes (the item reopens and completes again) gets a new revision and a new xid, so it is
# delivered again: exactly once per aggregate revision.
# Gold items are left out unless `gold=include`: then a gold item is delivered with each revision
# of its gold answer (becoming gold, or a changed answer, stamps `aggregate_xid`; see
# quality/service.py:set_gold and the batch import), labelled by that answer.
def _finalised(request: ExportRequest) -> str:
    if request.gold == GoldItems.include:
        which = "(i.completed_at IS NOT NULL OR i.gold_seq IS NOT NULL)"
    else:
        which = "i.completed_at IS NOT NULL AND i.gold_seq IS NULL"
    return f"""
    WITH final AS (
        SELECT i.id AS item_id, i.aggregate_xid AS last_xid
        FROM items i
        WHERE i.project_id = :project_id AND i.aggregate_xid >= :low AND i.aggregate_xid < :high
          AND {which}{_ITEM_SOURCE[request.judges]}
    )"""


# format=critiques: the critiques a judgment rated, then those its rater wrote (critique_rows).
_CRITIQUE_ROWS = """(SELECT jsonb_agg(x.row ORDER BY x.written, x.seq) FROM (
        SELECT false AS written, k.seq, jsonb_build_object('kind', 'rated', 'id', k.id, 'candidate_id', k.candidate_id,
               'text', k.text, 'author_model', k.author_model, 'author_id', k.author_id, 'message', k.span_message,
               'start', k.span_start, 'end', k.span_end, 'severity', k.severity, 'verdict', r.verdict,
               'helpful', r.helpful) AS row
        FROM critique_ratings r JOIN critiques k ON k.id = r.critique_id WHERE r.judgment_id = j.id
        UNION ALL
        SELECT true, k.seq, jsonb_build_object('kind', 'written', 'id', k.id, 'candidate_id', k.candidate_id,
               'text', k.text, 'author_model', NULL, 'author_id', k.author_id, 'message', k.span_message,
               'start', k.span_start, 'end', k.span_end, 'severity', k.severity, 'verdict', NULL, 'helpful', NULL)
        FROM critiques k WHERE k.judgment_id = j.id) x) AS critique_rows"""


# format=raw and format=critiques: the flaws a judgment marks, in the order the rater sent them.
_FLAW_ROWS = """(SELECT jsonb_agg(jsonb_build_object('id', f.id, 'candidate_id', f.candidate_id,
               'message', f.span_message, 'start', f.span_start, 'end', f.span_end, 'severity', f.severity,
               'note', f.note)
               ORDER BY f.position)
        FROM flaws f WHERE f.judgment_id = j.id) AS flaw_rows"""


def _columns(request: ExportRequest) -> str:
    if request.format == ExportFormat.critiques:
        return f"{_JUDGMENT_COLUMNS}, {_CRITIQUE_ROWS}, {_FLAW_ROWS}"
    if request.format == ExportFormat.raw:
        return f"{_JUDGMENT_COLUMNS}, {_FLAW_ROWS}"
    return _JUDGMENT_COLUMNS


def _filters_sql(request: ExportRequest, time_column: str) -> str:
    clauses = []
    if request.batch_id is not None:
        clauses.append("i.batch_id = :batch_id")
    if request.since is not None:
        clauses.append(f"{time_column} >= :since")
    if request.until is not None:
        clauses.append(f"{time_column} < :until")
    return "".join(f" AND {c}" for c in clauses)


def _trusted(request: ExportRequest) -> str:
    """The condition on judgments `j` that `raters=trusted` and `judges` add."""
    trusted = f" AND {_TRUSTED}" if request.raters == Raters.trusted else ""
    judges = "" if request.judges == Judges.all else f" AND j.rater_kind = '{request.judges.value}'"
    return trusted + judges


# Per completed item, `judges` chooses the items by who labelled them, and each item's label comes
# from the judgments of its label source (a handed-off item's model verdicts never enter it).
_ITEM_SOURCE = {
    Judges.human: " AND i.label_source IS NULL",
    Judges.model: " AND i.label_source = 'model'",
    Judges.all: "",
}
_OWN_SOURCE = " AND j.rater_kind = coalesce(i.label_source, 'human')"


def _item_trusted(request: ExportRequest) -> str:
    """The condition on an item's judgments `j` in item exports: trusted raters, its label source."""
    return (f" AND {_TRUSTED}" if request.raters == Raters.trusted else "") + _OWN_SOURCE


# format=tree: every descendant of the item (flat, in import order; formats.tree_row nests them),
# each with its counted answers.
_SUBTREE = """(WITH RECURSIVE tree AS (
            SELECT c.id, 1 AS depth FROM items c WHERE c.parent_id = i.id
            UNION ALL
            SELECT c.id, tree.depth + 1 FROM items c JOIN tree ON c.parent_id = tree.id WHERE tree.depth < 8)
        SELECT jsonb_agg(jsonb_build_object(
                   'item_id', s.id, 'parent_id', s.parent_id, 'external_id', s.external_id, 'kind', s.kind,
                   'question', s.question, 'scale_min', s.scale_min, 'scale_max', s.scale_max,
                   'candidate_id', s.subtask_candidate_id, 'span_start', s.span_start, 'span_end', s.span_end,
                   'answers', (SELECT jsonb_agg(jsonb_build_object('answer', j.answer, 'choice_id', j.choice_id,
                                                'rationale', j.rationale, 'rater_id', j.rater_id) ORDER BY j.seq)
                               FROM judgments j WHERE j.item_id = s.id AND NOT j.surplus{trusted}))
               ORDER BY s.seq)
        FROM tree JOIN items s ON s.id = tree.id) AS subtree"""


def _kinds(request: ExportRequest) -> str:
    """Checks, ratings and answers hold no preference: only `raw` (per judgment) and `tree` read them."""
    per_judgment_raw = request.format == ExportFormat.raw and request.granularity == Granularity.judgment
    return "" if per_judgment_raw else " AND i.kind = 'comparison'"


def rows_sql(request: ExportRequest) -> str:
    if request.format == ExportFormat.tree:
        return f"""{_finalised(request)}
        SELECT i.id AS item_id, i.external_id, i.prompt, i.batch_id, i.completed_at, i.aggregate_revision,
               {_CANDIDATES},
               (SELECT jsonb_agg(jsonb_build_object('choice_id', j.choice_id, 'ranking', j.ranking,
                                                    'strength', j.strength, 'tie', j.tie, 'both_bad', j.both_bad,
                                                    'rationale', j.rationale, 'rater_id', j.rater_id)
                                 ORDER BY j.seq)
                  FROM judgments j WHERE j.item_id = i.id AND NOT j.surplus{_trusted(request)}) AS judgments,
               {_SUBTREE.format(trusted=_trusted(request))}
        FROM final
        JOIN items i ON i.id = final.item_id
        WHERE i.parent_id IS NULL AND EXISTS (SELECT 1 FROM items c WHERE c.parent_id = i.id)
              {_filters_sql(request, "i.completed_at")}
        ORDER BY final.last_xid, i.seq"""
    if not request.by_completed_item:
        return f"""
            SELECT {_columns(request)}, NULL::int AS aggregate_revision
            FROM judgments j
            JOIN items i ON i.id = j.item_id
            JOIN assignments a ON a.id = j.assignment_id
            WHERE j.project_id = :project_id AND j.xid >= :low AND j.xid < :high{_trusted(request)}
                  {_kinds(request)}{_filters_sql(request, "j.created_at")}
            ORDER BY j.xid, j.seq"""
    if request.granularity == Granularity.judgment:
        return f"""{_finalised(request)}
            SELECT {_columns(request)}, i.aggregate_revision
            FROM final
            JOIN items i ON i.id = final.item_id
            JOIN judgments j ON j.item_id = final.item_id AND NOT j.surplus{_trusted(request)}
            JOIN assignments a ON a.id = j.assignment_id
            WHERE true{_kinds(request)}{_filters_sql(request, "i.completed_at")}
            ORDER BY final.last_xid, i.seq, j.seq"""
    return f"""{_finalised(request)}
        SELECT i.id AS item_id, i.external_id, i.prompt, i.batch_id, i.completed_at, i.aggregate_revision, i.gold,
               i.label_source, {_CANDIDATES},
               (SELECT jsonb_agg(jsonb_build_object('choice_id', j.choice_id, 'ranking', j.ranking,
                                                    'strength', j.strength, 'tie', j.tie, 'both_bad', j.both_bad,
                                                    'rater_id', j.rater_id)
                                 ORDER BY j.seq)
                  FROM judgments j WHERE j.item_id = i.id AND NOT j.surplus{_item_trusted(request)}) AS judgments
        FROM final
        JOIN items i ON i.id = final.item_id
        WHERE true{_kinds(request)}{_filters_sql(request, "i.completed_at")}
        ORDER BY final.last_xid, i.seq"""


def revised_sql(request: ExportRequest) -> str:
    """How many judgments in this pull's rows were revised (the Assay-Revisions header).

    Revisions are rare, so this reads the partial index `ix_judgments_revised`, not the range."""
    if not request.by_completed_item:
        return f"""
            SELECT count(*) FROM judgments j JOIN items i ON i.id = j.item_id
            WHERE j.project_id = :project_id AND j.revision > 1 AND j.xid >= :low AND j.xid < :high
                  {_trusted(request)}{_filters_sql(request, "j.created_at")}"""
    return f"""{_finalised(request)}
        SELECT count(*) FROM final
        JOIN items i ON i.id = final.item_id
        JOIN judgments j ON j.item_id = final.item_id AND NOT j.surplus AND j.revision > 1{_trusted(request)}
        WHERE true{_filters_sql(request, "i.completed_at")}"""


# The watermark: the oldest transaction id that was still running when the snapshot was taken,
# leaving out the ones that run in *another* database (they can never write our judgments) and the
# search indexer's (items/search.py: it writes only the word index, which no export reads).
# Transaction ids are cluster-wide, so without that, any long transaction on the same
# PostgreSQL server would stall every export. A running id whose database cannot be read
# (it ended meanwhile, or the role may not see other users' sessions) counts as ours: the
# watermark may then wait longer than needed, never less. The snapshot is the transaction's
# (REPEATABLE READ), so the rows read afterwards are exactly those it shows as committed.
# Both values are in stamp space (plus `assay_meta.xid_offset`, see identity.py); `horizon` is
# the next id this cluster will hand out: no genuine cursor of this database can be above it.
_WATERMARK = text(
    """
    WITH snap AS (SELECT pg_current_snapshot() AS s),
         meta AS (SELECT database_id, xid_offset FROM assay_meta WHERE id)
    SELECT least(
        pg_snapshot_xmax(s)::text::bigint,
        (SELECT min(x::text::bigint) FROM pg_snapshot_xip(s) AS x
         WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                           WHERE a.backend_xid::text::bigint = x::text::bigint % 4294967296
                             AND (a.datname IS DISTINCT FROM current_database()
                                  OR a.application_name = :indexer)))
    ) + meta.xid_offset AS watermark,
    pg_snapshot_xmax(s)::text::bigint + meta.xid_offset AS horizon,
    meta.database_id
    FROM snap, meta
    """
)

# Committed rows this pull cannot include yet because an older transaction in this database
# is still open (the watermark waits for it); the next pull delivers them.
_HELD_BACK = text("SELECT count(*) FROM judgments WHERE project_id = :project_id AND xid >= :high")
_HAS_MESSAGES = text("SELECT coalesce(bool_or(has_messages), false) FROM batches WHERE project_id = :project_id")
_RECORDED = text("SELECT filters FROM exports WHERE project_id = :project_id AND cursor_to = :xid")


# --- the stream ------------------------------------------------------------------------------


@dataclass
class ExportStream:
    connection: AsyncConnection  # REPEATABLE READ, read only: the snapshot (from the export pool)
    engine: AsyncEngine  # the main pool: the manifest's short writes
    record_id: uuid.UUID
    project_id: uuid.UUID
    database_id: uuid.UUID
    request: ExportRequest
    low: int
    high: int
    held_back: int
    chat: bool
    revised: int = 0  # judgments among this pull's rows that were revised (Assay-Revisions)
    rows: int = 0
    size: int = 0
    done: bool = False  # every byte of the body was produced
    digest: Any = field(default_factory=hashlib.sha256)
    finished: bool = False
    fit: Fit | None = None  # aggregation=weighted: the project's rater model (quality/weighted.py)

    @property
    def next_cursor(self) -> str:
        return cursors.encode_cursor(
            self.high, selection=self.request.selection_key(), project_id=self.project_id, database_id=self.database_id
        )

    def _params(self) -> dict[str, Any]:
        params = {"project_id": self.project_id, "low": self.low, "high": self.high}
        return params | {k: v for k, v in asdict(self.request).items() if k in ("batch_id", "since", "until")}

    async def body(self) -> AsyncIterator[bytes]:
        """The encoded rows, streamed from a server-side cursor; `finish()` completes the manifest."""
        request = self.request
        renderer = Renderer(request.format, chat=self.chat, margin=request.margin)
        encoder = make_encoder(
            request.encoding,
            request.format,
            request.granularity,
            chat=self.chat,
            margin=request.margin,
            ids=request.ids,
            weighted=request.aggregation == Aggregation.weighted,
            gold=request.gold == GoldItems.include,
        )
        result = await self.connection.stream(text(rows_sql(request)), self._params())
        async for partition in result.mappings().partitions(FETCH_ROWS):
            out: list[dict[str, Any]] = []
            for row in partition:
                out.extend(self._rows(renderer, row))
            chunk = encoder.encode(out)
            self.rows += len(out)
            if chunk:
                self.digest.update(chunk)
                self.size += len(chunk)
                yield chunk
        if tail := encoder.finish():
            self.digest.update(tail)
            self.size += len(tail)
            yield tail
        self.done = True

    async def finish(self, *, aborted_reason: str | None) -> None:
        """Give the snapshot's connection back and record how the export ended (once).

        `complete` with the body's sha256 when every byte went out; otherwise `aborted`, with the
        rows and bytes produced so far and why (disconnected, send_timeout, error).
        """
        if self.finished:
            return
        self.finished = True
        try:
            await self.connection.close()
        finally:
            if aborted_reason is None and self.done:
                values: dict[str, Any] = {"status": "complete", "sha256": self.digest.hexdigest()}
            else:
                values = {"status": "aborted", "aborted_reason": aborted_reason or "error"}
                logger.warning(
                    "export.aborted export=%s reason=%s rows=%s bytes=%s",
                    self.record_id,
                    values["aborted_reason"],
                    self.rows,
                    self.size,
                )
            async with self.engine.begin() as connection:
                await connection.execute(
                    update(Export)
                    .where(Export.id == self.record_id)
                    .values(rows=self.rows, bytes=self.size, finished_at=text("now()"), **values)
                )

    def _rows(self, renderer: Renderer, row: Mapping[Any, Any]) -> list[dict[str, Any]]:
        rows = self._render(renderer, row)
        by_item = self.request.format == ExportFormat.tree  # a tree row is an item's (its aggregate revision)
        granularity = Granularity.item if by_item else self.request.granularity
        return with_ids(rows, row, granularity) if self.request.ids else rows

    def _render(self, renderer: Renderer, row: Mapping[Any, Any]) -> list[dict[str, Any]]:
        request = self.request
        if request.format == ExportFormat.tree:
            return [
                tree_row(row, lambda user_id: rater_pseudonym(self.project_id, uuid.UUID(user_id)), subtasks.aggregate)
            ]
        if request.granularity == Granularity.item:
            aggregate = aggregate_item(row["candidates"], row["judgments"] or [])
            labelled = self._labelled(row)
            if request.format == ExportFormat.raw:
                out = raw_item_row(row, aggregate)
                if request.aggregation == Aggregation.weighted:
                    out["weighted"] = [p.as_json() for p in labelled or []]
                if request.gold == GoldItems.include:
                    out["gold"] = row["gold"]
                return [out]
            if labelled is None:
                pairs = item_pairs(row, aggregate, min_agreement=request.min_agreement or 0.0)
                if not aggregate.pairs and aggregate.both_bad * 2 > aggregate.judgments:
                    return renderer.both_bad_rows(row["prompt"], row["candidates"])
            else:
                by_id = {str(c["id"]): c for c in row["candidates"]}
                pairs = [
                    Pair(row["prompt"], by_id[chosen], by_id[rejected], margin=p.margin, confidence=p.confidence)
                    for p in labelled
                    if (preference := p.preference) is not None
                    for chosen, rejected in [preference]
                ]
                if not pairs and row["gold"] is None and aggregate.both_bad * 2 > aggregate.judgments:
                    return renderer.both_bad_rows(row["prompt"], row["candidates"])
            if request.aggregation == Aggregation.weighted:
                return [out | {"confidence": pair.confidence} for pair in pairs for out in renderer.rows(pair)]
        else:
            if request.format == ExportFormat.critiques:
                return critique_rows(row, lambda user_id: rater_pseudonym(self.project_id, uuid.UUID(user_id)))
            if request.format == ExportFormat.raw:
                return [raw_row(row, rater_pseudonym(self.project_id, row["rater_id"]))]
            pairs = judgment_pairs(row)
            if not pairs and row["both_bad"]:
                return renderer.both_bad_rows(row["prompt"], row["candidates"])
        return [out for pair in pairs for out in renderer.rows(pair)]

    def _labelled(self, row: Mapping[Any, Any]) -> list[LabelledPair] | None:
        """An item's pairs labelled by the rater model or the gold answer; None for a plain majority."""
        if self.request.aggregation == Aggregation.weighted:
            assert self.fit is not None, "aggregation=weighted needs the project's rater model"
            return weighted_pairs(row["candidates"], row["judgments"] or [], self.fit, row["gold"])
        if row["gold"] is not None:
            return gold_pairs(row["candidates"], row["gold"])
        return None


async def _snapshot(export_engine: AsyncEngine, principal: str) -> AsyncConnection:
    """A connection of the export pool in a REPEATABLE READ transaction holding one of the
    principal's export slots (429 when the pool or the principal's slots are all busy)."""
    try:
        connection = await export_engine.connect()
    except SATimeoutError:
        raise pool_busy() from None
    try:
        connection = await connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        await connection.begin()
        await take_slot(connection, principal)
    except BaseException:
        await connection.close()
        raise
    return connection


async def open_export(
    engine: AsyncEngine,
    export_engine: AsyncEngine,
    *,
    project: Project,
    requester: User,
    principal: str,
    after: str | None,
    request: ExportRequest,
    fit: Fit | None = None,
) -> ExportStream:
    """Take the snapshot, check the cursor against it, record the export; the caller streams
    `body()` and calls `finish()` however the response ends (limits.ExportResponse does).

    The manifest row is written (and committed) on the main pool, by a transaction newer than
    the snapshot, so the export's own write never holds the watermark back.
    """
    request.check(project)
    connection = await _snapshot(export_engine, principal)
    try:
        mark = (await connection.execute(_WATERMARK, {"indexer": search.INDEXER_NAME})).one()
        cursor = cursors.decode_cursor(
            after, selection=request.selection_key(), project_id=project.id, database_id=mark.database_id
        )
        if cursor.legacy:
            recorded = (await connection.execute(_RECORDED, {"project_id": project.id, "xid": cursor.xid})).scalars()
            if not any(_request_of(filters).selection_key() == request.selection_key() for filters in recorded):
                raise Conflict(cursors.UNRECORDED_LEGACY)
        if cursor.xid > mark.horizon:
            raise Conflict(cursors.AHEAD)
        low = cursor.xid
        high = max(mark.watermark, low)
        params = {"project_id": project.id, "high": high}
        held_back = await connection.scalar(_HELD_BACK, params) or 0
        chat = bool(await connection.scalar(_HAS_MESSAGES, params))
        revised_params = {"project_id": project.id, "low": low, "high": high}
        revised_params |= {k: v for k, v in asdict(request).items() if k in ("batch_id", "since", "until")}
        revised = int(await connection.scalar(text(revised_sql(request)), revised_params) or 0)
        async with engine.begin() as writer:
            record_id = await writer.scalar(
                insert(Export)
                .values(
                    id=uuid.uuid4(),
                    project_id=project.id,
                    requested_by_id=requester.id,
                    format=request.format.value,
                    encoding=request.encoding.value,
                    granularity=request.granularity.value,
                    filters=request.filters() | {"margin": request.margin, "ids": request.ids},
                    format_version=FORMAT_VERSION,
                    cursor_from=low,
                    cursor_to=high,
                    status="streaming",
                )
                .returning(Export.id)
            )
    except BaseException:
        await connection.close()
        raise
    assert record_id is not None
    return ExportStream(
        connection=connection,
        engine=engine,
        record_id=record_id,
        project_id=project.id,
        database_id=mark.database_id,
        request=request,
        low=low,
        high=high,
        held_back=held_back,
        chat=chat,
        revised=revised,
        fit=fit,
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


def _request_of(filters: Mapping[str, Any]) -> ExportRequest:
    """The row filters a manifest stored, as a request (its format and shape do not matter here)."""
    return ExportRequest(
        granularity=Granularity(filters["granularity"]),
        batch_id=uuid.UUID(filters["batch_id"]) if filters.get("batch_id") else None,
        completed=bool(filters["completed"]),
        since=datetime.fromisoformat(filters["since"]) if filters.get("since") else None,
        until=datetime.fromisoformat(filters["until"]) if filters.get("until") else None,
        min_agreement=filters.get("min_agreement"),
        aggregation=Aggregation(filters.get("aggregation", Aggregation.majority.value)),
        raters=Raters(filters.get("raters", Raters.all.value)),
        gold=GoldItems(filters.get("gold", GoldItems.exclude.value)),
        judges=Judges(filters.get("judges", Judges.human.value)),
    )


async def database_id(session: AsyncSession) -> uuid.UUID:
    value: uuid.UUID | None = await session.scalar(text("SELECT database_id FROM assay_meta WHERE id"))
    assert value is not None
    return value


def cursor_of(record: Export, xid: int, database: uuid.UUID) -> str:
    """The cursor string a manifest shows, rebuilt from its stored filters (signed, as issued)."""
    selection = _request_of(record.filters).selection_key()
    return cursors.encode_cursor(xid, selection=selection, project_id=record.project_id, database_id=database)
