"""Byte encodings of export rows: JSONL or Parquet, streamed, with gzip for JSONL on request.

An encoder takes batches of rows and yields bytes as it goes, so the server never holds the
export: JSONL writes each batch as lines; Parquet writes each batch as one row group into a
sink that hands its bytes over after every group (the footer comes last).
"""

import enum
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from server.exports.formats import ExportFormat, Granularity


class Encoding(enum.StrEnum):
    jsonl = "jsonl"
    parquet = "parquet"

    @property
    def media_type(self) -> str:
        return {"jsonl": "application/jsonl", "parquet": "application/vnd.apache.parquet"}[self.value]

    @property
    def suffix(self) -> str:
        return {"jsonl": "jsonl", "parquet": "parquet"}[self.value]


# What a client may put in Accept to choose an encoding when `?encoding=` is absent.
ACCEPTED = {
    "application/jsonl": Encoding.jsonl,
    "application/x-ndjson": Encoding.jsonl,
    "application/json-lines": Encoding.jsonl,
    "application/vnd.apache.parquet": Encoding.parquet,
    "application/x-parquet": Encoding.parquet,
}


def encoding_from_accept(accept: str | None) -> Encoding | None:
    for part in (accept or "").split(","):
        media = part.split(";")[0].strip().lower()
        if media in ACCEPTED:
            return ACCEPTED[media]
    return None


class RowEncoder(Protocol):
    def encode(self, rows: Sequence[dict[str, Any]]) -> bytes: ...
    def finish(self) -> bytes: ...


class JsonlEncoder:
    def encode(self, rows: Sequence[dict[str, Any]]) -> bytes:
        return b"".join(orjson.dumps(row) + b"\n" for row in rows)

    def finish(self) -> bytes:
        return b""


_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


_S, _B, _I = pa.string(), pa.bool_(), pa.int64()
# `raw` columns that hold nested, free-form values (prompts, candidates with metadata, votes):
# Parquet keeps them as JSON text so one schema fits every project.
RAW_JSON_COLUMNS = frozenset(
    {"prompt", "candidates", "shown_order", "ranking", "pairs", "weighted", "gold", "flaws", "answer"}
)
_RAW_JUDGMENT = pa.schema(
    [
        ("judgment_id", _S),
        ("revision", _I),
        *[(name, _S) for name in ("item_id", "external_id", "batch_id", "rater")],
        ("rater_trusted", _B),
        ("rater_kind", _S),
        ("confidence", pa.float64()),
        ("prompt", _S),
        *[(name, _S) for name in ("candidates", "shown_order", "choice", "ranking")],
        ("strength", _I),
        ("tie", _B),
        ("both_bad", _B),
        ("rationale", _S),
        ("active_ms", _I),
        ("surplus", _B),
        ("surplus_reason", _S),
        ("assistance_shown", _B),
        ("flaws", _S),
        ("aggregate_revision", _I),
        ("kind", _S),
        ("question", _S),
        ("parent_id", _S),
        ("answer", _S),
        ("leased_at", _S),
        ("created_at", _S),
    ]
)
_RAW_ITEM = pa.schema(
    [
        ("item_id", _S),
        ("aggregate_revision", _I),
        *[(name, _S) for name in ("external_id", "batch_id", "prompt", "candidates", "label_source")],
        *[(name, _I) for name in ("judgments", "ties", "both_bad")],
        ("pairs", _S),
        ("completed_at", _S),
    ]
)


# `critiques` rows (formats.critique_rows); prompt, response and span are JSON text in Parquet.
CRITIQUE_JSON_COLUMNS = frozenset({"prompt", "response", "span"})
_CRITIQUES = pa.schema(
    [
        ("judgment_id", _S),
        ("revision", _I),
        *[(name, _S) for name in ("kind", "item_id", "external_id", "prompt", "candidate_id", "response")],
        *[(name, _S) for name in ("critique_id", "critique", "author", "author_kind", "span")],
        ("message", _I),
        ("quote", _S),
        ("severity", _S),
        ("verdict", _S),
        ("helpful", _B),
        ("rater", _S),
        ("assistance_shown", _B),
        ("created_at", _S),
    ]
)


# With `ids=true`: what identifies a row for replacement (formats.with_ids); every other column
# of a `deleted` row is null.
_JUDGMENT_IDS = [("judgment_id", _S), ("revision", _I), ("deleted", _B)]
_ITEM_IDS = [("item_id", _S), ("aggregate_revision", _I), ("deleted", _B)]


def parquet_schema(
    format: ExportFormat,
    granularity: Granularity,
    *,
    chat: bool,
    margin: bool,
    ids: bool = False,
    weighted: bool = False,
    gold: bool = False,
) -> pa.Schema:
    """The fixed schema of a format, so every row group of an export has the same columns.

    Item granularity: `weighted` (aggregation=weighted) adds `confidence` to pair formats and the
    JSON column `weighted` (every pair's posterior) to raw; `gold` (gold=include) adds raw's `gold`.
    """
    schema = _format_schema(format, granularity, chat=chat, margin=margin)
    if granularity == Granularity.item and format == ExportFormat.raw:
        schema = _append(schema, ([("weighted", _S)] if weighted else []) + ([("gold", _S)] if gold else []))
    elif granularity == Granularity.item and weighted:
        schema = _append(schema, [("confidence", pa.float64())])
    if not ids:
        return schema
    return _append(schema, _ITEM_IDS if granularity == Granularity.item else _JUDGMENT_IDS)


def _append(schema: pa.Schema, fields: list[tuple[str, pa.DataType]]) -> pa.Schema:
    for name, kind in fields:
        if schema.get_field_index(name) < 0:
            schema = schema.append(pa.field(name, kind))
    return schema


def _format_schema(format: ExportFormat, granularity: Granularity, *, chat: bool, margin: bool) -> pa.Schema:
    text_or_chat = _MESSAGES if chat else _S
    match format:
        case ExportFormat.trl:
            fields = [("prompt", text_or_chat), ("chosen", text_or_chat), ("rejected", text_or_chat)]
            return pa.schema(fields + ([("margin", pa.float64())] if margin else []))
        case ExportFormat.trl_unpaired:
            return pa.schema([("prompt", text_or_chat), ("completion", text_or_chat), ("label", _B)])
        case ExportFormat.openai:
            input_type = pa.struct([("messages", _MESSAGES)])
            return pa.schema(
                [("input", input_type), ("preferred_output", _MESSAGES), ("non_preferred_output", _MESSAGES)]
            )
        case ExportFormat.hh:
            return pa.schema([("chosen", _S), ("rejected", _S)])
        case ExportFormat.raw:
            return _RAW_ITEM if granularity == Granularity.item else _RAW_JUDGMENT
        case ExportFormat.critiques:
            return _CRITIQUES


class _Sink:
    """A write-only file for pyarrow that hands over what was written since the last `take()`."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: bytes | memoryview) -> int:
        chunk = bytes(data)
        self.parts.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


class ParquetEncoder:
    def __init__(self, schema: pa.Schema, json_columns: frozenset[str]) -> None:
        self.schema = schema
        self.json_columns = json_columns
        self.sink = _Sink()
        self.writer = pq.ParquetWriter(pa.PythonFile(self.sink, mode="w"), schema, compression="zstd")

    def encode(self, rows: Sequence[dict[str, Any]]) -> bytes:
        if not rows:
            return b""
        if self.json_columns:
            rows = [
                {k: orjson.dumps(v).decode() if k in self.json_columns and v is not None else v for k, v in row.items()}
                for row in rows
            ]
        self.writer.write_table(pa.Table.from_pylist(list(rows), schema=self.schema))
        return self.sink.take()

    def finish(self) -> bytes:
        self.writer.close()  # with no rows, still a valid Parquet file with the format's columns
        return self.sink.take()


def make_encoder(
    encoding: Encoding,
    format: ExportFormat,
    granularity: Granularity,
    *,
    chat: bool,
    margin: bool,
    ids: bool = False,
    weighted: bool = False,
    gold: bool = False,
) -> RowEncoder:
    if encoding == Encoding.jsonl:
        return JsonlEncoder()
    schema = parquet_schema(format, granularity, chat=chat, margin=margin, ids=ids, weighted=weighted, gold=gold)
    json_columns = {ExportFormat.raw: RAW_JSON_COLUMNS, ExportFormat.critiques: CRITIQUE_JSON_COLUMNS}
    return ParquetEncoder(schema, json_columns.get(format, frozenset()))


async def gzipped(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """gzip a byte stream as it flows (Content-Encoding: gzip)."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    async for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()
