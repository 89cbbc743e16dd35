"""Reading an upload as a stream of records: JSONL, CSV or Parquet, gzip or not, with encoding detection."""

import codecs
import gzip
import io
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from enum import StrEnum
from typing import Any, BinaryIO, cast

import orjson

from server.batches.formats.csv_reader import _csv_records
from server.batches.formats.parquet_reader import parquet_records
from server.batches.formats.records import ImportFormat, ImportLimits, ParsedItem, RowError, _damaged, _TooLarge
from server.batches.formats.validation import _validate, detect_format


class Encoding(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


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


class _Counted(io.RawIOBase):
    """A file's bytes, refused once more than `limit` of them were read (a gzip bomb stops there)."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self.inner, self.limit, self.count = inner, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(min(len(buffer), self.limit + 1 - self.count))
        self.count += len(data)
        if self.count > self.limit:
            raise _TooLarge(
                f"The file expands to more than {self.limit:,} bytes, the limit for one upload "
                "(ASSAY_UPLOAD_MAX_DECOMPRESSED_BYTES); split it into several batches."
            )
        buffer[: len(data)] = data
        return len(data)


def _lines(stream: BinaryIO, limit: int) -> Iterator[bytes]:
    """The stream's lines, refusing one longer than `limit` bytes before reading the rest of it."""
    readline, line = stream.readline, 0
    while raw := readline(limit + 1):
        line += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            raise _TooLarge(
                f"Line {line} is longer than {limit:,} bytes, the limit for one line (ASSAY_UPLOAD_MAX_LINE_BYTES); "
                "each line must be one item.",
                line,
            )
        yield raw


def _jsonl_records(stream: BinaryIO, limits: ImportLimits) -> Iterator[tuple[int, Any]]:
    """Decode each raw line on its own, so one bad line doesn't hide the next ones."""
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    line = 0
    try:
        for raw in _lines(stream, limits.line_bytes):
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


def _gunzipped(fileobj: BinaryIO, limit: int) -> BinaryIO:
    """A gzipped Parquet file decompressed into a temporary file (Parquet needs to seek), up to `limit` bytes."""
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115  # closed by the caller's GC
    counted = io.BufferedReader(_Counted(cast(BinaryIO, gzip.GzipFile(fileobj=fileobj, mode="rb")), limit))
    shutil.copyfileobj(counted, spool, 1 << 20)
    spool.seek(0)
    return cast(BinaryIO, spool)


def _records(
    fileobj: BinaryIO, encoding: Encoding, format: ImportFormat | None, limits: ImportLimits
) -> Iterator[tuple[int, Any]]:
    """The file's decoded records, its bytes counted after decompression."""
    start = fileobj.tell()
    gzipped = fileobj.read(2) == _GZIP_MAGIC
    fileobj.seek(start)
    if encoding is Encoding.PARQUET:
        # Parquet's own compression is bounded row by row; a gzip around it is unpacked first.
        try:
            source = _gunzipped(fileobj, limits.decompressed_bytes) if gzipped else fileobj
        except (OSError, EOFError, zlib.error) as exc:
            return iter([(0, _damaged(exc))])
        return parquet_records(source, limits)
    inner = cast(BinaryIO, gzip.GzipFile(fileobj=fileobj, mode="rb")) if gzipped else fileobj
    stream = cast(BinaryIO, io.BufferedReader(_Counted(inner, limits.decompressed_bytes), 1 << 16))
    if encoding is Encoding.JSONL:
        return _jsonl_records(stream, limits)
    return _csv_records(stream, format, limits)


def first_format(fileobj: BinaryIO, *, encoding: Encoding, limits: ImportLimits | None = None) -> ImportFormat | None:
    """The record format the import would detect from the file's first record (None: none detected)."""
    start = fileobj.tell()
    try:
        for _, record in _records(fileobj, Encoding(encoding), None, limits or ImportLimits()):
            if type(record) is dict:
                return detect_format(record)
            if not isinstance(record, RowError):
                return None
        return None
    except _TooLarge:
        return None
    finally:
        fileobj.seek(start)


def is_gzipped(fileobj: BinaryIO) -> bool:
    start = fileobj.tell()
    try:
        return fileobj.read(2) == _GZIP_MAGIC
    finally:
        fileobj.seek(start)


def iter_records(
    fileobj: BinaryIO,
    *,
    encoding: Encoding | None = None,
    format: ImportFormat | None = None,
    filename: str | None = None,
    limits: ImportLimits | None = None,
) -> Iterator[ParsedItem | RowError]:
    """Yield each record of a seekable file as a ParsedItem or a RowError, in order, as a stream;
    a size limit passed ends the stream with a RowError marked `too_large`."""
    limits = limits or ImportLimits()
    if encoding is None:
        start = fileobj.tell()
        encoding = detect_encoding(fileobj.read(4096), filename)
        fileobj.seek(start)
    # Plain strings are accepted too; the branches compare enum members by identity.
    encoding = Encoding(encoding)
    format = None if format is None else ImportFormat(format)
    try:
        yield from _validate(_records(fileobj, encoding, format, limits), format, limits)
    except _TooLarge as exc:
        yield exc.error
