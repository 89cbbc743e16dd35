"""CSV uploads: the header decides the record format, each row becomes the record a JSONL line would hold."""

import csv
import io
import re
import zlib
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, TypeAlias

import orjson

from server.batches.formats.records import (
    _HH_KEYS,
    _TRL_KEYS,
    ImportFormat,
    ImportLimits,
    RowError,
    _damaged,
    _reason,
    _Refusal,
    _TooLarge,
)

# Model outputs can exceed csv's 128 KiB default; the cap still bounds one runaway quoted field.
CSV_FIELD_LIMIT = 64 << 20

# At most six digits: int() of a longer number is slow, and more responses than that are refused anyway.
_RESPONSE_COLUMN = re.compile(r"response_([1-9][0-9]{0,5})")
_MODEL_COLUMN = re.compile(r"model_([1-9][0-9]{0,5})")
_SURROGATE = re.compile("[\udc80-\udcff]")


def _csv_json(cell: str) -> Any:
    """The metadata cell's JSON (None when empty)."""
    if not cell.strip():
        return None
    try:
        return orjson.loads(cell)
    except orjson.JSONDecodeError as exc:
        raise _Refusal(
            "metadata",
            f"metadata is not valid JSON ({exc.msg} at column {exc.colno}); write a JSON object such as "
            '{"source": "web"} or leave the cell empty.',
        ) from None


def _header_error(message: str) -> RowError:
    return RowError(0, "(header)", message)


RowBuilder: TypeAlias = Callable[[list[str]], dict[str, Any]]


def _column_name_errors(header: list[str]) -> list[RowError]:
    """Errors for columns without a name or with a name an earlier column has."""
    errors = []
    for i, name in enumerate(header):
        if not name:
            errors.append(_header_error(f"Column {i + 1} has no name; every column needs a header."))
        elif header.index(name) < i:
            errors.append(_header_error(f'Column "{name[:40]}" appears more than once; each column may appear once.'))
    return errors


def _numbered(header: list[str], pattern: re.Pattern[str]) -> list[int]:
    """The sorted numbers of the columns named like `pattern` (response_N or model_N)."""
    return sorted(int(m[1]) for name in header if (m := pattern.fullmatch(name)))


def _header_kind(index: dict[str, int], responses: list[int], models: list[int]) -> tuple[ImportFormat, str, set[str]]:
    """The format the columns point to, the allowed columns as text, and the names it knows besides numbered ones."""
    if responses or models or ("chosen" not in index and "rejected" not in index):
        return (
            ImportFormat.NATIVE,
            "id, prompt, response_1, response_2, …, model_1, model_2, …, metadata",
            {"id", "prompt", "metadata"},
        )
    if "prompt" in index:
        return ImportFormat.TRL, "id, prompt, chosen, rejected, metadata", set(_TRL_KEYS)
    return ImportFormat.HH, "id, chosen, rejected, metadata", set(_HH_KEYS)


def _unknown_columns_error(
    header: list[str], kind: ImportFormat, allowed_text: str, known: set[str]
) -> RowError | None:
    """The error naming every column the format does not know, if any."""
    unknown = [
        name
        for name in header
        if name not in known
        and not (kind is ImportFormat.NATIVE and (_RESPONSE_COLUMN.fullmatch(name) or _MODEL_COLUMN.fullmatch(name)))
    ]
    if not unknown:
        return None
    noun = "column" if len(unknown) == 1 else "columns"
    names = ", ".join(f'"{n[:40]}"' for n in unknown[:5])
    if len(unknown) > 5:
        names += f" and {len(unknown) - 5} more"
    return _header_error(f"Unknown {noun} {names}; allowed columns: {allowed_text}.")


def _native_header_errors(index: dict[str, int], responses: list[int], models: list[int]) -> list[RowError]:
    """Errors for a native header: no prompt, too few or gapped response columns, models without responses."""
    errors = []
    if "prompt" not in index:
        errors.append(_header_error("The header has no prompt column; every item needs a prompt."))
    if len(responses) < 2:
        errors.append(
            _header_error(
                f"The header has {len(responses)} response column(s); add at least response_1 and response_2."
            )
        )
    elif responses != list(range(1, len(responses) + 1)):
        found = ", ".join(f"response_{n}" for n in responses[:10]) + (", …" if len(responses) > 10 else "")
        errors.append(_header_error(f"Response columns must be numbered 1, 2, 3, … without gaps; found {found}."))
    errors.extend(
        _header_error(f"model_{n} has no matching response_{n} column.") for n in models if n not in responses
    )
    return errors


def _csv_plan(header: list[str], format: ImportFormat | None) -> tuple[RowBuilder, ImportFormat] | list[RowError]:
    """How to turn each row into a record, from the header; or the header's errors."""
    errors = _column_name_errors(header)
    if errors:
        return errors
    index = {name: i for i, name in enumerate(header)}
    responses = _numbered(header, _RESPONSE_COLUMN)
    models = _numbered(header, _MODEL_COLUMN)
    kind, allowed_text, known = _header_kind(index, responses, models)
    if unknown := _unknown_columns_error(header, kind, allowed_text, known):
        errors.append(unknown)
    if format is not None and format != kind:
        errors.append(
            _header_error(
                f"The columns ({', '.join(name[:40] for name in header[:10])}) are those of format {kind}, "
                f"but format {format} was chosen; "
                f"choose format {kind} or rename the columns."
            )
        )
    if kind is ImportFormat.NATIVE:
        errors.extend(_native_header_errors(index, responses, models))
    elif "chosen" not in index or "rejected" not in index:
        have, lack = ("chosen", "rejected") if "chosen" in index else ("rejected", "chosen")
        errors.append(_header_error(f"The header has a {have} column but no {lack} column; add {lack}."))
    if errors:
        return errors
    return _row_builder(kind, index, responses), kind


def _row_builder(kind: ImportFormat, index: dict[str, int], responses: list[int]) -> RowBuilder:
    """The function that turns one row of a checked header into a record."""
    id_at, meta_at = index.get("id"), index.get("metadata")

    def common(row: list[str], record: dict[str, Any]) -> dict[str, Any]:
        # Empty optional cells mean absent, as a missing key would in JSON.
        if id_at is not None and row[id_at]:
            record["id"] = row[id_at]
        if meta_at is not None:
            record["metadata"] = _csv_json(row[meta_at])
        return record

    if kind is ImportFormat.NATIVE:
        prompt_at = index["prompt"]
        pairs = [(index[f"response_{n}"], index.get(f"model_{n}")) for n in responses]

        def native_row(row: list[str]) -> dict[str, Any]:
            cells = [{"text": row[r], "model": (row[m] or None) if m is not None else None} for r, m in pairs]
            return common(row, {"prompt": row[prompt_at], "responses": cells})

        return native_row

    keys = [n for n in ("prompt", "chosen", "rejected") if n in index]

    def pair_row(row: list[str]) -> dict[str, Any]:
        return common(row, {k: row[index[k]] for k in keys})

    return pair_row


def _csv_cells_utf8(row: list[str], header: list[str], number: int) -> RowError | None:
    """An error for the first cell holding bytes that were not UTF-8 (decoded as surrogates)."""
    for column, cell in zip(header, row, strict=False):
        if bad := _SURROGATE.search(cell):
            return RowError(
                number,
                column,
                f"Row {number}, column {column}, is not valid UTF-8 (byte 0x{ord(bad[0]) - 0xDC00:02x} at "
                f"character {bad.start() + 1} of the cell); save the file as UTF-8.",
            )
    return None


def _header_utf8_error(header: list[str]) -> RowError | None:
    """An error for the first column name holding bytes that were not UTF-8."""
    for i, name in enumerate(header):
        if bad := _SURROGATE.search(name):
            return _header_error(
                f"The header is not valid UTF-8 (byte 0x{ord(bad[0]) - 0xDC00:02x} in column {i + 1}); "
                "save the file as UTF-8."
            )
    return None


def _csv_row(row: list[str], header: list[str], number: int, build: RowBuilder) -> dict[str, Any] | RowError:
    """One non-empty data row as a record, or why it was refused."""
    if len(row) != len(header):
        return RowError(
            number,
            "(line)",
            f"Row {number} has {len(row)} cells but the header has {len(header)} columns; "
            "quote cells that hold commas or line breaks.",
        )
    if not "".join(row).isascii() and (bad_cell := _csv_cells_utf8(row, header, number)):
        return bad_cell
    try:
        return build(row)
    except _Refusal as refusal:
        return RowError(number, refusal.field, refusal.message)


class _RowLines:
    """The text's lines for csv.reader, refusing a row (which may span lines) longer than `limit` characters."""

    def __init__(self, text: io.TextIOWrapper, limit: int) -> None:
        self.text, self.limit, self.used, self.row = text, limit, 0, 0

    def __iter__(self) -> "_RowLines":
        return self

    def __next__(self) -> str:
        line = self.text.readline(self.limit - self.used + 1)
        if not line:
            raise StopIteration
        self.used += len(line)
        if self.used > self.limit:
            where = "The header" if self.row == 0 else f"Row {self.row}"
            raise _TooLarge(
                f"{where} is longer than {self.limit:,} characters, the limit for one row "
                "(ASSAY_UPLOAD_MAX_LINE_BYTES); each row must be one item.",
                self.row,
            )
        return line

    def next_row(self) -> None:
        self.used, self.row = 0, self.row + 1


def _csv_records(stream: BinaryIO, format: ImportFormat | None, limits: ImportLimits) -> Iterator[tuple[int, Any]]:
    """Rows as records, after the header is checked; bad bytes are kept as surrogates to report by row."""
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    lines = _RowLines(text, limits.line_bytes)
    number = 0
    try:
        reader = csv.reader(lines)
        first = next(reader, None)
        if first is None:
            return
        lines.next_row()
        header = [name.strip() for name in first]
        bad_header = _header_utf8_error(header)
        plan = [bad_header] if bad_header else _csv_plan(header, format)
        if isinstance(plan, list):
            for error in plan:
                yield 0, error
            return
        # The built records carry exactly their kind's keys, so format detection downstream agrees with the header.
        build, _ = plan
        for row in reader:
            number += 1
            lines.next_row()
            if row:
                yield number, _csv_row(row, header, number, build)
    except csv.Error as exc:
        yield (
            number,
            RowError(
                0,
                "(file)",
                f"The CSV could not be read after row {number} ({_reason(exc)}); check its quoting and save it again.",
            ),
        )
    except (OSError, EOFError, zlib.error) as exc:
        yield number, _damaged(exc)
    finally:
        # Detach so the wrapper, when collected, doesn't close the caller's file.
        text.detach()
