"""Parse an uploaded file of items (JSONL, CSV or Parquet; native, HH-RLHF or TRL records) as a stream.

`iter_records` yields, in file order, a `ParsedItem` for every good record and a `RowError` for every
bad one, holding only counters, so memory stays flat whatever the file's size. Duplicate ids are
not checked here: the caller finds them across the whole file in SQL.

Decisions the caller relies on:

- File-level problems are yielded, never raised: `RowError(line=0, field="(file)" or "(header)")`,
  after which the stream stops (unreadable Parquet, damaged gzip, unusable CSV header, CSV that
  cannot be parsed). There is no exception to catch.
- When the format is detected and the first record's keys fit no format, one `RowError` with
  field "(format)" is yielded on that record's line, and the stream stops.
- A record yields at most one `RowError`: the first problem found.
- `null` means absent for every optional key (id, metadata, gold, model, a response's text or
  messages), because Parquet columns hold nulls where a JSON object would leave the key out.
- A candidate that is a single assistant message (TRL conversational, HH remainder) is stored as
  `text`; longer remainders are stored as `messages`, so nothing is dropped.
- An item without an id gets "sha256:" + 32 hex of the hash of its prompt and each candidate's
  text, messages and model (not metadata or gold), so editing metadata keeps the same identity.
- Line numbers are 1-based: JSONL lines (blank lines counted and skipped), CSV data rows (1 is
  the row after the header), Parquet rows.
"""

from server.batches.formats.csv_reader import CSV_FIELD_LIMIT, RowBuilder
from server.batches.formats.parquet_reader import PARQUET_BATCH_ROWS
from server.batches.formats.readers import Encoding, detect_encoding, iter_records
from server.batches.formats.records import (
    MAX_ID_LENGTH,
    ImportFormat,
    ImportLimits,
    ParsedCandidate,
    ParsedItem,
    Prompt,
    RowError,
)

__all__ = [
    "CSV_FIELD_LIMIT",
    "MAX_ID_LENGTH",
    "PARQUET_BATCH_ROWS",
    "Encoding",
    "ImportFormat",
    "ImportLimits",
    "ParsedCandidate",
    "ParsedItem",
    "Prompt",
    "RowBuilder",
    "RowError",
    "detect_encoding",
    "iter_records",
]
