import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base, IdMixin

Prompt = str | list[dict[str, str]]


class Item(IdMixin, Base):
    """One prompt with its candidates, and its place in the labeling queue.

    The queue state is kept on the row itself (`leased`, `judged`, `wanted`, `paused`) so that
    handing out work never counts over the project: `queue_open` is derived by PostgreSQL and
    the partial index on it holds exactly the items a rater could be given.
    """

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("project_id", "external_id"),
        # One check ties an item to its batch and to that batch's project (and cascades from both).
        ForeignKeyConstraint(
            ["batch_id", "project_id"],
            ["batches.id", "batches.project_id"],
            ondelete="CASCADE",
            name="fk_items_batch_project",
        ),
        Index("ix_items_parent", "parent_id", postgresql_where=text("parent_id IS NOT NULL")),
        CheckConstraint("leased >= 0", name="leased"),
        CheckConstraint("judged >= 0", name="judged"),
        CheckConstraint("open_subtasks >= 0", name="open_subtasks"),
        CheckConstraint("kind IN ('comparison', 'check', 'rating', 'answer')", name="kind"),
        CheckConstraint(
            "(kind = 'rating') = (scale_min IS NOT NULL AND scale_max IS NOT NULL AND scale_min < scale_max)",
            name="scale",
        ),
        CheckConstraint("kind = 'comparison' OR parent_id IS NOT NULL", name="subtask_parent"),
        CheckConstraint("model_judged >= 0", name="model_judged"),
        CheckConstraint("label_source IN ('model')", name="label_source"),
        # The model judges' pick (labeling/handoff.py): items still in the model phase, in import order.
        Index(
            "ix_items_models",
            "project_id",
            "seq",
            postgresql_where=text("awaiting_models AND NOT paused AND label_source IS NULL"),
        ),
        # The hand-off report: items the models resolved or handed to humans.
        Index(
            "ix_items_handoff",
            "project_id",
            postgresql_where=text("label_source IS NOT NULL OR handoff_reason IS NOT NULL"),
        ),
        CheckConstraint("wanted >= 1 OR gold_seq IS NOT NULL", name="wanted"),
        # A gold item is served in its own order and never through the queue (wanted = 0).
        CheckConstraint("(gold IS NULL) = (gold_seq IS NULL)", name="gold_order"),
        CheckConstraint("gold_seq IS NULL OR wanted = 0", name="gold_not_queued"),
        Index("ix_items_gold", "project_id", "gold_seq", postgresql_where=text("gold_seq IS NOT NULL")),
        # Serving order as ascending expressions, so that a rater's pick can resume after the
        # last item it gave them with one row comparison (see labeling/service.py).
        Index(
            "ix_items_queue",
            "project_id",
            text("(-batch_priority)"),
            text("(-priority)"),
            "seq",
            postgresql_where=text("queue_open AND pool IS NULL"),
        ),
        # Items only one rater group may be given (a subtask's pool): raters outside it never walk them.
        Index(
            "ix_items_pool",
            "project_id",
            "pool",
            text("(-batch_priority)"),
            text("(-priority)"),
            "seq",
            postgresql_where=text("queue_open AND pool IS NOT NULL"),
        ),
        # Completed-item exports page by the transaction that last changed an item's aggregate.
        Index(
            "ix_items_aggregate",
            "project_id",
            "aggregate_xid",
            postgresql_where=text("aggregate_xid IS NOT NULL"),
        ),
        # A batch's items in import order: the search indexer's chunks and the browser's words for the
        # items it has not reached (items/search.py), and every read of a batch's items.
        Index("ix_items_batch_seq", "batch_id", "seq"),
        # The data browser pages a project in import order (its words: ItemSearch below).
        Index("ix_items_project_seq", "project_id", "seq"),
        Index(
            "ix_items_completed",
            "project_id",
            "completed_at",
            postgresql_where=text("completed_at IS NOT NULL"),
        ),
    )

    project_id: Mapped[uuid.UUID]
    batch_id: Mapped[uuid.UUID]
    # Evaluation assistance (later issue): subtasks are items with a parent and another kind.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32), default="comparison", server_default="comparison")
    # A subtask (server/items/subtasks.py): its question, a rating's scale, the candidate of its tree
    # it concerns (optionally a span of it), and the rater group (membership `group`) it is for.
    question: Mapped[str | None] = mapped_column(Text)
    scale_min: Mapped[float | None]
    scale_max: Mapped[float | None]
    # No foreign key (it would make items and candidates depend on each other): the candidate is
    # its tree's, and a tree's items and candidates are only ever deleted together.
    subtask_candidate_id: Mapped[uuid.UUID | None]
    span_message: Mapped[int | None] = mapped_column(SmallInteger)
    span_start: Mapped[int | None]
    span_end: Mapped[int | None]
    pool: Mapped[str | None] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(BigInteger, Identity())  # import order
    prompt: Mapped[Prompt] = mapped_column(JSONB)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict, server_default="{}")
    # A gold answer (server/quality/gold.py) makes this a gold item: served to each rater at most
    # once, at the project's gold_rate, in `gold_seq` order (set when it became gold), apart from
    # the queue, and its judgments count toward no `wanted`.
    gold: Mapped[Any | None] = mapped_column(JSONB)
    gold_seq: Mapped[int | None] = mapped_column(BigInteger)

    wanted: Mapped[int] = mapped_column(SmallInteger)
    leased: Mapped[int] = mapped_column(default=0, server_default="0")
    judged: Mapped[int] = mapped_column(default=0, server_default="0")
    paused: Mapped[bool] = mapped_column(default=False, server_default="false")
    # Held back from human raters while something else must happen first (issue 12): model judges
    # get the item first under a project's hand-off rule, or its subtasks are not complete yet
    # (a task tree's parent under `subtasks_gate = required`). Model accounts pick from their own index.
    awaiting_models: Mapped[bool] = mapped_column(default=False, server_default="false")
    open_subtasks: Mapped[int] = mapped_column(default=0, server_default="0")
    # The hand-off (labeling/handoff.py): model judgments counted against the rule's `min_judges`;
    # 'model' when the models resolved the item (it then keeps `awaiting_models`, so it is never
    # served to humans); why it went to humans instead ("models disagree", "p=0.54 < 0.8"), and
    # whether it was a spot check (resolved by the models, sent to humans anyway).
    model_judged: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    label_source: Mapped[str | None] = mapped_column(String(16))
    handoff_reason: Mapped[str | None] = mapped_column(Text)
    spot_check: Mapped[bool] = mapped_column(default=False, server_default="false")
    queue_open: Mapped[bool] = mapped_column(
        Computed(
            "NOT paused AND NOT awaiting_models AND open_subtasks = 0 AND leased + judged < wanted",
            persisted=True,
        )
    )

    batch_priority: Mapped[int] = mapped_column(default=0, server_default="0")
    priority: Mapped[float] = mapped_column(default=0.0, server_default="0")
    priority_reason: Mapped[str | None] = mapped_column(Text)

    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Set when `judged` reaches `wanted` (and cleared when a higher overlap reopens the item).
    completed_at: Mapped[datetime | None]
    # The per-item aggregate that completed-item exports deliver: its revision counts up each
    # time the item completes (again), and `aggregate_xid` is the transaction that did it.
    aggregate_revision: Mapped[int] = mapped_column(default=0, server_default="0")
    aggregate_xid: Mapped[int | None] = mapped_column(BigInteger)

    candidates: Mapped[list["Candidate"]] = relationship(
        lazy="raise", order_by="Candidate.position", back_populates="item"
    )


class Candidate(IdMixin, Base):
    __tablename__ = "candidates"
    __table_args__ = (
        UniqueConstraint("item_id", "position"),
        CheckConstraint("(text IS NULL) <> (messages IS NULL)", name="text_or_messages"),
    )

    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(SmallInteger)  # order in the uploaded file
    text: Mapped[str | None] = mapped_column(Text)
    messages: Mapped[list[dict[str, str]] | None] = mapped_column(JSONB)
    model: Mapped[str | None] = mapped_column(String(200))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONB, default=dict, server_default="{}")

    item: Mapped[Item] = relationship(lazy="raise", back_populates="candidates")


class ItemSearch(Base):
    """An item's words (prompt turns and every response) for the data browser's full-text search.

    Written just after the import commits (items/search.py), in a table of its own so that writing
    it locks no item. No foreign keys, so that the indexer waits for nothing: deletions remove an
    item's row themselves (projects/lifecycle.py).
    """

    __tablename__ = "item_search"
    __table_args__ = (Index("ix_item_search_words", "search", postgresql_using="gin"),)

    item_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    project_id: Mapped[uuid.UUID]
    # to_tsvector('english', assay_search_text(prompt, candidates)): the function (migration
    # 2026-11-30-2300) bounds the text.
    search: Mapped[str] = mapped_column(TSVECTOR)


class SearchPending(Base):
    """A batch whose items' search vectors are still to be written, and how far the indexer got."""

    __tablename__ = "search_pending"

    batch_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    project_id: Mapped[uuid.UUID]
    after_seq: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
