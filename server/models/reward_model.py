import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, String, Text, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db import Base, IdMixin


class RewardModel(IdMixin, Base):
    """One reward model a trainer worker trained from an export, with its held-out metrics.

    `version` counts up per project. A model is identified by the data it saw: the same
    features trained on the same cursor range is the same model, so a worker that reports
    twice (a retry, a restart after a crash) gets the first row back instead of a new version.
    """

    __tablename__ = "reward_models"
    __table_args__ = (
        UniqueConstraint("project_id", "version"),
        UniqueConstraint("project_id", "features", "cursor_to", name="uq_reward_models_training_run"),
        CheckConstraint("version >= 1", name="version"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    version: Mapped[int]
    features: Mapped[str] = mapped_column(String(200))
    # The export cursors this model's data spans: (cursor_from, cursor_to]; null from = from the start.
    cursor_from: Mapped[str | None] = mapped_column(String(200))
    cursor_to: Mapped[str] = mapped_column(String(200))
    # accuracy, log_loss, n_pairs, n_train, n_validation, n_judgments, training_seconds, ...
    metrics: Mapped[dict[str, Any]]
    artefact_path: Mapped[str | None] = mapped_column(Text)
    artefact_sha256: Mapped[str | None] = mapped_column(String(64))
    trainer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ItemScore(Base):
    """A reward model's latest opinion of one item: its preference probability and uncertainty.

    One row per item (the newest model's score replaces an older one), so the table stays the
    size of the project however many versions are trained.
    """

    __tablename__ = "item_scores"
    __table_args__ = (
        CheckConstraint("p BETWEEN 0 AND 1", name="p"),
        CheckConstraint("uncertainty BETWEEN 0 AND 1", name="uncertainty"),
        Index("ix_item_scores_reward_model_id", "reward_model_id"),
    )

    item_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    reward_model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("reward_models.id", ondelete="CASCADE"))
    model_version: Mapped[int]
    # P(the item's first candidate is preferred over its second), in upload order.
    p: Mapped[float] = mapped_column(Float)
    uncertainty: Mapped[float] = mapped_column(Float)
    scored_at: Mapped[datetime] = mapped_column(server_default=func.now())

    reward_model: Mapped[RewardModel] = relationship(lazy="raise")
