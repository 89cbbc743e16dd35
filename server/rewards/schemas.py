import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.models import Prompt
from server.schemas import INT32_MAX, Schema, no_nul

MAX_COUNT = 10**12  # judgments, pairs: far beyond any project, well inside JSON's exact integers
MAX_EXTRA_METRICS = 50
_METRIC_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
# A version in a URL: the column is an int4, and versions start at 1.
Version = Annotated[int, Path(ge=1, le=INT32_MAX, description="The reward model's version (1, 2, …).")]


def _extra_metric(name: str, value: Any) -> None:
    """Refuse an extra metric that is not a short name with a number, short text, yes/no or null."""
    if not _METRIC_NAME.fullmatch(name):
        raise ValueError("metric names are 1 to 100 letters, digits, '_', '.' or '-'")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"metric {name} must be a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_COUNT:
        raise ValueError(f"metric {name} must be at most {MAX_COUNT:,} in size")
    if isinstance(value, str):
        if len(value) > 1000:
            raise ValueError(f"metric {name} is text longer than 1,000 characters")
        no_nul(value)
    elif value is not None and not isinstance(value, int | float):
        raise ValueError(f"metric {name} must be a number, text, true/false or null, not a list or object")


class HeldOutFigures(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    accuracy: float | None = Field(ge=0, le=1, description="Pairwise accuracy against these labels.")
    log_loss: float | None = Field(ge=0, description="Mean log loss against these labels.")


class LabelComparison(BaseModel):
    """Models trained on two labellings of the same comparisons, measured on the same held-out prompts.

    `assay worker --labels weighted` sends `weighted` (Dawid-Skene labels) and `majority`; each
    model is measured against its own labels."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    n_train: int = Field(ge=0, le=MAX_COUNT, description="Pairs both labellings decide, trained on.")
    n_validation: int = Field(ge=0, le=MAX_COUNT, description="Pairs both labellings decide, held out.")
    labels_agree: float | None = Field(ge=0, le=1, description="Share of held-out pairs the labellings agree on.")
    weighted: HeldOutFigures
    majority: HeldOutFigures


class RewardModelMetrics(BaseModel):
    """What a trainer measured; fields beyond these are kept as sent (short names, plain values)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    accuracy: float | None = Field(
        ge=0, le=1, description="Held-out pairwise accuracy; null when no pair was held out."
    )
    log_loss: float | None = Field(ge=0, description="Held-out mean log loss of the preference probability.")
    n_pairs: int = Field(ge=0, le=MAX_COUNT, description="Distinct comparisons the model was trained and validated on.")
    training_seconds: float = Field(ge=0)
    n_judgments: int | None = Field(default=None, ge=0, le=MAX_COUNT, description="Judgments the data held.")
    n_train: int | None = Field(default=None, ge=0, le=MAX_COUNT, description="Pairs trained on before the hold-out.")
    n_validation: int | None = Field(default=None, ge=0, le=MAX_COUNT, description="Pairs held out.")
    compare: LabelComparison | None = Field(
        default=None, description="Trained on weighted labels: the same model trained on majority labels, compared."
    )

    @model_validator(mode="after")
    def _plain_extras(self) -> "RewardModelMetrics":
        extras = self.model_extra or {}
        if len(extras) > MAX_EXTRA_METRICS:
            raise ValueError(f"at most {MAX_EXTRA_METRICS} metrics beyond the named ones")
        for name, value in extras.items():
            _extra_metric(name, value)
        return self


# Below this many held-out pairs an accuracy says little (one pair more moves it by over 2 points at 40).
MIN_HELD_OUT_PAIRS = 50


@dataclass(frozen=True, slots=True)
class StoredMetrics:
    """A stored metrics object as pages show it: a value of the wrong type reads as missing.

    Rows may predate the checks above, so pages never trust their shape."""

    accuracy: float | None
    log_loss: float | None
    training_seconds: float | None
    n_judgments: int | None
    n_train: int | None
    n_validation: int | None
    compare: "StoredComparison | None" = None

    @classmethod
    def read(cls, metrics: Any) -> "StoredMetrics":
        values = metrics if isinstance(metrics, dict) else {}
        return cls(
            accuracy=_finite(values.get("accuracy")),
            log_loss=_finite(values.get("log_loss")),
            training_seconds=_finite(values.get("training_seconds")),
            n_judgments=_count(values.get("n_judgments")),
            n_train=_count(values.get("n_train")),
            n_validation=_count(values.get("n_validation")),
            compare=StoredComparison.read(values.get("compare")),
        )

    @property
    def too_little_data(self) -> bool:
        """An accuracy measured on fewer than MIN_HELD_OUT_PAIRS held-out pairs: pages say "too little data
        to judge" instead of the number, and the chart leaves it out."""
        return self.accuracy is not None and self.n_validation is not None and self.n_validation < MIN_HELD_OUT_PAIRS


@dataclass(frozen=True, slots=True)
class StoredComparison:
    """A stored `compare` (LabelComparison) as pages show it; None unless both figures are there."""

    weighted: float
    majority: float
    n_validation: int | None
    labels_agree: float | None

    @classmethod
    def read(cls, value: Any) -> "StoredComparison | None":
        values = value if isinstance(value, dict) else {}
        weighted, majority = (
            _finite(figures.get("accuracy")) if isinstance(figures := values.get(name), dict) else None
            for name in ("weighted", "majority")
        )
        if weighted is None or majority is None:
            return None
        return cls(
            weighted=weighted,
            majority=majority,
            n_validation=_count(values.get("n_validation")),
            labels_agree=_finite(values.get("labels_agree")),
        )

    @property
    def too_little_data(self) -> bool:
        """Measured on fewer than MIN_HELD_OUT_PAIRS held-out pairs (StoredMetrics.too_little_data)."""
        return self.n_validation is not None and self.n_validation < MIN_HELD_OUT_PAIRS


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT else None


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
