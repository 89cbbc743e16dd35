"""Gold answers: their one shape, and how a verdict scores against one.

A gold answer names candidates by their index in the responses as imported (upload order):
`{"preferred": i}` for a pair, `{"ranking": [i, j, ...]}` (best first, every index once),
`{"tie": true}`; each may carry an `"explanation"` for feedback to the rater. A task tree's check
subtask takes `{"answer": "yes"|"no"}` (unsure is no known answer) and a rating subtask
`{"value": x}` on its scale; a comparison subtask and a free-text answer subtask take no gold.

Scoring (`score`): a pair is right when the preferred candidate matches (a strength counts only
by its direction); a ranking scores the share of candidate pairs ordered as in the gold ranking
(a plain choice against a ranking is right when it is the gold ranking's best); tie gold is right
only for a tie; a both-bad answer is missing (None), as is a tie against a ranking. A check is
right when its answer is the gold answer; "unsure" is missing (like both-bad). A rating is right
when it lies within a tenth of the scale's width of the gold value (RATING_TOLERANCE, the rule a
subtask's result uses for agreement: server/items/subtasks.py), ends included.
"""

import math
from itertools import combinations
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_EXPLANATION = 2_000
RATING_TOLERANCE = 0.1  # a rating gold is right within this share of the scale's width
CHECK_ANSWERS = ("yes", "no")
_EPSILON = 1e-9  # float noise at the tolerance's edge


class GoldError(ValueError):
    """A gold value that does not fit the shape; the message is a sentence for the uploader."""


class GoldAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    preferred: int | None = Field(default=None, ge=0)
    ranking: list[int] | None = Field(default=None, max_length=1000)
    tie: bool | None = None
    answer: str | None = Field(default=None, max_length=16)  # a check subtask: yes or no
    value: float | None = None  # a rating subtask: a number on its scale
    explanation: str | None = Field(default=None, max_length=MAX_EXPLANATION)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def parse_gold(
    value: Any, candidates: int, *, kind: str = "comparison", scale: tuple[float, float] | None = None
) -> GoldAnswer:
    """The gold answer in `value` for an item of `candidates` responses (a subtask: of `kind`, a
    rating on `scale`), or GoldError saying why not."""
    if kind == "answer":
        raise GoldError("gold belongs to comparisons, checks and ratings; a free-text answer subtask has no gold.")
    if not isinstance(value, dict):
        if kind == "comparison":
            raise GoldError('gold must be an object such as {"preferred": 0}, {"ranking": [1, 0]} or {"tie": true}.')
        example = '{"answer": "yes"}' if kind == "check" else '{"value": 3}'
        raise GoldError(f"gold must be an object such as {example} for a {kind}.")
    try:
        answer = GoldAnswer.model_validate(value, strict=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "gold"
        raise GoldError(f"gold.{where}: {first['msg']}.") from None
    if kind != "comparison":
        return _subtask_gold(answer, kind, scale)
    for key in ("answer", "value"):
        if getattr(answer, key) is not None:
            owner = "a check subtask" if key == "answer" else "a rating subtask"
            raise GoldError(f"gold.{key} belongs to {owner}; a comparison's gold is preferred, ranking or tie.")
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


def _subtask_gold(answer: GoldAnswer, kind: str, scale: tuple[float, float] | None) -> GoldAnswer:
    """A check's or a rating's gold: `answer` (yes or no) or `value` (on the scale), nothing else."""
    key = "answer" if kind == "check" else "value"
    keys = ("preferred", "ranking", "tie", "answer", "value")
    other = [k for k in keys if k != key and getattr(answer, k) is not None]
    if other:
        what = "answer (yes or no)" if kind == "check" else "value (a number on its scale)"
        raise GoldError(f"gold.{other[0]} does not fit a {kind}: its gold is {what}.")
    if kind == "check":
        if answer.answer is None:
            raise GoldError('gold.answer is missing: a check\'s gold is {"answer": "yes"} or {"answer": "no"}.')
        if answer.answer not in CHECK_ANSWERS:
            if answer.answer == "unsure":
                raise GoldError('gold.answer must be yes or no; "unsure" is not a known answer.')
            raise GoldError(f"gold.answer must be yes or no, got {answer.answer!r}.")
        return answer
    assert scale is not None, "a rating has a scale"
    if answer.value is None:
        raise GoldError('gold.value is missing: a rating\'s gold is {"value": x}, a number on its scale.')
    if not math.isfinite(answer.value) or not scale[0] <= answer.value <= scale[1]:
        raise GoldError(
            f"gold.value {_number(answer.value)} is outside the scale: a number from {_number(scale[0])} "
            f"to {_number(scale[1])}."
        )
    return answer


def score(
    gold: GoldAnswer,
    *,
    choice: int | None,
    ranking: list[int] | None,
    tie: bool,
    both_bad: bool,
    answer: Any = None,
    scale: tuple[float | None, float | None] = (None, None),
) -> float | None:
    """How right a verdict is, from 0 to 1; None when it cannot be scored (both bad, unsure, say).

    Candidates are given as upload-order indices, like the gold answer; `answer` is a subtask's
    answer, `scale` a rating's.
    """
    if gold.answer is not None:
        return float(answer == gold.answer) if answer in CHECK_ANSWERS else None
    if gold.value is not None:
        low, high = scale
        if isinstance(answer, bool) or not isinstance(answer, int | float) or low is None or high is None:
            return None
        return float(abs(answer - gold.value) <= RATING_TOLERANCE * (high - low) + _EPSILON)
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
