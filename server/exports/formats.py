"""Rows for trainers (pure: no database).

Every export first turns judgments into `Pair`s (a prompt, a preferred and a rejected
candidate, an optional margin), then a format renders each pair in the shape its consumer
reads. What each format can hold:

- `trl`: TRL's explicit-prompt preference rows `prompt`/`chosen`/`rejected`. Standard
  (strings) when the whole export is text, conversational (lists of messages) when any
  prompt or candidate in the project is a chat, so one file never mixes the two shapes.
  Text rows carry the separator TRL will not add: TRL concatenates `prompt + chosen`, so the
  prompt gets "\\n\\n" unless it ends in whitespace or both completions start with it.
  With `margin`, every row has a float `margin` (TRL's RewardTrainer reads it only when the
  first row has it): strength - 1, so "slightly better" is 0.
- `trl-unpaired`: KTO-style `prompt`/`completion`/`label`: the preferred side `true`, the
  rejected side `false`; a both-bad verdict labels every candidate `false`.
- `openai`: preference fine-tuning rows `input.messages`, `preferred_output`,
  `non_preferred_output` (assistant messages).
- `hh`: HH-RLHF `chosen`/`rejected` transcripts with "\\n\\nHuman:"/"\\n\\nAssistant:" turns.
- `raw`: every field of every judgment (or, per item, every vote), ties and flags included.
- `critiques`: one row per critique in a judgment: each critique the rater was shown and rated
  (`verdict` valid/invalid/unsure, `helpful`), each critique the rater wrote (`kind: written`,
  no rating), and each flaw the rater marked (`kind: flaw`: `critique` holds the rater's note,
  `critique_id` the flaw's id, the author is the rater): item, prompt, candidate and its response,
  critique, author, span with the quoted text, severity, rater. Training data for critique models.
  Per judgment only (no `granularity=item`). `raw` carries each judgment's flaws in `flaws`.

- `tree`: one row per completed item that has subtasks (task trees): its prompt, candidates and
  counted judgments, and its subtasks nested as they were given, each with its counted answers and
  their aggregate (server/items/subtasks.py), and its own subtasks. JSONL only.

Subtasks that are checks, ratings or answers carry no preference: they appear in `raw` (with
`kind`, `question`, `parent_id` and the `answer`) and in `tree`, never in the pair formats.

A tie states no preference, so it yields no pair: ties appear only in `raw`. A ranking of
n candidates yields every one of its n(n-1)/2 ordered pairs.

Revisions (`ids=true`, see `with_ids`): every row also carries `judgment_id`, `revision` and
`deleted` (per item: `item_id`, `aggregate_revision`, `deleted`). A revised judgment is delivered
again with all its rows under the new revision; when the new verdict yields no row in the format
(it became a tie, say), one row with `deleted: true` and nothing else voids the old ones. A
consumer keeps, per `judgment_id` (or `item_id`), the rows of the highest revision and drops
them when that revision is `deleted`. `raw` rows always carry `judgment_id` and `revision`.
"""

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import mean
from typing import Any

FORMAT_VERSION = 1

Message = dict[str, str]
Prompt = str | list[Message]


class ExportFormat(enum.StrEnum):
    trl = "trl"
    trl_unpaired = "trl-unpaired"
    openai = "openai"
    hh = "hh"
    raw = "raw"
    critiques = "critiques"
    tree = "tree"


class Granularity(enum.StrEnum):
    judgment = "judgment"  # one row (or pairs) per judgment
    item = "item"  # the raters' judgments of a completed item, aggregated by majority


class Aggregation(enum.StrEnum):
    """How `granularity=item` turns an item's judgments into its label (see exports/weighted.py)."""

    majority = "majority"  # the most votes per pair (a split vote has no label)
    weighted = "weighted"  # Dawid-Skene: votes weighted by each rater's fitted reliability, with a confidence


class Raters(enum.StrEnum):
    """Whose judgments an export reads (quality/trust.py defines trusted)."""

    all = "all"
    trusted = "trusted"


class Judges(enum.StrEnum):
    """Whose labels an export reads: humans' (the default), model judges', or both (issue 12).

    Per judgment: the judgments of that kind. Per completed item: the items labelled by that kind
    (`label_source`), each aggregated from the judgments of its label source."""

    human = "human"
    model = "model"
    all = "all"


class GoldItems(enum.StrEnum):
    """Whether `granularity=item` exports deliver gold items (labelled by their gold answer)."""

    exclude = "exclude"
    include = "include"


@dataclass(frozen=True, slots=True)
class Pair:
    """One preference: `chosen` over `rejected` for `prompt`."""

    prompt: Prompt
    chosen: Mapping[str, Any]  # candidate: id, text | messages, model, metadata
    rejected: Mapping[str, Any]
    margin: float | None = None
    confidence: float | None = None  # aggregation=weighted: the posterior probability of this label


@dataclass(frozen=True, slots=True)
class PairVotes:
    """The raters' votes on one pair of an item's candidates, for the item aggregate."""

    chosen: str
    rejected: str
    votes_for: int
    votes_against: int
    ties: int
    margin: float | None

    @property
    def agreement(self) -> float:
        """Share of the raters who saw this pair and preferred `chosen` (ties count against)."""
        return self.votes_for / (self.votes_for + self.votes_against + self.ties)


@dataclass(frozen=True, slots=True)
class ItemAggregate:
    pairs: list[PairVotes]  # majority pairs only: a split vote has no preferred side
    judgments: int
    ties: int
    both_bad: int
    all_votes: list[PairVotes] = field(default_factory=list)  # every pair that got a vote, split ones too


def _ordered_pairs(judgment: Mapping[str, Any], candidate_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(preferred, other) candidate-id pairs that one judgment asserts."""
    ranking = judgment.get("ranking")
    if ranking:
        ids = [str(c) for c in ranking]
        return [(ids[i], ids[j]) for i in range(len(ids)) for j in range(i + 1, len(ids))]
    choice = judgment.get("choice_id")
    if choice is None:
        return []
    choice = str(choice)
    return [(choice, c) for c in candidate_ids if c != choice]


def _margin(strength: int | None) -> float | None:
    return None if strength is None else float(strength - 1)


def judgment_pairs(row: Mapping[str, Any]) -> list[Pair]:
    """The pairs one judgment asserts (none for a tie or a both-bad verdict without a choice)."""
    by_id = {str(c["id"]): c for c in row["candidates"]}
    margin = _margin(row.get("strength"))
    return [
        Pair(prompt=row["prompt"], chosen=by_id[a], rejected=by_id[b], margin=margin)
        for a, b in _ordered_pairs(row, list(by_id))
    ]


def aggregate_item(candidates: Sequence[Mapping[str, Any]], judgments: Iterable[Mapping[str, Any]]) -> ItemAggregate:
    """Majority per pair of candidates over an item's judgments; the margin is the winners' mean."""
    ids = [str(c["id"]) for c in candidates]
    wins: dict[tuple[str, str], list[float | None]] = {}
    ties = both_bad = count = 0
    for judgment in judgments:
        count += 1
        if judgment.get("tie"):
            ties += 1
        if judgment.get("both_bad"):
            both_bad += 1
        for pair in _ordered_pairs(judgment, ids):
            wins.setdefault(pair, []).append(_margin(judgment.get("strength")))
    all_votes, majority = [], []
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            for_a, for_b = wins.get((a, b), []), wins.get((b, a), [])
            if not for_a and not for_b:
                continue
            winner, loser, won, lost = (a, b, for_a, for_b) if len(for_a) >= len(for_b) else (b, a, for_b, for_a)
            margins = [m for m in won if m is not None]
            votes = PairVotes(
                chosen=winner,
                rejected=loser,
                votes_for=len(won),
                votes_against=len(lost),
                ties=count - len(won) - len(lost),
                margin=mean(margins) if margins else None,
            )
            all_votes.append(votes)
            if len(won) > len(lost):
                majority.append(votes)
    return ItemAggregate(pairs=majority, judgments=count, ties=ties, both_bad=both_bad, all_votes=all_votes)


def item_pairs(row: Mapping[str, Any], aggregate: ItemAggregate, *, min_agreement: float) -> list[Pair]:
    by_id = {str(c["id"]): c for c in row["candidates"]}
    return [
        Pair(prompt=row["prompt"], chosen=by_id[v.chosen], rejected=by_id[v.rejected], margin=v.margin)
        for v in aggregate.pairs
        if v.agreement >= min_agreement
    ]


# --- rendering -----------------------------------------------------------------------------


def _as_messages(prompt: Prompt) -> list[Message]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def _completion_messages(candidate: Mapping[str, Any]) -> list[Message]:
    if candidate.get("messages") is not None:
        return list(candidate["messages"])
    return [{"role": "assistant", "content": candidate.get("text") or ""}]


def _completion_text(candidate: Mapping[str, Any]) -> str:
    if candidate.get("messages") is not None:
        return "\n\n".join(m["content"] for m in candidate["messages"])
    return str(candidate.get("text") or "")


def _separated(prompt: str, *completions: str) -> str:
    """The prompt with the separator TRL needs before `prompt + completion` reads as two parts."""
    if not prompt or prompt[-1].isspace() or all(c[:1].isspace() for c in completions):
        return prompt
    return prompt + "\n\n"


@dataclass(frozen=True, slots=True)
class Renderer:
    """Renders pairs in one format; `chat` is decided once per export so columns never mix shapes."""

    format: ExportFormat
    chat: bool
    margin: bool = False

    def rows(self, pair: Pair) -> list[dict[str, Any]]:
        match self.format:
            case ExportFormat.trl:
                return [self._trl(pair)]
            case ExportFormat.trl_unpaired:
                return [
                    self._unpaired(pair.prompt, pair.chosen, True),
                    self._unpaired(pair.prompt, pair.rejected, False),
                ]
            case ExportFormat.openai:
                return [
                    {
                        "input": {"messages": _as_messages(pair.prompt)},
                        "preferred_output": _completion_messages(pair.chosen),
                        "non_preferred_output": _completion_messages(pair.rejected),
                    }
                ]
            case ExportFormat.hh:
                return [
                    {
                        "chosen": hh_transcript(pair.prompt, pair.chosen),
                        "rejected": hh_transcript(pair.prompt, pair.rejected),
                    }
                ]
        raise ValueError(f"{self.format} has no pair rows")  # raw is rendered from judgments, not pairs

    def both_bad_rows(self, prompt: Prompt, candidates: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """A both-bad verdict: only the unpaired format can say "undesirable" without a winner."""
        if self.format != ExportFormat.trl_unpaired:
            return []
        return [self._unpaired(prompt, c, False) for c in candidates]

    def _trl(self, pair: Pair) -> dict[str, Any]:
        if self.chat:
            row: dict[str, Any] = {
                "prompt": _as_messages(pair.prompt),
                "chosen": _completion_messages(pair.chosen),
                "rejected": _completion_messages(pair.rejected),
            }
        else:
            chosen, rejected = _completion_text(pair.chosen), _completion_text(pair.rejected)
            row = {"prompt": _separated(str(pair.prompt), chosen, rejected), "chosen": chosen, "rejected": rejected}
        if self.margin:
            row["margin"] = pair.margin if pair.margin is not None else 0.0
        return row

    def _unpaired(self, prompt: Prompt, candidate: Mapping[str, Any], label: bool) -> dict[str, Any]:
        if self.chat:
            return {"prompt": _as_messages(prompt), "completion": _completion_messages(candidate), "label": label}
        completion = _completion_text(candidate)
        return {"prompt": _separated(str(prompt), completion), "completion": completion, "label": label}


_HH_SPEAKER = {"user": "Human", "assistant": "Assistant", "system": "System", "tool": "Tool"}


def _hh_turns(messages: Iterable[Message]) -> str:
    return "".join(f"\n\n{_HH_SPEAKER[m['role']]}: {m['content']}" for m in messages)


def hh_transcript(prompt: Prompt, candidate: Mapping[str, Any]) -> str:
    """One HH-RLHF transcript: the prompt's turns, then the candidate's reply.

    A text prompt already in HH form (starting "\\n\\nHuman:", as TRL text rows are) is kept as
    is and the reply appended; system and tool messages become "System:"/"Tool:" turns.
    """
    if isinstance(prompt, str) and prompt.startswith("\n\nHuman:"):
        reply = _completion_text(candidate)
        joined = reply[:1].isspace() or prompt[-1:].isspace()
        return prompt + reply if joined else f"{prompt} {reply}"
    head = _hh_turns(_as_messages(prompt))
    if candidate.get("messages") is not None:
        return head + _hh_turns(candidate["messages"])
    return head + f"\n\nAssistant: {candidate.get('text') or ''}"


def raw_row(row: Mapping[str, Any], rater: str) -> dict[str, Any]:
    """Every field of one judgment; the rater appears only as a per-project pseudonym."""
    return {
        "judgment_id": str(row["id"]),
        "revision": row["revision"],
        "item_id": str(row["item_id"]),
        "external_id": row["external_id"],
        "batch_id": str(row["batch_id"]),
        "rater": rater,
        "rater_trusted": row["rater_trusted"],  # quality/trust.py, evaluated when the export was pulled
        "rater_kind": row["rater_kind"],  # human, or model for a model judge's verdict
        "confidence": row["confidence"],  # a model judge's confidence (null for humans)
        "prompt": row["prompt"],
        "candidates": row["candidates"],
        "shown_order": [str(c) for c in row["shown_order"]],
        "choice": None if row["choice_id"] is None else str(row["choice_id"]),
        "ranking": None if row["ranking"] is None else [str(c) for c in row["ranking"]],
        "strength": row["strength"],
        "tie": row["tie"],
        "both_bad": row["both_bad"],
        "rationale": row["rationale"],
        "active_ms": row["active_ms"],
        "surplus": row["surplus"],
        "surplus_reason": row["surplus_reason"],
        "assistance_shown": row["assistance_shown"],
        "flaws": [_flaw(f) for f in row.get("flaw_rows") or []],
        "aggregate_revision": row["aggregate_revision"],
        # Task trees: the item's kind and question, its parent, and a subtask's answer.
        "kind": row["kind"],
        "question": row["question"],
        "parent_id": None if row["parent_id"] is None else str(row["parent_id"]),
        "answer": row["answer"],
        "leased_at": row["leased_at"].isoformat(),
        "created_at": row["created_at"].isoformat(),
    }


def _flaw(flaw: Mapping[str, Any]) -> dict[str, Any]:
    """A marked flaw in `raw`: its candidate, span (and chat message), severity and note."""
    return {
        "candidate_id": str(flaw["candidate_id"]),
        "span": [flaw["start"], flaw["end"]],
        "message": flaw.get("message"),
        "severity": flaw.get("severity"),
        "note": flaw.get("note"),
    }


def _response(candidate: Mapping[str, Any]) -> Any:
    return candidate.get("text") if candidate.get("messages") is None else candidate["messages"]


def _quote(candidate: Mapping[str, Any] | None, critique: Mapping[str, Any]) -> str | None:
    if candidate is None or critique.get("start") is None:
        return None
    if candidate.get("messages") is not None:
        messages = candidate["messages"]
        index = critique.get("message")
        source = messages[index].get("content", "") if index is not None and index < len(messages) else ""
    else:
        source = candidate.get("text") or ""
    return str(source)[critique["start"] : critique["end"]]


def critique_rows(row: Mapping[str, Any], pseudonym: Callable[[str], str]) -> list[dict[str, Any]]:
    """One judgment's critique rows: those it rated, those its rater wrote, then the flaws its rater
    marked (`pseudonym` turns a user id into the project's rater pseudonym, for the judgment's rater
    and rater authors)."""
    by_id = {str(c["id"]): c for c in row["candidates"]}
    rater = pseudonym(str(row["rater_id"]))
    out = []
    for critique in row.get("critique_rows") or []:
        candidate = by_id.get(str(critique["candidate_id"]))
        if critique.get("author_model") is not None:
            author, author_kind = critique["author_model"], "model"
        elif critique.get("author_id") is not None:
            author, author_kind = pseudonym(str(critique["author_id"])), "rater"
        else:
            author, author_kind = None, "rater"  # a rater whose account was deleted
        out.append(
            {
                "judgment_id": str(row["id"]),
                "revision": row["revision"],
                "kind": critique["kind"],  # "rated" (shown to the rater and rated) or "written" (by the rater)
                "item_id": str(row["item_id"]),
                "external_id": row["external_id"],
                "prompt": row["prompt"],
                "candidate_id": str(critique["candidate_id"]),
                "response": None if candidate is None else _response(candidate),
                "critique_id": str(critique["id"]),
                "critique": critique["text"],
                "author": author,
                "author_kind": author_kind,
                "span": None if critique.get("start") is None else [critique["start"], critique["end"]],
                "message": critique.get("message"),
                "quote": _quote(candidate, critique),
                "severity": critique.get("severity"),
                "verdict": critique.get("verdict"),
                "helpful": critique.get("helpful"),
                "rater": rater,
                "assistance_shown": row["assistance_shown"],
                "created_at": row["created_at"].isoformat(),
            }
        )
    for flaw in row.get("flaw_rows") or []:
        candidate = by_id.get(str(flaw["candidate_id"]))
        out.append(
            {
                "judgment_id": str(row["id"]),
                "revision": row["revision"],
                "kind": "flaw",  # marked by the rater: `critique` is their note
                "item_id": str(row["item_id"]),
                "external_id": row["external_id"],
                "prompt": row["prompt"],
                "candidate_id": str(flaw["candidate_id"]),
                "response": None if candidate is None else _response(candidate),
                "critique_id": str(flaw["id"]),
                "critique": flaw.get("note"),
                "author": rater,
                "author_kind": "rater",
                "span": [flaw["start"], flaw["end"]],
                "message": flaw.get("message"),
                "quote": _quote(candidate, flaw),
                "severity": flaw.get("severity"),
                "verdict": None,
                "helpful": None,
                "rater": rater,
                "assistance_shown": row["assistance_shown"],
                "created_at": row["created_at"].isoformat(),
            }
        )
    return out


def raw_item_row(row: Mapping[str, Any], aggregate: ItemAggregate) -> dict[str, Any]:
    """One completed item with every pair's votes (split votes included) and the tie/both-bad counts."""
    return {
        "item_id": str(row["item_id"]),
        "aggregate_revision": row["aggregate_revision"],
        "external_id": row["external_id"],
        "batch_id": str(row["batch_id"]),
        "prompt": row["prompt"],
        "candidates": row["candidates"],
        "label_source": row["label_source"] or "human",  # model: resolved by model judges (the hand-off)
        "judgments": aggregate.judgments,
        "ties": aggregate.ties,
        "both_bad": aggregate.both_bad,
        "pairs": [
            {
                "chosen": v.chosen,
                "rejected": v.rejected,
                "votes_for": v.votes_for,
                "votes_against": v.votes_against,
                "ties": v.ties,
                "agreement": round(v.agreement, 4),
                "margin": v.margin,
                "majority": v.votes_for > v.votes_against,
            }
            for v in aggregate.all_votes
        ],
        # None for a gold item (gold=include): it is delivered with its answer, never completed.
        "completed_at": None if row["completed_at"] is None else row["completed_at"].isoformat(),
    }


def with_ids(rows: list[dict[str, Any]], row: Mapping[str, Any], granularity: Granularity) -> list[dict[str, Any]]:
    """`rows` (one judgment's, or one item's) with the columns that identify them for replacement.

    A revision that yields no row (a tie in a pair format) gives one `deleted` row instead, so a
    consumer drops the rows the earlier revision gave; a first revision with no rows gives none.
    """
    if granularity == Granularity.item:
        ids: dict[str, Any] = {"item_id": str(row["item_id"]), "aggregate_revision": row["aggregate_revision"]}
        revised = row["aggregate_revision"] > 1
    else:
        ids = {"judgment_id": str(row["id"]), "revision": row["revision"]}
        revised = row["revision"] > 1
    if not rows:
        return [ids | {"deleted": True}] if revised else []
    return [out | ids | {"deleted": False} for out in rows]


def tree_row(
    row: Mapping[str, Any],
    pseudonym: Callable[[str], str],
    aggregate: Callable[[str, Sequence[Any], tuple[float | None, float | None]], Any],
) -> dict[str, Any]:
    """One completed parent with its subtasks nested (`row["subtree"]`: every descendant, flat, in
    import order, each with its counted answers); `aggregate` is items/subtasks.py's."""
    children: dict[str, list[dict[str, Any]]] = {}
    for node in row["subtree"] or []:
        answers = node["answers"] or []
        values = [a["answer"] if node["kind"] != "comparison" else a["choice_id"] for a in answers]
        result = aggregate(node["kind"], [v for v in values if v is not None], (node["scale_min"], node["scale_max"]))
        entry = {
            "item_id": str(node["item_id"]),
            "external_id": node["external_id"],
            "kind": node["kind"],
            "question": node["question"],
            "candidate_id": node["candidate_id"],
            "span": None if node["span_start"] is None else [node["span_start"], node["span_end"]],
            "scale": None if node["scale_min"] is None else [node["scale_min"], node["scale_max"]],
            "answers": [
                {
                    "answer": a["answer"],
                    "choice": a["choice_id"],
                    "rationale": a["rationale"],
                    "rater": pseudonym(str(a["rater_id"])),
                }
                for a in answers
            ],
            "aggregate": {"answer": result.answer, "agreement": result.agreement, "answers": result.count},
            "subtasks": [],
        }
        children.setdefault(str(node["parent_id"]), []).append(entry)
    for entries in children.values():
        for entry in entries:
            entry["subtasks"] = children.get(entry["item_id"], [])
    return {
        "item_id": str(row["item_id"]),
        "aggregate_revision": row["aggregate_revision"],
        "external_id": row["external_id"],
        "batch_id": str(row["batch_id"]),
        "prompt": row["prompt"],
        "candidates": row["candidates"],
        "judgments": [
            {
                "choice": j["choice_id"],
                "ranking": j["ranking"],
                "strength": j["strength"],
                "tie": j["tie"],
                "both_bad": j["both_bad"],
                "rationale": j.get("rationale"),
                "rater": pseudonym(str(j["rater_id"])),
            }
            for j in row["judgments"] or []
        ],
        "subtasks": children.get(str(row["item_id"]), []),
        "completed_at": row["completed_at"].isoformat(),
    }
