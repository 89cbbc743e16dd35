import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import Field

from server.batches.formats import Encoding, ImportFormat
from server.errors import Invalid
from server.schemas import Schema

E = TypeVar("E", bound=StrEnum)


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


class BatchProgress(BatchRead):
    completed_items: int = 0
    judgments: int = 0
    active_leases: int = 0


class BatchUpdate(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=300)
    status: Literal["active", "paused"] | None = None
    priority: int | None = Field(default=None, ge=-1_000_000, le=1_000_000)


class ImportResult(Schema):
    id: uuid.UUID | None = Field(description="The new batch; null when every item already existed.")
    created: int
    skipped_existing: int
    message: str


class RowErrorRead(Schema):
    line: int
    field: str
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
        raise Invalid(f"{field} must be one of {allowed}; got {value!r}.") from None


def upload_options(fields: Mapping[str, Any]) -> UploadOptions:
    """Read name, format, encoding and priority; an empty value means the default."""
    try:
        priority = int(fields.get("priority") or 0)
    except ValueError:
        raise Invalid(f"priority must be a whole number; got {fields.get('priority')!r}.") from None
    return UploadOptions(
        name=str(fields["name"]).strip() or None if fields.get("name") else None,
        format=_choice(fields.get("format"), ImportFormat, "format"),
        encoding=_choice(fields.get("encoding"), Encoding, "encoding"),
        priority=priority,
    )
