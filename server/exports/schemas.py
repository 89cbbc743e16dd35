import uuid
from datetime import datetime
from typing import Any

from server.schemas import Schema


class ManifestRead(Schema):
    """What one export response contained: cite `id` (or `sha256`) in a training run."""

    id: uuid.UUID
    project_id: uuid.UUID
    format: str
    encoding: str
    granularity: str
    filters: dict[str, Any]
    format_version: int
    after: str | None  # the cursor this export started from (None: from the beginning)
    next_cursor: str  # pass as ?after= for the rows finalised since
    status: str  # "streaming" until the last byte was sent, then "complete"; "aborted" if the download was cut off
    aborted_reason: str | None  # disconnected, send_timeout, error, interrupted (before this field existed)
    rows: int | None
    bytes: int | None
    sha256: str | None  # of the body before any Content-Encoding (gzip)
    created_at: datetime
    finished_at: datetime | None
