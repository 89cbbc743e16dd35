import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Identity,
    Index,
    SmallInteger,
    String,
    Text,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from server.db import Base, IdMixin
from server.models.xid import CURRENT_XID


class SurplusReason(enum.StrEnum):
    """Why a stored judgment does not count toward its item's `wanted`."""

    filled = "filled"  # the item already had every judgment it wanted (a run-out lease, a lowered overlap)
    removed = "removed"  # the rater was removed from the project while holding the lease
    suspended = "suspended"  # the rater's membership was suspended while holding the lease
    archived = "archived"  # the item's batch or project was archived while the rater held the lease
    not_admitted = "not_admitted"  # the rater failed the project's qualification while holding the lease


class Judgment(IdMixin, Base):
    """A rater's verdict on one assignment; at most one per assignment.

    The row holds the latest verdict. A revision (labeling/revisions.py) keeps the row's identity,
    copies the verdict it replaces into `judgment_revisions`, counts `revision` up and restamps
    `xid`, so incremental exports deliver the judgment again with its new revision.
    """

    __tablename__ = "judgments"
    # id, seq, xid and created_at come back in the INSERT's RETURNING: no reload after a submit.
    __mapper_args__ = {"eager_defaults": True}  # noqa: RUF012
    __table_args__ = (
        CheckConstraint("strength IS NULL OR strength BETWEEN 1 AND 4", name="strength"),
        CheckConstraint("active_ms IS NULL OR active_ms >= 0", name="active_ms"),
        CheckConstraint("NOT (tie AND choice_id IS NOT NULL)", name="tie_has_no_choice"),
        CheckConstraint(
            "choice_id IS NOT NULL OR ranking IS NOT NULL OR tie OR both_bad OR answer IS NOT NULL", name="has_verdict"
        ),
        CheckConstraint("surplus = (surplus_reason IS NOT NULL)", name="surplus_reason"),
        # Exports page by commit order: `xid` is the writing transaction's id, see exports/service.py.
        Index("ix_judgments_export", "project_id", "xid", "seq"),
        # The project overview's window (judgments per hour, per-rater counts and median time):
        # an index-only range scan whose cost follows the window, not the project's history.
        # Exports count the revised judgments of a pull (the Assay-Revisions header): few rows.
        Index("ix_judgments_revised", "project_id", "xid", postgresql_where=text("revision > 1")),
        CheckConstraint("revision >= 1", name="revision"),
        CheckConstraint("confidence BETWEEN 0 AND 1", name="confidence"),
        CheckConstraint("rater_kind IN ('human', 'model')", name="rater_kind"),
        # A rater's gold judgments, newest last: gold accuracy overall and over the last N.
        Index("ix_judgments_gold", "project_id", "rater_id", "seq", postgresql_where=text("gold")),
        Index(
            "ix_judgments_project_created",
            "project_id",
            "created_at",
            postgresql_include=["rater_id", "active_ms"],
        ),
        # The data browser: one rater's judgments (newest first), and items with a tie, both bad, a rationale.
        # Led by rater_id, this one index also serves the foreign key's cascade from users and every
        # "this rater in this project" query (both are equalities): a verdict enters one index fewer.
        Index("ix_judgments_rater", "rater_id", "project_id", "seq"),
        Index("ix_judgments_tie", "project_id", "item_id", postgresql_where=text("tie")),
        Index("ix_judgments_both_bad", "project_id", "item_id", postgresql_where=text("both_bad")),
        Index("ix_judgments_rationale", "project_id", "item_id", postgresql_where=text("rationale <> ''")),
    )

    seq: Mapped[int] = mapped_column(BigInteger, Identity())  # tie-breaker within a transaction
    xid: Mapped[int] = mapped_column(BigInteger, server_default=text(CURRENT_XID))
    assignment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("assignments.id", ondelete="CASCADE"), unique=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), index=True)
    rater_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))  # ix_judgments_rater
    choice_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    ranking: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(Uuid))
    strength: Mapped[int | None] = mapped_column(SmallInteger)
    tie: Mapped[bool] = mapped_column(default=False)
    both_bad: Mapped[bool] = mapped_column(default=False)
    rationale: Mapped[str | None] = mapped_column(Text)
    active_ms: Mapped[int | None]
    # A subtask's answer (server/items/subtasks.py): "yes"/"no"/"unsure" for a check, a number for
    # a rating, text for an answer; None for a comparison.
    answer: Mapped[Any | None] = mapped_column(JSONB)
    # Stored but not counted toward the item's `wanted`; `surplus_reason` says why (SurplusReason).
    surplus: Mapped[bool] = mapped_column(default=False)
    surplus_reason: Mapped[str | None] = mapped_column(String(16))
    # On a gold item: scored against its gold answer, counted toward no `wanted`.
    gold: Mapped[bool] = mapped_column(default=False, server_default="false")
    # The rater was shown the gold answer after this verdict: it can no longer be revised.
    feedback_shown: Mapped[bool] = mapped_column(default=False, server_default="false")
    assistance_shown: Mapped[bool] = mapped_column(default=False, server_default="false")
    # A model judge's verdict (its account's kind, copied so exports filter without a join) and the
    # model's confidence in it (0 to 1; only models send one).
    rater_kind: Mapped[str] = mapped_column(String(16), default="human", server_default="human")
    confidence: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # 1 for the verdict first sent; each revision by its rater counts up (`revised_at` is its time).
    revision: Mapped[int] = mapped_column(default=1, server_default="1")
    revised_at: Mapped[datetime | None]


class JudgmentRevision(Base):
    """A verdict that a later revision of its judgment replaced, with the time it was sent."""

    __tablename__ = "judgment_revisions"

    judgment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("judgments.id", ondelete="CASCADE"), primary_key=True)
    revision: Mapped[int] = mapped_column(primary_key=True)
    choice_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    ranking: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(Uuid))
    strength: Mapped[int | None] = mapped_column(SmallInteger)
    tie: Mapped[bool]
    both_bad: Mapped[bool]
    rationale: Mapped[str | None] = mapped_column(Text)
    active_ms: Mapped[int | None]
    answer: Mapped[Any | None] = mapped_column(JSONB)
    sent_at: Mapped[datetime]  # when this verdict was sent
    replaced_at: Mapped[datetime] = mapped_column(server_default=func.now())
