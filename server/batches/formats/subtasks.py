"""Subtasks given with an item (native records' `subtasks`, and `POST /items/{id}/subtasks`), checked.

A subtask is a smaller judgment whose results help the rater of the whole (issue 12, task trees):
a comparison of its own `responses`, a yes/no/unsure `check`, a `rating` on a `scale`, or a short
free-text `answer`. It may point at a `candidate` (an index into the responses of its nearest
ancestor that has responses: the record, or a comparison subtask) and a `span` of it, and nest
`subtasks` of its own. Its external id is derived from its parent's and its place (`t1/0`,
`t1/1/0`), so uploading the same file again adds nothing. A check or a rating with a known answer
takes `gold` (`{"answer": "yes"|"no"}`, `{"value": x}`: server/quality/gold.py) and is then a
gold item of the tree: served as gold, outside its parent's gate.

`flatten` walks the tree depth first and returns one flat row per subtask in the shape the insert
reads (server/items/subtasks.py): external id, parent's external id, depth, owner of the candidate
it points at, and the checked fields.
"""

import math
from typing import Any

from server.batches.formats.records import (
    MAX_ID_LENGTH,
    ParsedCandidate,
    _bounded_text,
    _kind,
    _Refusal,
)
from server.labeling.spans import SpanError, parse_span
from server.quality.gold import GoldError, parse_gold

KINDS = ("comparison", "check", "rating", "answer")
MAX_DEPTH = 4  # a record's subtasks are level 1
MAX_SUBTASKS = 50  # in one record's whole tree, and in one POST
MAX_QUESTION_CHARS = 2_000
MAX_GROUP_CHARS = 64  # project_members.group
MAX_SCALE = 1_000_000
SUBTASK_KEYS = frozenset(
    {"kind", "question", "candidate", "span", "message", "scale", "responses", "overlap", "group", "subtasks", "gold"}
)


class Budget:
    """How many subtasks a tree may still take."""

    def __init__(self, left: int) -> None:
        self.left = left


def _question(value: Any, field: str, kind: str) -> str | None:
    if value is None:
        if kind == "comparison":
            return None
        raise _Refusal(field, f"{field} is missing; a {kind} subtask asks a question.")
    return _bounded_text(value, field, MAX_QUESTION_CHARS)


def _scale(value: Any, field: str, kind: str) -> tuple[float, float] | None:
    if kind != "rating":
        if value is not None:
            raise _Refusal(field, f"{field} belongs to a rating; a {kind} subtask has no scale.")
        return None
    if value is None:
        raise _Refusal(field, f"{field} is missing; a rating needs its scale as [min, max].")
    ok = type(value) is list and len(value) == 2
    ok = ok and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    if not ok:
        raise _Refusal(field, f"{field} must be [min, max]: two numbers.")
    low, high = float(value[0]), float(value[1])
    if not low < high:
        raise _Refusal(field, f"{field} [{value[0]}, {value[1]}] is empty or reversed: min must be less than max.")
    if max(abs(low), abs(high)) > MAX_SCALE:
        raise _Refusal(field, f"{field} must lie within ±{MAX_SCALE:,}.")
    return low, high


def _gold(entry: dict[str, Any], where: str, kind: str, scale: tuple[float, float] | None) -> dict[str, Any]:
    """A subtask's gold answer in its stored shape: on a check (yes or no) or a rating (a value)."""
    field = f"{where}.gold"
    if kind not in ("check", "rating"):
        article = "an" if kind == "answer" else "a"
        raise _Refusal(
            field, f"{field}: gold goes on a check or a rating subtask; {article} {kind} subtask takes none."
        )
    if entry.get("subtasks") is not None:
        raise _Refusal(field, f"{field}: a gold subtask has no subtasks (it measures raters): drop gold or subtasks.")
    if entry.get("overlap") is not None:
        raise _Refusal(
            field, f"{field}: a gold subtask has no overlap (each rater is given it at most once): drop overlap."
        )
    try:
        return parse_gold(entry["gold"], 0, kind=kind, scale=scale).model_dump(exclude_none=True)
    except GoldError as exc:
        raise _Refusal(field, f"{where}.{exc}") from None


def _whole(value: Any) -> bool:
    return type(value) is int


def flatten(
    value: Any,
    *,
    parent: str,
    depth: int,
    owner: str | None,
    candidates: list[ParsedCandidate],
    field: str,
    budget: Budget,
    parse_candidate: Any,
    first_index: int = 0,
) -> list[dict[str, Any]]:
    """Check a list of subtasks under `parent` (whose candidates, for `candidate` pointers, are those of
    `owner`) and return them and their own subtasks as flat rows, depth first."""
    if type(value) is not list:
        raise _Refusal(field, f"{field} must be a list of subtasks, got {_kind(value)}.")
    if depth > MAX_DEPTH:
        raise _Refusal(field, f"{field} nests subtasks {depth} levels deep; at most {MAX_DEPTH} levels are allowed.")
    if len(value) > budget.left:
        raise _Refusal(field, f"{field} passes the limit of {MAX_SUBTASKS} subtasks per item (its whole tree).")
    budget.left -= len(value)
    rows: list[dict[str, Any]] = []
    for offset, entry in enumerate(value):
        where = f"{field}[{offset}]"
        if type(entry) is not dict:
            raise _Refusal(where, f"{where} must be an object with kind and question, got {_kind(entry)}.")
        if not SUBTASK_KEYS.issuperset(entry):
            unknown = next(k for k in entry if k not in SUBTASK_KEYS)
            if entry[unknown] is not None:
                allowed = ", ".join(sorted(SUBTASK_KEYS))
                raise _Refusal(
                    f"{where}.{unknown[:40]}", f'{where} has unknown key "{unknown[:40]}"; allowed keys: {allowed}.'
                )
        kind = entry.get("kind")
        if kind not in KINDS:
            raise _Refusal(f"{where}.kind", f"{where}.kind must be one of {', '.join(KINDS)}.")
        external_id = f"{parent}/{first_index + offset}"
        if len(external_id) > MAX_ID_LENGTH:
            raise _Refusal(where, f"{where}'s derived id is longer than {MAX_ID_LENGTH} characters; use a shorter id.")
        question = _question(entry.get("question"), f"{where}.question", kind)
        scale = _scale(entry.get("scale"), f"{where}.scale", kind)
        responses = entry.get("responses")
        own: list[ParsedCandidate] = []
        if kind == "comparison":
            if type(responses) is not list or len(responses) < 2:
                raise _Refusal(f"{where}.responses", f"{where}.responses needs at least 2 responses to compare.")
            if len(responses) > 16:
                raise _Refusal(f"{where}.responses", f"{where}.responses has {len(responses)}; at most 16 are allowed.")
            own = [parse_candidate(r, f"{where}.responses[{i}]") for i, r in enumerate(responses)]
        elif responses is not None:
            raise _Refusal(f"{where}.responses", f"{where}.responses belongs to a comparison; a {kind} has none.")
        row: dict[str, Any] = {
            "external_id": external_id,
            "parent": parent,
            "depth": depth,
            "kind": kind,
            "question": question,
            "scale_min": scale[0] if scale else None,
            "scale_max": scale[1] if scale else None,
        }
        index = entry.get("candidate")
        if index is not None:
            if kind == "comparison":
                raise _Refusal(
                    f"{where}.candidate", f"{where}.candidate: a comparison subtask compares its own responses."
                )
            if not _whole(index) or not 0 <= index < len(candidates):
                upper = f"0 to {len(candidates) - 1}" if candidates else "none: no ancestor has responses"
                raise _Refusal(f"{where}.candidate", f"{where}.candidate must be the index of a response ({upper}).")
            row |= {"owner": owner, "candidate": index}
        if entry.get("span") is not None:
            if index is None:
                raise _Refusal(f"{where}.span", f"{where}.span needs candidate: the response the span is in.")
            target = candidates[index]
            try:
                span = parse_span(
                    entry["span"], entry.get("message"), text=target.text, messages=target.messages,
                    field=f"{where}.span",
                )  # fmt: skip
            except SpanError as exc:
                raise _Refusal(f"{where}.span", exc.message) from None
            row |= {"span_start": span.start, "span_end": span.end, "span_message": span.message}
        elif entry.get("message") is not None:
            raise _Refusal(f"{where}.message", f"{where}.message goes with a span; send span too, or leave it out.")
        overlap = entry.get("overlap")
        if overlap is not None:
            if not _whole(overlap) or not 1 <= overlap <= 100:
                raise _Refusal(f"{where}.overlap", f"{where}.overlap must be a whole number from 1 to 100.")
            row["overlap"] = overlap
        group = entry.get("group")
        if group is not None:
            if type(group) is not str or not group.strip() or len(group) > MAX_GROUP_CHARS or "\x00" in group:
                raise _Refusal(
                    f"{where}.group", f"{where}.group must be a rater group tag of 1 to {MAX_GROUP_CHARS} characters."
                )
            row["pool"] = group
        if entry.get("gold") is not None:
            row["gold"] = _gold(entry, where, kind, scale)
        if own:
            row["responses"] = [
                {k: v for k, v in (("text", c.text), ("messages", c.messages), ("model", c.model)) if v is not None}
                | {"metadata": c.metadata}
                for c in own
            ]
        rows.append(row)
        if entry.get("subtasks") is not None:
            rows.extend(
                flatten(
                    entry["subtasks"],
                    parent=external_id,
                    depth=depth + 1,
                    owner=external_id if own else owner,
                    candidates=own or candidates,
                    field=f"{where}.subtasks",
                    budget=budget,
                    parse_candidate=parse_candidate,
                )
            )
    return rows
