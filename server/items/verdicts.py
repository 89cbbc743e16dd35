"""A judgment's verdict in words, by the candidates' places in the uploaded file (pure).

Raters saw the candidates shuffled and labelled A, B, C…; the admin pages name candidates by
their place in the file (#1, #2…) and say which letter each had for that rater.
"""

from dataclasses import dataclass
from typing import Any

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class Shown:
    """A verdict by file positions (1-based), and the positions in the order the rater saw them."""

    order: list[int]
    choice: int | None = None
    ranking: list[int] | None = None
    tie: bool = False
    both_bad: bool = False
    answer: Any = None  # a subtask's (check, rating, answer)


@dataclass(frozen=True, slots=True)
class Described:
    verdict: str
    shown: str


def describe(v: Shown) -> Described:
    """ "#2 preferred (shown as A)", "Tie", "Both bad", "#2 > #1 > #3 (shown B > A > C)"."""
    letter = {pos: LETTERS[i] for i, pos in enumerate(v.order[: len(LETTERS)])}
    shown = ", ".join(f"{letter[p]} = #{p}" for p in v.order if p in letter)
    if v.answer is not None:
        return Described(verdict=f"Answered: {v.answer}", shown=shown)
    if v.ranking:
        words = " > ".join(f"#{p}" for p in v.ranking)
        verdict = f"{words} (as shown: {' > '.join(letter.get(p, '?') for p in v.ranking)})"
    elif v.choice is not None:
        verdict = f"#{v.choice} preferred (shown as {letter.get(v.choice, '?')})"
    elif v.tie:
        verdict = "Tie"
    else:
        verdict = "Both bad"
    if v.both_bad and (v.choice is not None or v.ranking):
        verdict += "; both bad"
    return Described(verdict=verdict, shown=shown)
