import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base, IdMixin
from server.models.item import Item


class AssignmentStatus(enum.StrEnum):
    leased = "leased"
    submitted = "submitted"
    skipped = "skipped"
    expired = "expired"  # the lease ran out and its slot went back to the queue
    ended = "ended"  # an admin removed or suspended the rater: the slot went back at once


class SkipReason(enum.StrEnum):
    """Why a rater skipped an item (optional; the free-text `skip_reason` may add words)."""

    unclear = "unclear"
    harmful = "harmful"
    cannot_judge = "cannot_judge"
    other = "other"


class Assignment(IdMixin, Base):
    """A time-limited lease of one item to one rater; the row stays as the record of who saw what."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "rater_id"),
        CheckConstraint("status IN ('leased', 'submitted', 'skipped', 'expired', 'ended')", name="status"),
        CheckConstraint(
            "skip_reason_code IS NULL OR skip_reason_code IN ('unclear', 'harmful', 'cannot_judge', 'other')",
            name="skip_reason_code",
        ),
        Index(
            "ix_assignments_open_by_rater",
            "rater_id",
            "project_id",
            postgresql_where=text("status = 'leased'"),
        ),
        # The data browser's "skipped" filter.
        Index("ix_assignments_skipped", "project_id", "item_id", postgresql_where=text("status = 'skipped'")),
        Index("ix_assignments_expiry", "project_id", "expires_at", postgresql_where=text("status = 'leased'")),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    rater_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=AssignmentStatus.leased)
    # Candidate ids in the order this rater was shown them (randomised per assignment).
    shown_order: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid))
    # What evaluation assistance was shown (later issue); null = none.
    assistance: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    leased_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    skip_reason: Mapped[str | None] = mapped_column(Text)
    skip_reason_code: Mapped[str | None] = mapped_column(String(16))  # SkipReason
    gold: Mapped[bool] = mapped_column(default=False, server_default="false")  # served as a gold item
    # Why an admin ended the lease (status `ended`): `removed` or `suspended`.
    ended_reason: Mapped[str | None] = mapped_column(String(16))

    item: Mapped[Item] = relationship(lazy="raise")
