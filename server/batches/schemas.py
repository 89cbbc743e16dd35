import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from server.schemas import Schema


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
