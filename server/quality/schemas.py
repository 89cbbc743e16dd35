import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Query
from pydantic import Field

from server.schemas import Schema


class GoldBody(Schema):
    """A gold answer; indices are positions in the responses as imported (0 = the first). A check
    subtask takes `answer`, a rating subtask `value` (right within a tenth of its scale's width)."""

    preferred: int | None = Field(default=None, ge=0, le=999, description="The better response of a pair.")
    ranking: list[int] | None = Field(default=None, max_length=1000, description="Every index, best first.")
    tie: bool | None = Field(default=None, description="True: the responses are equally good.")
    answer: str | None = Field(default=None, max_length=16, description="A check subtask's known answer: yes or no.")
    value: float | None = Field(
        default=None, ge=-1e6, le=1e6, description="A rating subtask's known value, on its scale."
    )
    explanation: str | None = Field(default=None, max_length=2000, description="Feedback shown after answering.")


class ItemGoldRead(Schema):
    item_id: uuid.UUID
    gold: dict[str, object] | None


class Flag(Schema):
    kind: str = Field(description="position, speed, agreement or gold.")
    text: str = Field(description="The finding in plain words, with its numbers.")
    p: float = Field(
        description="The test's p-value before the correction over raters and tests (quality/raters.py corrected)."
    )


class TrendBlock(Schema):
    """A rater's figures over one block of consecutive judgments (epoch seconds from..to)."""

    from_: float = Field(alias="from")
    to: float
    judgments: int
    left_share: float | None
    choices: int = Field(description="Two-candidate choices (the base of left_share).")
    median_seconds: float | None
    fast_share: float | None
    agreement: float | None
    compared: int = Field(description="Units compared with their label left one out (the base of agreement).")
    gold_accuracy: float | None
    gold_scored: int
    tie_rate: float | None
    both_bad_rate: float | None
    revision_rate: float | None


class RaterReliability(Schema):
    """Figures from all of a rater's judgments (server/quality/raters.py)."""

    judgments: int = 0
    human: bool = Field(default=True, description="A human account (flags apply to human accounts only).")
    position_bias: float | None = Field(
        default=None, description="Share of two-candidate choices that went to the candidate shown first (left)."
    )
    position_p: float | None = Field(default=None, description="Exact binomial test of position_bias against 0.5.")
    median_seconds: float | None = Field(default=None, description="Median active time per judgment.")
    fast_share: float | None = Field(default=None, description="Share of judgments faster than fast_seconds.")
    agreement: float | None = Field(
        default=None,
        description=(
            "Agreement with the label the other raters' answers give (Dawid-Skene, weighted by reliability) "
            "or the gold answer."
        ),
    )
    tie_rate: float | None = None
    both_bad_rate: float | None = None
    skip_rate: float | None = None
    revision_rate: float | None = None
    flags: list[Flag] = Field(default_factory=list, description="Empty: nothing to look at (human accounts only).")
    trend: list[TrendBlock] = Field(default_factory=list)


class BatchAgreement(Schema):
    batch_id: uuid.UUID
    name: str
    units: int
    values: int
    pairwise: float | None
    pairwise_ci: tuple[float, float] | None
    alpha: float | None
    ci: tuple[float, float] | None


class SubtaskAgreement(Schema):
    """Agreement on one kind of task-tree subtask: a unit is a subtask item."""

    level: str = Field(description="nominal (a check: yes or no; unsure is missing) or interval (a rating).")
    tolerance: float | None = Field(
        description="A rating: two answers agree pairwise within this share of the scale's width (0.1)."
    )
    units: int = Field(description="Subtasks with at least two answers.")
    values: int
    pairwise: float | None = Field(description="Share of agreeing pairs of answers on the same subtask.")
    pairwise_ci: tuple[float, float] | None
    alpha: float | None = Field(description="Krippendorff's alpha (a rating: answers as a share of the scale).")
    ci: tuple[float, float] | None
    batches: list[BatchAgreement]


class KindAgreement(Schema):
    """A rater's answers on one kind of subtask against the other human raters' answers."""

    agreement: float = Field(description="Share of pairs (their answer, another's) that agree.")
    compared: int = Field(description="Pairs compared.")


class Agreement(Schema):
    level: str = Field(description="nominal (binary scale: A, B, tie) or ordinal (signed strength).")
    units: int = Field(description="Units (item, candidate pair) with at least two values.")
    values: int
    pairwise: float | None = Field(description="Share of agreeing pairs of judgments on the same unit.")
    pairwise_ci: tuple[float, float] | None = Field(description="95% bootstrap interval (units resampled).")
    alpha: float | None = Field(description="Krippendorff's alpha.")
    ci: tuple[float, float] | None = Field(description="95% bootstrap interval of alpha (units resampled).")
    label_agreement: float | None = Field(
        description="Share of units where a judgment gives the label the other raters' answers give (left one out)."
    )
    median_seconds: float | None
    fast_seconds: float
    data_version: str = Field(description="The data version the figures were computed for.")
    stale: bool = Field(description="Newer judgments exist: the figures are recomputed within 5 minutes.")
    computed_at: datetime
    batches: list[BatchAgreement]
    subtasks: dict[str, SubtaskAgreement] = Field(
        default_factory=dict, description="Task trees: agreement on check and rating subtasks, per kind."
    )


class RaterQuality(RaterReliability):
    user_id: uuid.UUID
    email: str
    suspended: bool
    group: str | None = Field(default=None, description="The member's rater group (such as expert), or null.")
    subtasks: dict[str, KindAgreement] = Field(
        default_factory=dict, description="Agreement on check and rating subtasks with the other raters, per kind."
    )
    gold_judged: int = Field(description="Gold judgments stored.")
    gold_scored: int = Field(description="Gold judgments that could be scored (both-bad is missing).")
    gold_accuracy: float | None = Field(description="Mean score on gold; a ranking scores its share of pairs.")
    gold_ci: tuple[float, float] = Field(description="95% Wilson interval of gold_accuracy.")
    recent_gold_accuracy: float | None = Field(description="Over the last 20 scored gold judgments.")
    recent_gold_ci: tuple[float, float]
    qualified: bool = Field(description="Passed (or was admitted without) the qualification round, or none is set.")
    suspended_reason: str | None = Field(description="Why the member is suspended, in words (null: not suspended).")


class ProjectQuality(Schema):
    agreement: Agreement | None = None
    raters: list[RaterQuality]


# A figure cached per data version (server/quality/cache.py), asked for over the API.
Fresh = Annotated[
    bool,
    Query(
        description="Compute the figures for the data as it is now, however long it takes; by default a slow "
        "figure of an older data version is answered at once while a fresh one is computed (`current` says which)."
    ),
]
