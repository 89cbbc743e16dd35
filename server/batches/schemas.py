import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import Field

from server.batches.formats import Encoding, ImportFormat
from server.errors import Invalid, quote
from server.schemas import Schema

E = TypeVar("E", bound=StrEnum)

MAX_BATCH_NAME = 300  # batches.name is varchar(300)
MAX_PRIORITY = 1_000_000
_PRIORITY = re.compile(r"[+-]?[0-9]{1,7}")


class BatchRead(Schema):
    id: uuid.UUID
    project_id: uuid.UUID
    name: str
    source_format: str
    status: Literal["active", "paused"]
    priority: int
    item_count: int
    sha256: str
    created_at: datetime
    archived_at: datetime | None = Field(
        default=None, description="When the batch was archived (its items are served to nobody); null if it is not."
    )


class BatchProgress(BatchRead):
    completed_items: int = 0
    judgments: int = 0
    active_leases: int = 0
    skipped: int = Field(default=0, description="Skips of this batch's items (one per rater and item).")


class BatchUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=MAX_BATCH_NAME)
    status: Literal["active", "paused"] | None = None
    priority: int | None = Field(default=None, ge=-MAX_PRIORITY, le=MAX_PRIORITY)
    archived: bool | None = Field(
        default=None,
        description="true archives the batch: its items are served to nobody and live leases end now; everything "
        "is kept and exported. false serves it again.",
    )


class ImportResult(Schema):
    id: uuid.UUID | None = Field(description="The new batch; null when every item already existed.")
    created: int
    skipped_existing: int
    message: str


class RowErrorRead(Schema):
    line: int
    field: str
    message: str


class PreviewCandidateRead(Schema):
    text: str | None = None
    messages: list[dict[str, str]] | None = None
    model: str | None = None


class PreviewItemRead(Schema):
    line: int
    external_id: str
    prompt: str | list[dict[str, str]] = Field(description="The prompt as raters see it (a chat: its turns).")
    candidates: list[PreviewCandidateRead] = Field(
        description="The responses in file order (raters see them shuffled)."
    )


class PreviewRead(Schema):
    """What the upload would import; nothing was written."""

    format: str = Field(description='The detected (or given) format, e.g. "HH-RLHF, gzipped JSONL".')
    items: int = Field(description="Valid records read.")
    error_count: int
    errors: list[RowErrorRead] = Field(description="The first errors by line and field (line 0: the whole file).")
    summary: str | None = Field(description="One sentence for a file that is not JSON Lines at all.")
    first_items: list[PreviewItemRead]
    would_import: bool = Field(description="false: uploading this file now would be refused whole.")
    message: str


@dataclass(frozen=True, slots=True)
class UploadOptions:
    """The fields sent beside an uploaded file (multipart form, or the JSON body's other keys)."""

    name: str | None
    format: ImportFormat | None  # None: detect from the first record
    encoding: Encoding | None  # None: detect from the name and the first bytes
    priority: int


def _choice(value: Any, enum: type[E], field: str) -> E | None:
    if value in (None, ""):
        return None
    try:
        return enum(str(value))
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise Invalid(f"{field} must be one of {allowed}; got {quote(str(value))}.") from None


def _priority(value: Any) -> int:
    text = str(value or "0").strip()
    # ASCII digits only (int() also reads other scripts' digits), and few enough to stay in range.
    if _PRIORITY.fullmatch(text) and abs(priority := int(text)) <= MAX_PRIORITY:
        return priority
    raise Invalid(f"priority must be a whole number from {-MAX_PRIORITY:,} to {MAX_PRIORITY:,}; got {quote(text)}.")


def _name(value: Any) -> str | None:
    name = str(value or "").strip()
    if "\x00" in name:
        raise Invalid("name must not contain a NUL character (\\u0000).")
    if len(name) > MAX_BATCH_NAME:
        raise Invalid(
            f"name is {len(name):,} characters long; a batch name may be at most {MAX_BATCH_NAME} characters."
        )
    return name or None


_OPTION_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "maxLength": MAX_BATCH_NAME, "description": "Default: the file's name."},
    "format": {"type": "string", "enum": [f.value for f in ImportFormat], "description": "Default: detected."},
    "encoding": {"type": "string", "enum": [e.value for e in Encoding], "description": "Default: detected."},
    "priority": {"type": "integer", "minimum": -MAX_PRIORITY, "maximum": MAX_PRIORITY, "default": 0},
}
_NATIVE_ITEM: dict[str, Any] = {
    "type": "object",
    "description": "One record in the native JSONL shape (or HH/TRL's, with `format`).",
    "properties": {
        "id": {"type": "string"},
        "prompt": {"type": "string"},
        "responses": {
            "type": "array",
            "minItems": 2,
            "items": {"type": "object", "properties": {"text": {"type": "string"}, "model": {"type": "string"}}},
        },
    },
}
# The upload route reads its body as a stream (so it is bounded as it arrives), which FastAPI
# cannot describe: this is the body it reads, for the schema (`openapi_extra`).
UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "JSONL, CSV or Parquet"},
                        **_OPTION_FIELDS,
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {"items": {"type": "array", "items": _NATIVE_ITEM}, **_OPTION_FIELDS},
                }
            },
        },
    }
}


def upload_options(fields: Mapping[str, Any]) -> UploadOptions:
    """Read name, format, encoding and priority; an empty value means the default."""
    return UploadOptions(
        name=_name(fields.get("name")),
        format=_choice(fields.get("format"), ImportFormat, "format"),
        encoding=_choice(fields.get("encoding"), Encoding, "encoding"),
        priority=_priority(fields.get("priority")),
    )
