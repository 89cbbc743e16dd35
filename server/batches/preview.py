"""An upload's dry run: the same parser as the import, nothing written (no database).

It names the detected format ("HH-RLHF, gzipped JSONL"), keeps the first items as raters will
see them (which turns became the prompt, which the responses), counts items and errors, and sums
up a file that is not JSON Lines at all in one sentence before its line errors.
"""

import gzip
from dataclasses import dataclass, field
from typing import BinaryIO

from server.batches.formats import Encoding, ImportFormat, detect_encoding, iter_records
from server.batches.formats.readers import first_format, is_gzipped
from server.batches.formats.records import ImportLimits, ParsedItem, RowError
from server.errors import quote

PREVIEW_ITEMS = 3
MAX_LISTED_ERRORS = 50
FORMAT_NAMES = {
    ImportFormat.NATIVE: "Native (prompt, responses)",
    ImportFormat.HH: "HH-RLHF",
    ImportFormat.TRL: "TRL (prompt, chosen, rejected)",
}
ENCODING_NAMES = {Encoding.JSONL: "JSONL", Encoding.CSV: "CSV", Encoding.PARQUET: "Parquet"}


@dataclass
class Preview:
    format_name: str
    items: list[ParsedItem] = field(default_factory=list)  # the first PREVIEW_ITEMS
    item_count: int = 0
    error_count: int = 0
    errors: list[RowError] = field(default_factory=list)
    summary: str | None = None


def not_jsonl_summary(encoding: Encoding, *, items: int, errors: list[RowError], head: bytes) -> str | None:
    """One sentence for a JSONL upload in which no line is a JSON object (a PDF, a text file, a JSON array…)."""
    if Encoding(encoding) is not Encoding.JSONL or items or not errors:
        return None
    if not all(e.field == "(line)" for e in errors):
        return None
    start = head.decode("utf-8", "replace").strip().split("\n", 1)[0][:40]
    return (
        f"This file is not JSON Lines: none of its lines is a JSON object (it begins with {quote(start)}). "
        "Upload one JSON object per line, or a CSV or Parquet file."
    )


def format_name(fmt: ImportFormat | None, encoding: Encoding, *, gzipped: bool) -> str:
    """ "HH-RLHF, gzipped JSONL"; the record format is unknown when no record could be read."""
    kind = ("gzipped " if gzipped else "") + ENCODING_NAMES[encoding]
    return f"{FORMAT_NAMES[fmt]}, {kind}" if fmt else f"{kind} (record format not recognised)"


def preview_file(
    file: BinaryIO,
    *,
    filename: str | None,
    format: ImportFormat | None,
    encoding: Encoding | None,
    limits: ImportLimits,
) -> Preview:
    """Parse the whole file as the import would (its limits included) and keep what a preview shows."""
    head = file.read(4096)
    file.seek(0)
    encoding = Encoding(encoding or detect_encoding(head, filename))
    gzipped = is_gzipped(file)
    fmt = format or first_format(file, encoding=encoding, limits=limits)
    preview = Preview(format_name=format_name(fmt, encoding, gzipped=gzipped))
    for record in iter_records(file, encoding=encoding, format=format, filename=filename, limits=limits):
        if isinstance(record, RowError):
            preview.error_count += 1
            if len(preview.errors) < MAX_LISTED_ERRORS:
                preview.errors.append(record)
            continue
        preview.item_count += 1
        if len(preview.items) < PREVIEW_ITEMS:
            preview.items.append(record)
    file.seek(0)
    preview.summary = not_jsonl_summary(
        encoding, items=preview.item_count, errors=preview.errors, head=file_start(file)
    )
    return preview


def file_start(file: BinaryIO) -> bytes:
    """The first bytes of the file's content (decompressed when gzipped), for a message."""
    position = file.tell()
    try:
        file.seek(0)
        head = file.read(4096)
        if not head.startswith(b"\x1f\x8b"):
            return head
        file.seek(0)
        return gzip.GzipFile(fileobj=file, mode="rb").read(4096)
    except (OSError, EOFError):
        return b""
    finally:
        file.seek(position)
