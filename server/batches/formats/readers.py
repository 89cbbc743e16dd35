"""Reading an upload as a stream of records: JSONL, CSV or Parquet, gzip or not, with encoding detection."""

import codecs
import gzip
import zlib
from collections.abc import Iterator
from decimal import Decimal
from enum import StrEnum
from typing import Any, BinaryIO, cast

import orjson

from server.batches.formats.csv_reader import _csv_records
from server.batches.formats.records import ImportFormat, ParsedItem, RowError, _damaged, _reason
from server.batches.formats.validation import _validate


class Encoding(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


PARQUET_BATCH_ROWS = 2048

_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"


def _jsonl_error(raw: bytes, line: int, exc: orjson.JSONDecodeError) -> RowError:
    """Why a non-blank line did not decode: bad UTF-8 first, else the JSON error."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return RowError(
            line,
            "(line)",
            f"Line {line} is not valid UTF-8 (byte 0x{raw[bad.start]:02x} at position {bad.start + 1}); "
            "save the file as UTF-8.",
        )
    return RowError(
        line,
        "(line)",
        f"Line {line} is not valid JSON ({exc.msg} at column {exc.colno}); each line must be one complete JSON object.",
    )


def _retry_line(raw: bytes, line: int, exc: orjson.JSONDecodeError) -> Any:
    """A line the fast path refused: the record after a leading BOM, or why the line is bad."""
    if line == 1 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as after_bom:
            exc = after_bom
    return _jsonl_error(raw, line, exc)


def _jsonl_records(stream: BinaryIO) -> Iterator[tuple[int, Any]]:
    """Decode each raw line on its own, so one bad line doesn't hide the next ones."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    line = 0
    try:
        for raw in stream:
            line += 1
            try:
                record = loads(raw)
            except decode_error as exc:
                # Blank lines are refused by orjson too; finding them only here keeps the fast path short.
                if not raw.strip():
                    continue
                record = _retry_line(raw, line, exc)
            yield line, record
    except (OSError, EOFError, zlib.error) as exc:
        yield line, _damaged(exc)


def _json_default(value: Any) -> Any:
    """Parquet values orjson doesn't know: UTF-8 binary as text, decimals as numbers."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _parquet_row(record: dict[str, Any], row: int) -> Any:
    """One row as the JSON value a JSONL line would hold, or why it cannot be one."""
    try:
        # Through JSON and back: dates become strings, so the record is what a JSONL line would be.
        return orjson.loads(orjson.dumps(record, default=_json_default))
    except (orjson.JSONEncodeError, UnicodeDecodeError) as exc:
        return RowError(
            row, "(line)", f"Row {row} holds a value that JSON cannot represent ({exc}); store text as UTF-8 strings."
        )


def _parquet_records(stream: BinaryIO) -> Iterator[tuple[int, Any]]:
    """Rows as plain JSON values, batch by batch."""
    import pyarrow as pa  # imported here: pyarrow is slow to import and only Parquet needs it
    import pyarrow.parquet as pq

    unreadable = (pa.ArrowException, OSError, ValueError, EOFError, zlib.error)
    try:
        parquet = pq.ParquetFile(stream)
        # pandas may store its index as a column; it is not part of the records.
        columns = [n for n in parquet.schema_arrow.names if not n.startswith("__index_level_")]
    except unreadable as exc:
        message = f"The file could not be read as Parquet ({_reason(exc)}); export it again, or upload JSONL or CSV."
        yield 0, RowError(0, "(file)", message)
        return
    row = 0
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            for record in batch.to_pylist():
                row += 1
                yield row, _parquet_row(record, row)
    except unreadable as exc:
        message = (
            f"The Parquet file is damaged after row {row} ({_reason(exc)}); export it again, or upload JSONL or CSV."
        )
        yield row, RowError(0, "(file)", message)


def _gunzip_head(head: bytes) -> bytes:
    """As much of a gzip stream's start as `head` holds, decompressed."""
    try:
        return zlib.decompressobj(wbits=31).decompress(head, 1 << 16)
    except zlib.error:
        return b""


def _looks_like_csv_header(head: bytes) -> bool:
    """Whether the first line names the columns of an items CSV."""
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    cells = {cell.strip().strip('"').strip() for cell in first.split(",")}
    return len(cells) > 1 and bool(cells & {"prompt", "chosen"})


def detect_encoding(head: bytes, filename: str | None) -> Encoding:
    """The file's encoding from its first bytes (decompressed if gzip) and name."""
    if head.startswith(_PARQUET_MAGIC):
        return Encoding.PARQUET
    if head.startswith(_GZIP_MAGIC):
        head = _gunzip_head(head)
        if head.startswith(_PARQUET_MAGIC):
            return Encoding.PARQUET
    name = (filename or "").lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return Encoding.CSV
    if name.endswith(".parquet"):
        return Encoding.PARQUET  # without the magic it is damaged; say so rather than parse it as JSON
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return Encoding.JSONL
    # No telling name (a pipe, an API upload): a CSV header is recognisable, anything else is read as JSONL.
    text = head.removeprefix(codecs.BOM_UTF8).lstrip()
    if text[:1] not in (b"{", b"[") and _looks_like_csv_header(text):
        return Encoding.CSV
    return Encoding.JSONL


def iter_records(
    fileobj: BinaryIO,
    *,
    encoding: Encoding | None = None,
    format: ImportFormat | None = None,
    filename: str | None = None,
) -> Iterator[ParsedItem | RowError]:
    """Yield each record of a seekable file as a ParsedItem or a RowError, in order, as a stream."""
    start = fileobj.tell()
    magic = fileobj.read(2)
    fileobj.seek(start)
    stream = fileobj
    if magic == _GZIP_MAGIC:
        stream = cast(BinaryIO, gzip.GzipFile(fileobj=fileobj, mode="rb"))
    if encoding is None:
        encoding = detect_encoding(fileobj.read(4096), filename)
        fileobj.seek(start)
    # Plain strings are accepted too; the branches below compare enum members by identity.
    encoding = Encoding(encoding)
    format = None if format is None else ImportFormat(format)
    if encoding is Encoding.JSONL:
        records = _jsonl_records(stream)
    elif encoding is Encoding.CSV:
        records = _csv_records(stream, format)
    else:
        records = _parquet_records(stream)
    yield from _validate(records, format)
