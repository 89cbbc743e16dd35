"""Gold answers: their one shape, and how a verdict scores against one.

A gold answer names candidates by their index in the responses as imported (upload order):
`{"preferred": i}` for a pair, `{"ranking": [i, j, ...]}` (best first, every index once),
`{"tie": true}`; each may carry an `"explanation"` for feedback to the rater.

Scoring (`score`): a pair is right when the preferred candidate matches (a strength counts only
by its direction); a ranking scores the share of candidate pairs ordered as in the gold ranking
(a plain choice against a ranking is right when it is the gold ranking's best); tie gold is right
only for a tie; a both-bad answer is missing (None), as is a tie against a ranking.
"""

import math
from itertools import combinations
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_EXPLANATION = 2_000


class GoldError(ValueError):
    """A gold value that does not fit the shape; the message is a sentence for the uploader."""


class GoldAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    preferred: int | None = Field(default=None, ge=0)
    ranking: list[int] | None = Field(default=None, max_length=1000)
    tie: bool | None = None
    explanation: str | None = Field(default=None, max_length=MAX_EXPLANATION)


def parse_gold(value: Any, candidates: int) -> GoldAnswer:
    """The gold answer in `value` for an item of `candidates` responses, or GoldError saying why not."""
    if not isinstance(value, dict):
        raise GoldError('gold must be an object such as {"preferred": 0}, {"ranking": [1, 0]} or {"tie": true}.')
    try:
        answer = GoldAnswer.model_validate(value, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "gold"
        raise GoldError(f"gold.{where}: {first['msg']}.") from None
    given = [k for k in ("preferred", "ranking", "tie") if getattr(answer, k) is not None]
    if len(given) != 1:
        raise GoldError(f"gold needs exactly one of preferred, ranking or tie; found {len(given)}.")
    if answer.preferred is not None and answer.preferred >= candidates:
        raise GoldError(
            f"gold.preferred is {answer.preferred}, but this item has {candidates} responses (indices 0 to "
            f"{candidates - 1})."
        )
    if answer.ranking is not None and sorted(answer.ranking) != list(range(candidates)):
        raise GoldError(f"gold.ranking must list every response index 0 to {candidates - 1} once, best first.")
    if answer.tie is False:
        raise GoldError("gold.tie can only be true; give preferred or ranking for a gold winner.")
    return answer


def score(
    gold: GoldAnswer,
    *,
    choice: int | None,
    ranking: list[int] | None,
    tie: bool,
    both_bad: bool,
) -> float | None:
    """How right a verdict is, from 0 to 1; None when it cannot be scored (both bad, say).

    Candidates are given as upload-order indices, like the gold answer.
    """
    if both_bad:
        return None
    if gold.tie:
        return 1.0 if tie else 0.0
    if tie:
        return 0.0 if gold.preferred is not None else None
    if gold.preferred is not None:
        picked = ranking[0] if ranking else choice
        return None if picked is None else float(picked == gold.preferred)
    assert gold.ranking is not None
    if ranking:
        place = {candidate: i for i, candidate in enumerate(ranking)}
        pairs = list(combinations(gold.ranking, 2))  # (better, worse) in gold order
        return sum(place[a] < place[b] for a, b in pairs) / len(pairs)
    return None if choice is None else float(choice == gold.ranking[0])


def wilson(successes: float, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The Wilson score interval for a proportion (95% by default); (0, 1) with no data."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)
