"""Rows for trainers, from one exported judgment (pure: no database).

`trl` is TRL's explicit-prompt preference format: standard (`prompt`, `chosen`, `rejected`
strings) when the prompt is text, conversational (lists of messages) when it is a chat.
A tie has no preferred side, so it produces no `trl` row; a ranking gives every ordered pair.
`raw` keeps every field of every judgment.
"""

import enum
from typing import Any


class ExportFormat(enum.StrEnum):
    trl = "trl"
    raw = "raw"


def _messages(candidate: dict[str, Any]) -> list[dict[str, str]]:
    if candidate.get("messages") is not None:
        return list(candidate["messages"])
    return [{"role": "assistant", "content": candidate.get("text") or ""}]


def _pairs(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(preferred, other) candidate-id pairs that a judgment asserts."""
    ranking = row.get("ranking")
    if ranking:
        ids = [str(c) for c in ranking]
        return [(ids[i], ids[j]) for i in range(len(ids)) for j in range(i + 1, len(ids))]
    choice = row.get("choice_id")
    if choice is None:
        return []
    choice = str(choice)
    return [(choice, str(c["id"])) for c in row["candidates"] if str(c["id"]) != choice]


def trl_rows(row: dict[str, Any]) -> list[dict[str, Any]]:
    """TRL preference rows for one judgment (none for a tie)."""
    by_id = {str(c["id"]): c for c in row["candidates"]}
    prompt = row["prompt"]
    out = []
    for preferred, other in _pairs(row):
        chosen, rejected = by_id[preferred], by_id[other]
        text_only = isinstance(prompt, str) and chosen.get("text") is not None and rejected.get("text") is not None
        if text_only:
            out.append({"prompt": prompt, "chosen": chosen["text"], "rejected": rejected["text"]})
        else:
            messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
            out.append({"prompt": messages, "chosen": _messages(chosen), "rejected": _messages(rejected)})
    return out


def raw_row(row: dict[str, Any], rater: str) -> dict[str, Any]:
    """Every field of one judgment; the rater appears only as a per-project pseudonym."""
    return {
        "judgment_id": str(row["id"]),
        "item_id": str(row["item_id"]),
        "external_id": row["external_id"],
        "rater": rater,
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
        "assistance_shown": row["assistance_shown"],
        "leased_at": row["leased_at"].isoformat(),
        "created_at": row["created_at"].isoformat(),
    }
