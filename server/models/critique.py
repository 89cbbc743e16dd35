import enum
import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity, Index, SmallInteger, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, IdMixin


class Severity(enum.StrEnum):
    """How bad the problem a critique (or, later, a flaw) names is."""

    minor = "minor"
    major = "major"
    critical = "critical"


class CritiqueVerdict(enum.StrEnum):
    """A rater's rating of a critique shown to them."""

    valid = "valid"
    invalid = "invalid"
    unsure = "unsure"


class Critique(IdMixin, Base):
    """A critique of one candidate: from the import, posted later (a model), or written by a rater.

    `author_model` names a model; `author_id` a user (a rater who wrote it with their judgment,
    `judgment_id`, which a revision replaces). The span is `[span_start, span_end)` in code points
    of the candidate's text or of `messages[span_message].content` (labeling/spans.py).
    """

    __tablename__ = "critiques"
    __table_args__ = (
        CheckConstraint("(span_start IS NULL) = (span_end IS NULL)", name="span_pair"),
        CheckConstraint("span_start IS NULL OR (span_start >= 0 AND span_end > span_start)", name="span_order"),
        CheckConstraint("span_message IS NULL OR span_start IS NOT NULL", name="span_message"),
        CheckConstraint("severity IS NULL OR severity IN ('minor', 'major', 'critical')", name="severity"),
        Index("ix_critiques_item", "item_id", "seq"),
        Index("ix_critiques_judgment", "judgment_id", postgresql_where=text("judgment_id IS NOT NULL")),
    )

    seq: Mapped[int] = mapped_column(BigInteger, Identity())  # the order critiques are shown in
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    candidate_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    author_model: Mapped[str | None] = mapped_column(String(200))
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    judgment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("judgments.id", ondelete="CASCADE"))
    span_message: Mapped[int | None] = mapped_column(SmallInteger)
    span_start: Mapped[int | None]
    span_end: Mapped[int | None]
    severity: Mapped[str | None] = mapped_column(String(16))  # Severity
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CritiqueRating(Base):
    """A rater's rating of a critique shown to them, part of their judgment (a revision replaces it)."""

    __tablename__ = "critique_ratings"
    __table_args__ = (
        CheckConstraint("verdict IN ('valid', 'invalid', 'unsure')", name="verdict"),
        Index("ix_critique_ratings_critique", "critique_id"),
    )

    judgment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("judgments.id", ondelete="CASCADE"), primary_key=True)
    critique_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("critiques.id", ondelete="CASCADE"), primary_key=True)
    verdict: Mapped[str] = mapped_column(String(16))  # CritiqueVerdict
    helpful: Mapped[bool | None]
