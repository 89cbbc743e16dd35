from datetime import datetime

from pydantic import Field

from server.schemas import Schema


class ModelRating(Schema):
    model: str
    rating: float = Field(description="Bradley-Terry rating on the Elo scale; the listed models average 1000.")
    ci_low: float = Field(description="Lower end of the 95% bootstrap interval of the rating.")
    ci_high: float = Field(description="Upper end of the 95% bootstrap interval of the rating.")
    battles: int = Field(description="Comparisons with another model (a ranking gives one per pair).")
    win_rate: float = Field(description="Share of those battles won, ties counting half.")


class WinRateMatrix(Schema):
    """Head to head, in the leaderboard's order (best first)."""

    models: list[str]
    win_rate: list[list[float | None]] = Field(
        description="win_rate[i][j]: the share of battles models[i] won against models[j] (ties half); "
        "null where they never met."
    )
    battles: list[list[int]] = Field(description="battles[i][j]: battles between models[i] and models[j].")
    total_battles: int
    bootstrap: int = Field(description="Bootstrap resamples behind the intervals.")
    pseudo_wins: float = Field(description="Virtual wins of every model over every other (the regularisation).")
    empty_reason: str | None = Field(description="Why there is no leaderboard, when there is none.")
    data_version: str = Field(description="The data version the figures were computed at.")
    current: bool = Field(
        description="False: the figures are of an older data version; a fresh computation is under way."
    )
    computed_at: datetime = Field(description="When the figures were computed.")
