"""The reward model: Bradley-Terry on text features, trained from exported preference rows.

Pure functions (no I/O besides the artefact file). A Bradley-Terry model gives each response a
reward r(x) = w.f(x) and says P(a preferred over b) = sigmoid(r(a) - r(b)) = sigmoid(w.(f(a) - f(b))):
logistic regression without an intercept on feature differences. Each pair is also added
mirrored (-d, label flipped), so the model cannot learn a side bias. f is hashed character
n-grams of the reply (the prompt's features cancel in the difference), or a model2vec embedding
when that package and a model are at hand.
"""

import hashlib
import io
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression

Prompt = str | list[dict[str, str]]
Reply = str | list[dict[str, str]]
Matrix = Any  # a scipy sparse matrix or a dense numpy array, rows = texts

VALIDATION_PERCENT = 20  # share of opening prompts held out for the reported metrics
MIN_TRAIN_PAIRS = 10
REGULARISATION_C = 0.3  # inverse L2 strength; chosen by grouped 5-fold CV on the HH-RLHF sample (bench/)


def render(value: Reply) -> str:
    """A reply (or prompt) as one text: plain text as is, messages as 'role: content' lines.

    A lone assistant message is its content, so a reply reads the same whether the export
    carried it as text or, in a conversational row, as one message.
    """
    if isinstance(value, str):
        return value
    if len(value) == 1 and value[0].get("role") == "assistant":
        return str(value[0].get("content", ""))
    return "\n".join(f"{m.get('role', '')}: {m.get('content', '')}" for m in value)


def opening_prompt(prompt: Prompt) -> str:
    """The first user turn: the unit the validation split keeps on one side."""
    if isinstance(prompt, str):
        return prompt.strip()
    for message in prompt:
        if message.get("role") in ("user", "human"):
            return str(message.get("content", "")).strip()
    return render(prompt).strip()


def is_validation(prompt: Prompt, percent: int = VALIDATION_PERCENT) -> bool:
    """Whether a prompt belongs to the held-out split: a stable hash, so it never changes side."""
    digest = hashlib.sha256(opening_prompt(prompt).encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < percent


@dataclass(frozen=True)
class Pair:
    """One comparison with its aggregated verdict: `a` won `wins_a` of `wins_a + wins_b` judgments."""

    prompt: Prompt
    a: str
    b: str
    wins_a: int
    wins_b: int

    @property
    def label(self) -> int | None:
        """1 if the majority preferred a, 0 if b, None for a split vote."""
        if self.wins_a == self.wins_b:
            return None
        return 1 if self.wins_a > self.wins_b else 0

    @property
    def key(self) -> str:
        """The comparison, whatever its votes: the same prompt and replies in any labelling."""
        return hashlib.sha256(json.dumps([self.prompt, self.a, self.b], sort_keys=True).encode()).hexdigest()


def aggregate(rows: Iterable[dict[str, Any]]) -> tuple[list[Pair], int]:
    """Per-judgment TRL rows → one pair per (prompt, two replies) with its votes; also the row count."""
    votes: dict[str, list[Any]] = {}
    count = 0
    for row in rows:
        count += 1
        chosen, rejected = render(row["chosen"]), render(row["rejected"])
        if chosen == rejected:
            continue
        a, b = sorted((chosen, rejected))
        key = hashlib.sha256(json.dumps([row["prompt"], a, b], sort_keys=True).encode()).hexdigest()
        entry = votes.setdefault(key, [row["prompt"], a, b, 0, 0])
        entry[3 if chosen == a else 4] += 1
    return [Pair(prompt=p, a=a, b=b, wins_a=wa, wins_b=wb) for p, a, b, wa, wb in votes.values()], count


class Featurizer(Protocol):
    name: str

    def transform(self, texts: Sequence[str]) -> Matrix: ...


class HashedNgrams:
    """Character n-grams (2 to 4, within word boundaries) hashed into 2^18 binary columns, rows L2-normalised."""

    def __init__(self, n_features: int = 2**18, ngram_range: tuple[int, int] = (2, 4)) -> None:
        self.name = f"hashed-char-ngrams-{ngram_range[0]}-{ngram_range[1]}-2^{int(math.log2(n_features))}"
        self.n_features = n_features
        self._vectorizer = HashingVectorizer(
            n_features=n_features,
            analyzer="char_wb",
            ngram_range=ngram_range,
            alternate_sign=False,
            binary=True,
            norm="l2",
        )

    def transform(self, texts: Sequence[str]) -> Matrix:
        return self._vectorizer.transform(texts)


class Model2VecEmbeddings:
    """A model2vec static embedding model loaded from a local directory (no download), plus hashed n-grams.

    Optional: only when the `model2vec` package is installed and a model directory is given.
    """

    def __init__(self, path: Path) -> None:
        try:
            from model2vec import StaticModel
        except ImportError:
            raise RuntimeError(
                "Embeddings need the optional model2vec package: pip install model2vec (or run without --embeddings)."
            ) from None
        if not path.is_dir():
            raise RuntimeError(f"No model2vec model directory at {path}.")
        self._model = StaticModel.from_pretrained(str(path))
        self._ngrams = HashedNgrams()
        self.name = f"model2vec:{path.name}+{self._ngrams.name}"

    def transform(self, texts: Sequence[str]) -> Matrix:
        dense = np.asarray(self._model.encode(list(texts)), dtype=np.float64)
        norms = np.linalg.norm(dense, axis=1, keepdims=True)
        dense = dense / np.where(norms == 0, 1.0, norms)
        return sp.hstack([sp.csr_matrix(dense), self._ngrams.transform(texts)]).tocsr()


@dataclass
class Trained:
    weights: NDArray[np.float64]
    features: str
    metrics: dict[str, Any]


def _sigmoid(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(x, -40, 40))), dtype=np.float64)


def _differences(featurizer: Featurizer, pairs: Sequence[Pair]) -> tuple[Matrix, NDArray[np.float64]]:
    """f(a) - f(b) for each pair, and 1.0 where the majority preferred a."""
    diff = featurizer.transform([p.a for p in pairs]) - featurizer.transform([p.b for p in pairs])
    return diff, np.array([float(p.label == 1) for p in pairs])


def _evaluate(weights: NDArray[np.float64], diff: Matrix, y: NDArray[np.float64]) -> tuple[float, float]:
    """Pairwise accuracy and mean log loss."""
    p = _sigmoid(np.asarray(diff @ weights, dtype=np.float64).ravel())
    accuracy = float(np.mean((p > 0.5) == (y == 1.0)))
    eps = 1e-12
    log_loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    return accuracy, log_loss


def fit(featurizer: Featurizer, pairs: Sequence[Pair]) -> tuple[NDArray[np.float64], float]:
    """Bradley-Terry weights for these pairs, and their accuracy on the pairs themselves."""
    diff, y = _differences(featurizer, pairs)
    x = sp.vstack([diff, -diff]) if sp.issparse(diff) else np.vstack([diff, -diff])
    model = LogisticRegression(C=REGULARISATION_C, fit_intercept=False, max_iter=1000)
    model.fit(x, np.concatenate([y, 1.0 - y]))
    weights = np.asarray(model.coef_, dtype=np.float64).ravel()
    return weights, _evaluate(weights, diff, y)[0]


def train(pairs: Sequence[Pair], featurizer: Featurizer, *, n_judgments: int) -> Trained:
    """Measure on held-out prompts, then refit on every pair: the metrics estimate the model that is kept.

    The model fitted without the held-out prompts gives `accuracy` and `log_loss`; the weights
    kept (and used to score open items) are fitted on all pairs, so no judgment is wasted, which
    matters most for active learning, where the held-out share would otherwise never teach the
    model. Split votes are left out.
    """
    started = time.perf_counter()
    decided = [p for p in pairs if p.label is not None]
    held_out = [p for p in decided if is_validation(p.prompt)]
    training = [p for p in decided if not is_validation(p.prompt)]
    if len(training) < MIN_TRAIN_PAIRS:
        raise NotEnoughData(f"{len(training)} training pairs; at least {MIN_TRAIN_PAIRS} are needed to train.")
    weights, train_accuracy = fit(featurizer, training)
    accuracy = log_loss = None
    if held_out:
        accuracy, log_loss = _evaluate(weights, *_differences(featurizer, held_out))
        weights, _ = fit(featurizer, decided)
    metrics = {
        "accuracy": accuracy,
        "log_loss": log_loss,
        "train_accuracy": train_accuracy,
        "n_pairs": len(decided),
        "n_train": len(training),
        "n_validation": len(held_out),
        "n_split_votes": len(pairs) - len(decided),
        "n_judgments": n_judgments,
        "validation": f"{VALIDATION_PERCENT}% of opening prompts held out; the kept model is refitted on all pairs",
        "features": featurizer.name,
        "training_seconds": round(time.perf_counter() - started, 3),
    }
    return Trained(weights=weights, features=featurizer.name, metrics=metrics)


class NotEnoughData(Exception):
    pass


def compare_labels(featurizer: Featurizer, labellings: Mapping[str, Sequence[Pair]]) -> dict[str, Any]:
    """One model per labelling of the same comparisons, each measured on the same held-out prompts.

    Only the comparisons that every labelling decides count (a split majority or a tie in one of
    them leaves the comparison out of all), so the models differ by their labels alone: the same
    pairs trained on, the same held out (`is_validation`), each model measured against its own
    labels. `labels_agree` is the share of the held-out pairs on which the labellings agree, which
    bounds how far the two references differ.
    """
    decided = [{p.key: p for p in pairs if p.label is not None} for pairs in labellings.values()]
    common = sorted(set.intersection(*(set(d) for d in decided)))
    held_out = [k for k in common if is_validation(decided[0][k].prompt)]
    training = [k for k in common if not is_validation(decided[0][k].prompt)]
    if len(training) < MIN_TRAIN_PAIRS:
        raise NotEnoughData(f"{len(training)} training pairs in common; at least {MIN_TRAIN_PAIRS} are needed.")
    agree = sum(len({d[k].label for d in decided}) == 1 for k in held_out)
    compared: dict[str, Any] = {
        "n_train": len(training),
        "n_validation": len(held_out),
        "labels_agree": round(agree / len(held_out), 6) if held_out else None,
    }
    for name, pairs in zip(labellings, decided, strict=True):
        weights, _ = fit(featurizer, [pairs[k] for k in training])
        accuracy = log_loss = None
        if held_out:
            accuracy, log_loss = _evaluate(weights, *_differences(featurizer, [pairs[k] for k in held_out]))
        compared[name] = {"accuracy": accuracy, "log_loss": log_loss}
    return compared


def rewards(weights: NDArray[np.float64], featurizer: Featurizer, texts: Sequence[str]) -> NDArray[np.float64]:
    """r(x) = w.f(x) for each text."""
    return np.asarray(featurizer.transform(texts) @ weights, dtype=np.float64).ravel()


def score_items(
    weights: NDArray[np.float64], featurizer: Featurizer, items: Sequence[Sequence[str]]
) -> list[tuple[float, float]]:
    """For each item's candidate texts: (P(first preferred over second), uncertainty in [0, 1]).

    The uncertainty of a pair is 4 p (1 - p), which is 1 at a coin flip and 0 when the model is
    sure, times ||f(a) - f(b)|| / sqrt(||f(a)||^2 + ||f(b)||^2), which is 0 for replies the model
    cannot tell apart and 1 for replies with no feature in common: the expected size of the
    gradient a judgment of the pair would give (expected gradient length), scaled to [0, 1].
    Near-identical replies therefore do not jump the queue just because their rewards are close.
    An item's uncertainty is that of its most uncertain pair. All texts are featurised at once.
    """
    if not items:
        return []  # (a vectorizer refuses an empty batch)
    features = featurizer.transform([t for candidates in items for t in candidates])
    return score_features(weights, features, [len(candidates) for candidates in items])


def score_features(weights: NDArray[np.float64], features: Matrix, sizes: Sequence[int]) -> list[tuple[float, float]]:
    """`score_items` on already featurised candidates: rows in item order, `sizes` candidates per item."""
    if not sizes:
        return []
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    pairs = [
        (s + a, s + b, k)
        for k, (s, n) in enumerate(zip(starts, sizes, strict=True))
        for a in range(n)
        for b in range(a + 1, n)
    ]
    first, second, owner = (np.array(column, dtype=int) for column in zip(*pairs, strict=True))
    r = np.asarray(features @ weights, dtype=np.float64).ravel()
    squares = np.asarray(
        features.multiply(features).sum(axis=1) if sp.issparse(features) else (features**2).sum(axis=1)
    ).ravel()
    diff = features[first] - features[second]
    distance = np.sqrt(
        np.asarray(diff.multiply(diff).sum(axis=1) if sp.issparse(diff) else (diff**2).sum(axis=1)).ravel()
    )
    spread = np.sqrt(squares[first] + squares[second])
    p = _sigmoid(r[first] - r[second])
    uncertainty = np.minimum(
        1.0, 4 * p * (1 - p) * np.divide(distance, spread, out=np.zeros_like(spread), where=spread > 0)
    )
    best = np.zeros(len(sizes))
    np.maximum.at(best, owner, uncertainty)
    p_first = _sigmoid(r[starts] - r[starts + 1])
    return [(float(pf), float(u)) for pf, u in zip(p_first, best, strict=True)]


def judge_items(
    weights: NDArray[np.float64], featurizer: Featurizer, items: Sequence[Sequence[str]]
) -> list[tuple[int, float]]:
    """For each item's candidate texts: (index of the candidate the model prefers, its probability).

    The probability is the softmax of the candidates' rewards (Bradley-Terry over all of them); for
    two candidates it is P(preferred over the other), the same figure `score_items` gives. This is
    what the worker sends as a model judge's confidence (`assay worker --judge`)."""
    if not items:
        return []
    features = featurizer.transform([t for candidates in items for t in candidates])
    rewards = np.asarray(features @ weights, dtype=np.float64).ravel()
    out, start = [], 0
    for candidates in items:
        r = rewards[start : start + len(candidates)]
        start += len(candidates)
        e = np.exp(r - r.max())
        best = int(np.argmax(r))
        out.append((best, float(e[best] / e.sum())))
    return out


def save(trained: Trained, directory: Path) -> tuple[Path, str]:
    """Write the weights and their description as one .npz named by its sha256; returns (path, sha256)."""
    buffer = io.BytesIO()
    meta = json.dumps({"features": trained.features, "metrics": trained.metrics})
    np.savez_compressed(buffer, weights=trained.weights.astype(np.float32), meta=np.array(meta))
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"reward-model-{digest[:16]}.npz"
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path, digest


def load(path: Path) -> Trained:
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(str(archive["meta"]))
        return Trained(
            weights=archive["weights"].astype(np.float64), features=meta["features"], metrics=meta["metrics"]
        )
