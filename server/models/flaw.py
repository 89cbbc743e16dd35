import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, IdMixin

# Both kinds of flaw carry a span of their candidate: `[span_start, span_end)` in code points of the
# candidate's text, or of `messages[span_message].content` for a chat candidate (labeling/spans.py).
SPAN_CHECKS = (
    "span_start >= 0 AND span_end > span_start",
    "span_message IS NULL OR span_message >= 0",
)


class Flaw(IdMixin, Base):
    """A flaw a rater marked in a candidate: part of their judgment (a revision replaces it)."""

    __tablename__ = "flaws"
    __table_args__ = (
        CheckConstraint(SPAN_CHECKS[0], name="span_order"),
        CheckConstraint(SPAN_CHECKS[1], name="span_message"),
        CheckConstraint("severity IS NULL OR severity IN ('minor', 'major', 'critical')", name="severity"),
        Index("ix_flaws_judgment", "judgment_id"),
        Index("ix_flaws_item", "item_id"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    candidate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    judgment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("judgments.id", ondelete="CASCADE"))
    span_message: Mapped[int | None] = mapped_column(SmallInteger)
    span_start: Mapped[int]
    span_end: Mapped[int]
    severity: Mapped[str | None] = mapped_column(String(16))  # Severity
    note: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")  # in the list as sent
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class PlantedFlaw(IdMixin, Base):
    """A flaw planted in a candidate on purpose, to measure what raters catch; hidden from raters like gold.

    Given in the import (`responses[i].planted`) or set on the admin item page. It counts as caught
    by a judgment that marks an overlapping span of the same candidate (and message), or, in a
    two-candidate comparison where only this candidate carries planted flaws, prefers the other one.
    """

    __tablename__ = "planted_flaws"
    __table_args__ = (
        CheckConstraint(SPAN_CHECKS[0], name="span_order"),
        CheckConstraint(SPAN_CHECKS[1], name="span_message"),
        Index("ix_planted_flaws_item", "item_id"),
        Index("ix_planted_flaws_project", "project_id"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    candidate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    span_message: Mapped[int | None] = mapped_column(SmallInteger)
    span_start: Mapped[int]
    span_end: Mapped[int]
    description: Mapped[str] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
