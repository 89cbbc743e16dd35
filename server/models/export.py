import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, SmallInteger, String, func
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, IdMixin


class Export(IdMixin, Base):
    """The manifest of one export response: what was asked, which rows (cursor range), and a
    digest of the bytes sent, so a training run can cite exactly the data it used."""

    __tablename__ = "exports"
    __table_args__ = (CheckConstraint("status IN ('streaming', 'complete', 'aborted')", name="status"),)

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    requested_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    format: Mapped[str] = mapped_column(String(32))
    encoding: Mapped[str] = mapped_column(String(16))
    granularity: Mapped[str] = mapped_column(String(16))
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    format_version: Mapped[int] = mapped_column(SmallInteger)
    cursor_from: Mapped[int] = mapped_column(BigInteger)  # transaction-id watermarks, see exports/service.py
    cursor_to: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="streaming")  # then complete or aborted
    aborted_reason: Mapped[str | None] = mapped_column(String(32))  # disconnected, send_timeout, error, interrupted
    rows: Mapped[int | None] = mapped_column(BigInteger)
    bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))  # of the body before any Content-Encoding
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    finished_at: Mapped[datetime | None]
