import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from server.models import Prompt
from server.schemas import Schema


class RewardModelMetrics(BaseModel):
    """What a trainer measured; fields beyond these are kept as sent."""

    model_config = ConfigDict(extra="allow")

    accuracy: float | None = Field(description="Held-out pairwise accuracy; null when no pair was held out.")
    log_loss: float | None = Field(description="Held-out mean log loss of the preference probability.")
    n_pairs: int = Field(ge=0, description="Distinct comparisons the model was trained and validated on.")
    training_seconds: float = Field(ge=0)


class RewardModelCreate(Schema):
    features: str = Field(min_length=1, max_length=200, description="What the model reads, e.g. hashed n-grams.")
    cursor_from: str | None = Field(default=None, max_length=200, description="Export cursor the data starts after.")
    cursor_to: str = Field(min_length=1, max_length=200, description="Export cursor the data ends at.")
    metrics: RewardModelMetrics
    artefact_path: str | None = Field(default=None, max_length=4000, description="Where the trainer stored it.")
    artefact_sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")


class RewardModelRead(Schema):
    id: uuid.UUID
    project_id: uuid.UUID
    version: int
    features: str
    cursor_from: str | None
    cursor_to: str
    metrics: dict[str, Any]
    artefact_path: str | None
    artefact_sha256: str | None
    trainer_id: uuid.UUID | None
    created_at: datetime


class ScoreCreate(Schema):
    item_id: uuid.UUID
    p: float = Field(description="P(the item's first candidate is preferred over its second), in upload order.")
    uncertainty: float | None = Field(
        default=None,
        description="0 (sure) to 1 (no idea), e.g. from bootstrap disagreement; default 1 - 2|p - 0.5|.",
    )


class ScoresCreate(Schema):
    scores: list[ScoreCreate] = Field(min_length=1, max_length=10_000)


class ScoresResult(Schema):
    model_version: int
    scored: int
    prioritised: int = Field(description="Items whose priority changed (0 unless the project has active learning).")
    active_learning: bool


class OpenCandidate(Schema):
    id: uuid.UUID
    text: str | None
    messages: list[dict[str, str]] | None


class OpenItem(Schema):
    id: uuid.UUID
    prompt: Prompt
    candidates: list[OpenCandidate]


class OpenItemsPage(Schema):
    items: list[OpenItem]
    next_cursor: str | None = Field(description="Pass as `after` for the next page; null on the last page.")


class QueuedItem(Schema):
    """An open item in the order raters will get it, with why it is there."""

    id: uuid.UUID
    external_id: str
    batch_priority: int
    priority: float
    priority_reason: str | None
    judged: int
    wanted: int
    p: float | None
    uncertainty: float | None
    model_version: int | None
    scored_at: datetime | None
