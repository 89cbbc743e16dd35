import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, IdMixin, TimestampMixin


class Batch(IdMixin, TimestampMixin, Base):
    __tablename__ = "batches"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'paused')", name="status"),
        UniqueConstraint("id", "project_id"),  # target of items' (batch_id, project_id) foreign key
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    source_format: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="active")
    priority: Mapped[int] = mapped_column(default=0)
    item_count: Mapped[int] = mapped_column(default=0)
    sha256: Mapped[str] = mapped_column(String(64))
    # Any prompt or candidate in the batch is a chat: exports of the project then use message lists.
    has_messages: Mapped[bool] = mapped_column(default=False, server_default="false")
    # Archived (batches/lifecycle.py): its items are served to nobody and its live leases ended, but
    # everything is kept and exported; unarchiving serves them again. `status` keeps the pause.
    archived_at: Mapped[datetime | None]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
