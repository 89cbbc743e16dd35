"""Item labels for `granularity=item` exports from a fitted rater model, and from gold answers (pure).

`aggregation=weighted`: each pair of an item's candidates (a, b in upload order) gets the
Dawid-Skene posterior over {a better, b better, tie} from its raters' judgments and the project's
fitted rater confusion (server/quality/aggregate.py, fitted once per data version by
server/quality/weighted.py). The pair's label is the most probable class; `confidence` is that
probability. A pair labelled tie yields no preference row (like a tie verdict); the raw format
lists every pair with its posterior.

A gold item (exported with `gold=include`) is labelled by its gold answer, whatever the
aggregation: confidence 1.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import mean
from typing import Any

from server.quality import aggregate


@dataclass(frozen=True, slots=True)
class LabelledPair:
    a: str  # candidate ids, a before b in upload order
    b: str
    label: int  # aggregate.A, B or TIE
    confidence: float
    posterior: tuple[float, float, float]
    votes: int  # judgments that spoke to this pair
    margin: float | None  # mean (strength - 1) of the judgments that agree with the label

    @property
    def preference(self) -> tuple[str, str] | None:
        """(chosen, rejected), or None for a tie."""
        if self.label == aggregate.TIE:
            return None
        return (self.a, self.b) if self.label == aggregate.A else (self.b, self.a)

    def as_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "label": aggregate.CLASSES[self.label],
            "confidence": round(self.confidence, 6),
            "posterior": [round(p, 6) for p in self.posterior],
            "votes": self.votes,
        }


def _positions(candidates: Sequence[Mapping[str, Any]]) -> tuple[list[str], dict[str, int]]:
    ids = [str(c["id"]) for c in candidates]
    return ids, {c: i for i, c in enumerate(ids)}


def _verdict_pairs(judgment: Mapping[str, Any], n: int, index: Mapping[str, int]) -> list[tuple[tuple[int, int], int]]:
    choice = judgment.get("choice_id")
    ranking = judgment.get("ranking")
    return aggregate.pair_labels(
        n,
        choice=None if choice is None else index[str(choice)],
        ranking=[index[str(c)] for c in ranking] if ranking else None,
        tie=bool(judgment.get("tie")),
        both_bad=bool(judgment.get("both_bad")),
    )


def weighted_pairs(
    candidates: Sequence[Mapping[str, Any]],
    judgments: Sequence[Mapping[str, Any]],
    fit: aggregate.Fit,
    gold: Mapping[str, Any] | None = None,
) -> list[LabelledPair]:
    """Every pair of the item that a judgment (or the gold answer) speaks to, labelled."""
    ids, index = _positions(candidates)
    n = len(ids)
    labels: dict[tuple[int, int], list[tuple[str, int, float | None]]] = {}
    for judgment in judgments:
        strength = judgment.get("strength")
        margin = None if strength is None else float(strength - 1)
        for pair, label in _verdict_pairs(judgment, n, index):
            labels.setdefault(pair, []).append((str(judgment.get("rater_id")), label, margin))
    fixed = aggregate.gold_labels(n, gold) if gold else {}
    out = []
    for a, b in sorted(set(labels) | set(fixed)):
        votes = labels.get((a, b), [])
        p = aggregate.posterior(fit, [(r, lab) for r, lab, _ in votes], gold=fixed.get((a, b)))
        best, confidence = aggregate.label(p)
        margins = [m for _, lab, m in votes if lab == best and m is not None]
        out.append(
            LabelledPair(
                a=ids[a],
                b=ids[b],
                label=best,
                confidence=confidence,
                posterior=(float(p[0]), float(p[1]), float(p[2])),
                votes=len(votes),
                margin=mean(margins) if margins else None,
            )
        )
    return out


def gold_pairs(candidates: Sequence[Mapping[str, Any]], gold: Mapping[str, Any]) -> list[LabelledPair]:
    """The pairs a gold answer orders (or ties), each with confidence 1."""
    ids, _ = _positions(candidates)
    return [
        LabelledPair(
            a=ids[a],
            b=ids[b],
            label=cls,
            confidence=1.0,
            posterior=(float(cls == 0), float(cls == 1), float(cls == 2)),
            votes=0,
            margin=None,
        )
        for (a, b), cls in sorted(aggregate.gold_labels(len(ids), gold).items())
    ]
