"""Parquet uploads, read in bounded slices: a small file can describe gigabytes of rows.

Parquet compresses a repeated value to almost nothing (a dictionary page holds it once, zstd
shrinks the rest), so nothing about the file's size bounds what reading it allocates. Before a
row is read, the footer's counts are checked (rows, each row group's uncompressed size); then
text columns are read as dictionaries, so a repeated value stays one value in memory, and each
batch's rows are measured (their decoded bytes, from the arrays' lengths, without building them)
before they become Python objects, a slice of at most `SLICE_BYTES` at a time.

What stays trusted: a row group's size as the footer states it. A crafted file can understate
it, and decoding one page then allocates what that page's header claims (at most 2 GB).
"""

import zlib
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import orjson

from server.batches.formats.records import ImportLimits, RowError, _reason, _TooLarge

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

PARQUET_BATCH_ROWS = 2048
SLICE_BYTES = 16 << 20  # decoded bytes turned into Python objects at once
_FIXED_WIDTH_BYTES = 16  # numbers, dates, booleans: a generous size for one value


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


def value_bytes(array: "pa.Array") -> np.ndarray:
    """Decoded bytes of each value of an Arrow array (nested values summed), computed from lengths and offsets."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = array.type
    if pa.types.is_dictionary(kind):
        sizes = np.append(value_bytes(array.dictionary), 0)  # a null's index, -1, reads the appended 0
        indices = np.asarray(array.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)
        picked: np.ndarray = sizes[indices]
        return picked
    if (
        pa.types.is_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_string(kind)
        or (pa.types.is_large_binary(kind))
    ):
        return np.asarray(pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_map(kind):
        # offsets index into values, which ignores the array's own slice offset; the two agree.
        cumulative = np.concatenate(([0], np.cumsum(value_bytes(array.values), dtype=np.int64)))
        offsets = array.offsets.to_numpy(zero_copy_only=False)
        lengths: np.ndarray = cumulative[offsets[1:]] - cumulative[offsets[:-1]] + _FIXED_WIDTH_BYTES
        return lengths
    if pa.types.is_struct(kind):
        total = np.full(len(array), _FIXED_WIDTH_BYTES, dtype=np.int64)
        for child in array.flatten():
            total += value_bytes(child)
        return total
    return np.full(len(array), _FIXED_WIDTH_BYTES, dtype=np.int64)


def _text_columns(parquet: "pq.ParquetFile") -> list[str]:
    """The paths of every byte-array leaf column, to read as dictionaries."""
    schema = parquet.schema
    return [schema.column(i).path for i in range(len(schema)) if schema.column(i).physical_type == "BYTE_ARRAY"]


def _check_footer(parquet: "pq.ParquetFile", limits: ImportLimits) -> None:
    """Refuse, before reading a row, a file whose footer already passes a limit."""
    metadata = parquet.metadata
    if metadata.num_rows > limits.items:
        raise _TooLarge(
            f"The file holds {metadata.num_rows:,} rows, more than the {limits.items:,} items one upload may hold "
            "(ASSAY_UPLOAD_MAX_ITEMS); split it into several batches."
        )
    total = 0
    for index in range(metadata.num_row_groups):
        size = metadata.row_group(index).total_byte_size
        total += size
        if size > limits.parquet_row_group_bytes:
            raise _TooLarge(
                f"Row group {index + 1} of the Parquet file holds {size:,} bytes uncompressed, more than the "
                f"{limits.parquet_row_group_bytes:,} allowed (ASSAY_UPLOAD_MAX_PARQUET_ROW_GROUP_BYTES); write it "
                "with smaller row groups (row_group_size)."
            )
    if total > limits.decompressed_bytes:
        raise _TooLarge(_decompressed_message(total, limits))


def _decompressed_message(size: int, limits: ImportLimits) -> str:
    return (
        f"The file expands to more than {limits.decompressed_bytes:,} bytes (at least {size:,}), the limit for one "
        "upload (ASSAY_UPLOAD_MAX_DECOMPRESSED_BYTES); split it into several batches."
    )


def _slices(batch: "pa.RecordBatch", first_row: int, budget: list[int], limits: ImportLimits) -> Iterator[Any]:
    """The batch in slices of at most SLICE_BYTES decoded, refusing a row or a file past its limit."""
    sizes = np.zeros(batch.num_rows, dtype=np.int64)
    for column in batch.columns:
        sizes += value_bytes(column)
    start, pending = 0, 0
    for offset, size in enumerate(sizes.tolist()):
        if size > limits.line_bytes:
            row = first_row + offset
            raise _TooLarge(
                f"Row {row} holds {size:,} bytes of data; a row may hold at most {limits.line_bytes:,} "
                "(ASSAY_UPLOAD_MAX_LINE_BYTES).",
                row,
            )
        budget[0] -= size
        if budget[0] < 0:
            raise _TooLarge(_decompressed_message(limits.decompressed_bytes - budget[0], limits))
        if pending + size > SLICE_BYTES and offset > start:
            yield batch.slice(start, offset - start)
            start, pending = offset, 0
        pending += size
    if start < batch.num_rows:
        yield batch.slice(start)


def parquet_records(stream: BinaryIO, limits: ImportLimits) -> Iterator[tuple[int, Any]]:
    """Rows as plain JSON values, in bounded slices."""
    import pyarrow as pa  # imported here: pyarrow is slow to import and only Parquet needs it
    import pyarrow.parquet as pq

    unreadable = (pa.ArrowException, OSError, ValueError, EOFError, zlib.error)
    try:
        footer = pq.ParquetFile(stream)
        _check_footer(footer, limits)
        parquet = pq.ParquetFile(stream, read_dictionary=_text_columns(footer))
        # pandas may store its index as a column; it is not part of the records.
        columns = [n for n in parquet.schema_arrow.names if not n.startswith("__index_level_")]
    except unreadable as exc:
        message = f"The file could not be read as Parquet ({_reason(exc)}); export it again, or upload JSONL or CSV."
        yield 0, RowError(0, "(file)", message)
        return
    row = 0
    budget = [limits.decompressed_bytes]
    try:
        for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            for part in _slices(batch, row + 1, budget, limits):
                for record in part.to_pylist():
                    row += 1
                    yield row, _parquet_row(record, row)
    except unreadable as exc:
        message = (
            f"The Parquet file is damaged after row {row} ({_reason(exc)}); export it again, or upload JSONL or CSV."
        )
        yield row, RowError(0, "(file)", message)
