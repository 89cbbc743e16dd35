import uuid

from pydantic import Field

from server.schemas import Schema


class GoldBody(Schema):
    """A gold answer; indices are positions in the responses as imported (0 = the first)."""

    preferred: int | None = Field(default=None, ge=0, le=999, description="The better response of a pair.")
    ranking: list[int] | None = Field(default=None, max_length=1000, description="Every index, best first.")
    tie: bool | None = Field(default=None, description="True: the responses are equally good.")
    explanation: str | None = Field(default=None, max_length=2000, description="Feedback shown after answering.")


class ItemGoldRead(Schema):
    item_id: uuid.UUID
    gold: dict[str, object] | None


class RaterQuality(Schema):
    user_id: uuid.UUID
    email: str
    suspended: bool
    gold_judged: int = Field(description="Gold judgments stored.")
    gold_scored: int = Field(description="Gold judgments that could be scored (both-bad is missing).")
    gold_accuracy: float | None = Field(description="Mean score on gold; a ranking scores its share of pairs.")
    gold_ci: tuple[float, float] = Field(description="95% Wilson interval of gold_accuracy.")
    recent_gold_accuracy: float | None = Field(description="Over the last 20 scored gold judgments.")
    recent_gold_ci: tuple[float, float]
    qualified: bool = Field(description="Passed (or was admitted without) the qualification round, or none is set.")
    suspended_reason: str | None = Field(description="Why the member is suspended, in words (null: not suspended).")


class ProjectQuality(Schema):
    raters: list[RaterQuality]
