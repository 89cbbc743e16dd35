"""Validation of decoded records: native, HH-RLHF and TRL, and detection of which one a file holds."""

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

from server.batches.formats import subtasks
from server.batches.formats.records import (
    _CRITIQUE_KEYS,
    _HH_KEYS,
    _NATIVE_KEYS,
    _PLANTED_KEYS,
    _RESPONSE_KEYS,
    _TRL_KEYS,
    ImportFormat,
    ImportLimits,
    ParsedCandidate,
    ParsedItem,
    RowError,
    _bounded_text,
    _check_bounds,
    _item,
    _kind,
    _messages,
    _metadata,
    _prompt,
    _Refusal,
    _reply,
    _text_size,
    _TooLarge,
    _unknown_keys,
)
from server.critiques.schemas import (
    MAX_AUTHOR_CHARS,
    MAX_CRITIQUE_CHARS,
    MAX_CRITIQUES_PER_ITEM,
    MAX_PLANTED_DESCRIPTION,
    MAX_PLANTED_PER_CANDIDATE,
)
from server.labeling.spans import SpanError, parse_span
from server.models.critique import Severity
from server.quality.gold import GoldError, parse_gold

_HH_MARKER = re.compile(r"\n\n(Human|Assistant):")
_HH_MARKER_MAX = len("\n\nAssistant:")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}
_HH_LABELS = ({"hh_label": "chosen"}, {"hh_label": "rejected"})
_TRL_LABELS = ({"trl_label": "chosen"}, {"trl_label": "rejected"})


def _native_candidate(value: Any, field: str) -> ParsedCandidate:
    """One entry of a native record's responses."""
    if type(value) is not dict:
        raise _Refusal(field, f"{field} must be an object with text or messages, got {_kind(value)}.")
    if not _RESPONSE_KEYS.issuperset(value):
        _unknown_keys(value, _RESPONSE_KEYS, field, f"{field}.")
    text = value.get("text")
    messages = value.get("messages")
    if text is None:
        if messages is None:
            raise _Refusal(
                field, f"{field} needs text (a string) or messages (a list of chat messages); it has neither."
            )
        if type(messages) is not list:
            raise _Refusal(
                f"{field}.messages", f"{field}.messages must be a list of chat messages, got {_kind(messages)}."
            )
        if not messages:
            raise _Refusal(
                f"{field}.messages", f'{field}.messages is empty; for an empty reply use "text": "" instead.'
            )
        _messages(messages, f"{field}.messages")
    elif messages is not None:
        raise _Refusal(field, f"{field} has both text and messages; give exactly one.")
    elif type(text) is not str:
        raise _Refusal(f"{field}.text", f"{field}.text must be a string, got {_kind(text)}.")
    model = value.get("model")
    if model is not None and type(model) is not str:
        raise _Refusal(f"{field}.model", f"{field}.model must be a string, got {_kind(model)}.")
    candidate = ParsedCandidate(text, messages, model, _metadata(value.get("metadata"), f"{field}.metadata"))
    planted = _planted(value.get("planted"), f"{field}.planted", candidate)
    return replace(candidate, planted=planted) if planted else candidate


def _planted(value: Any, field: str, candidate: ParsedCandidate) -> tuple[dict[str, Any], ...]:
    """Flaws planted in one response on purpose: a span (labeling/spans.py) and a description."""
    if value is None:
        return ()
    if type(value) is not list:
        raise _Refusal(field, f"{field} must be a list of planted flaws, got {_kind(value)}.")
    if len(value) > MAX_PLANTED_PER_CANDIDATE:
        raise _Refusal(
            field, f"{field} has {len(value):,} entries; a response may have at most {MAX_PLANTED_PER_CANDIDATE}."
        )
    out = []
    for index, flaw in enumerate(value):
        where = f"{field}[{index}]"
        if type(flaw) is not dict:
            raise _Refusal(where, f"{where} must be an object with span and description, got {_kind(flaw)}.")
        if not _PLANTED_KEYS.issuperset(flaw):
            _unknown_keys(flaw, _PLANTED_KEYS, where, f"{where}.")
        if flaw.get("span") is None:
            raise _Refusal(f"{where}.span", f"{where}.span is missing; say where the flaw is as [start, end].")
        try:
            span = parse_span(
                flaw["span"], flaw.get("message"), text=candidate.text, messages=candidate.messages,
                field=f"{where}.span",
            )  # fmt: skip
        except SpanError as exc:
            raise _Refusal(f"{where}.span", exc.message) from None
        description = _bounded_text(flaw.get("description"), f"{where}.description", MAX_PLANTED_DESCRIPTION)
        out.append({"message": span.message, "start": span.start, "end": span.end, "description": description})
    return tuple(out)


def _native(record: dict[str, Any], line: int, limits: ImportLimits) -> ParsedItem:
    """A native record: prompt, 2+ responses, optional id, metadata and gold."""
    if not _NATIVE_KEYS.issuperset(record):
        _unknown_keys(record, _NATIVE_KEYS, "A native record", "")
    prompt = _prompt(record.get("prompt"))
    responses = record.get("responses")
    if responses is None:
        raise _Refusal("responses", "responses is missing; list the candidate responses to compare.")
    if type(responses) is not list:
        raise _Refusal("responses", f"responses must be a list of responses, got {_kind(responses)}.")
    if len(responses) < 2:
        raise _Refusal("responses", f"responses needs at least 2 responses to compare; found {len(responses)}.")
    if len(responses) > limits.candidates:
        raise _Refusal(
            "responses",
            f"responses has {len(responses):,} responses; an item may have at most {limits.candidates} "
            "(ASSAY_UPLOAD_MAX_CANDIDATES).",
        )
    candidates = [_native_candidate(r, f"responses[{i}]") for i, r in enumerate(responses)]
    item = _item(line, record, prompt, candidates, _gold(record.get("gold"), len(candidates)))
    critiques = _critiques(record.get("critiques"), candidates)
    if critiques:
        item = replace(item, critiques=critiques)
    if record.get("subtasks") is not None:
        if item.gold is not None:
            raise _Refusal("subtasks", "A gold item has no subtasks (it measures raters): drop gold or subtasks.")
        rows = subtasks.flatten(
            record["subtasks"],
            parent=item.external_id,
            depth=1,
            owner=item.external_id,
            candidates=candidates,
            field="subtasks",
            budget=subtasks.Budget(subtasks.MAX_SUBTASKS),
            parse_candidate=_native_candidate,
        )
        for row in rows:
            for i, response in enumerate(row.get("responses", ())):
                reply = response.get("text", response.get("messages"))
                _text_size(reply, f"subtask {row['external_id']} responses[{i}]", limits)
        item = replace(item, subtasks=tuple(rows))
    return item


def _critique(value: Any, field: str, candidates: list[ParsedCandidate]) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Refusal(field, f"{field} must be an object with candidate, text and author, got {_kind(value)}.")
    if not _CRITIQUE_KEYS.issuperset(value):
        _unknown_keys(value, _CRITIQUE_KEYS, field, f"{field}.")
    index = value.get("candidate")
    if type(index) is not int or not 0 <= index < len(candidates):
        raise _Refusal(
            f"{field}.candidate",
            f"{field}.candidate must be the index of one of the responses, 0 to {len(candidates) - 1}.",
        )
    text = _bounded_text(value.get("text"), f"{field}.text", MAX_CRITIQUE_CHARS)
    author = _bounded_text(value.get("author"), f"{field}.author", MAX_AUTHOR_CHARS)
    severity = value.get("severity")
    if severity is not None and severity not in Severity.__members__:
        raise _Refusal(f"{field}.severity", f"{field}.severity must be one of minor, major, critical.")
    start = end = message = None
    if value.get("span") is not None:
        candidate = candidates[index]
        try:
            span = parse_span(
                value["span"], value.get("message"), text=candidate.text, messages=candidate.messages,
                field=f"{field}.span",
            )  # fmt: skip
        except SpanError as exc:
            raise _Refusal(f"{field}.span", exc.message) from None
        start, end, message = span.start, span.end, span.message
    elif value.get("message") is not None:
        raise _Refusal(f"{field}.message", f"{field}.message goes with a span; send span too, or leave message out.")
    return {
        "candidate": index, "text": text, "author": author, "severity": severity,
        "message": message, "start": start, "end": end,
    }  # fmt: skip


def _critiques(value: Any, candidates: list[ParsedCandidate]) -> tuple[dict[str, Any], ...]:
    """A native record's critiques of its responses, checked."""
    if value is None:
        return ()
    if type(value) is not list:
        raise _Refusal("critiques", f"critiques must be a list of critiques, got {_kind(value)}.")
    if len(value) > MAX_CRITIQUES_PER_ITEM:
        raise _Refusal(
            "critiques", f"critiques has {len(value):,} entries; an item may have at most {MAX_CRITIQUES_PER_ITEM}."
        )
    return tuple(_critique(c, f"critiques[{i}]", candidates) for i, c in enumerate(value))


def _gold(value: Any, candidates: int) -> dict[str, Any] | None:
    """The item's gold answer in its stored shape (server/quality/gold.py), or None."""
    if value is None:
        return None
    try:
        return parse_gold(value, candidates).model_dump(exclude_none=True)
    except GoldError as exc:
        raise _Refusal("gold", str(exc)) from None


def _pair(record: dict[str, Any], needs: str) -> tuple[Any, Any]:
    """The chosen and rejected values, refusing a record that lacks either."""
    chosen, rejected = record.get("chosen"), record.get("rejected")
    for name, value in (("chosen", chosen), ("rejected", rejected)):
        if value is None:
            raise _Refusal(name, f"{name} is missing; {needs}")
    return chosen, rejected


def _common_prefix_length(a: str, b: str) -> int:
    """Length of the longest common prefix, by binary search over C-speed slice comparisons."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low] and a[:high] != b[:high]
    while high - low > 1:
        mid = (low + high) // 2
        if a[low:mid] == b[low:mid]:
            low = mid
        else:
            high = mid
    return low


def _hh_turns(transcript: str, start: int, end: int) -> list[dict[str, str]]:
    """The turns of transcript[start:end], which begins at a marker."""
    markers = list(_HH_MARKER.finditer(transcript, start, end))
    turns = []
    for i, marker in enumerate(markers):
        stop = markers[i + 1].start() if i + 1 < len(markers) else end
        content = transcript[marker.end() : stop]
        # "Human: text": the space belongs to the marker, not to the turn.
        turns.append({"role": _HH_ROLES[marker.group(1)], "content": content.removeprefix(" ")})
    return turns


def _hh_transcript(value: Any, name: str) -> str:
    """A chosen or rejected HH transcript."""
    if type(value) is not str:
        raise _Refusal(
            name, f"{name} must be a transcript string, got {_kind(value)}; for lists of messages use format trl."
        )
    if not value.startswith("\n\nHuman:"):
        raise _Refusal(
            name, f'{name} must start with "\\n\\nHuman:" like an HH-RLHF transcript; it starts {value[:20]!r}.'
        )
    return value


def _hh(record: dict[str, Any], line: int, limits: ImportLimits) -> ParsedItem:
    """An HH-RLHF record: the shared opening turns are the prompt, each transcript's rest a candidate."""
    if not _HH_KEYS.issuperset(record):
        _unknown_keys(record, _HH_KEYS, "An hh record", "")
    chosen_value, rejected_value = _pair(record, "an hh record needs chosen and rejected transcripts.")
    chosen = _hh_transcript(chosen_value, "chosen")
    rejected = _hh_transcript(rejected_value, "rejected")
    common = _common_prefix_length(chosen, rejected)
    # The prompt ends at the last marker both transcripts have at the same place within their shared part.
    cut = 0
    for marker in _HH_MARKER.finditer(chosen, 0, common + _HH_MARKER_MAX):
        if marker.start() <= common and _HH_MARKER.match(rejected, marker.start()):
            cut = marker.start()
    if cut == 0:
        raise _Refusal(
            "rejected",
            "chosen and rejected share no opening turns to use as the prompt; both transcripts must "
            "start with the same human turn, followed by their replies.",
        )
    prompt = _hh_turns(chosen, 0, cut)
    candidates = [
        _reply(_hh_turns(chosen, cut, len(chosen)), _HH_LABELS[0]),
        _reply(_hh_turns(rejected, cut, len(rejected)), _HH_LABELS[1]),
    ]
    return _item(line, record, prompt, candidates, None)


def _trl_candidate(value: Any, name: str, label: dict[str, str]) -> ParsedCandidate:
    """A TRL chosen or rejected reply: text, or assistant messages."""
    if type(value) is str:
        return ParsedCandidate(value, None, None, dict(label))
    if type(value) is list:
        if not value:
            raise _Refusal(name, f'{name} is an empty list of messages; for an empty reply use "" instead.')
        return _reply(_messages(value, name), label)
    raise _Refusal(name, f"{name} must be a string or a list of chat messages, got {_kind(value)}.")


def _trl(record: dict[str, Any], line: int, limits: ImportLimits) -> ParsedItem:
    """A TRL preference record, with explicit prompt or (conversational) implicit prompt."""
    if not _TRL_KEYS.issuperset(record):
        _unknown_keys(record, _TRL_KEYS, "A trl record", "")
    chosen, rejected = _pair(record, "a trl record needs prompt, chosen and rejected.")
    if record.get("prompt") is not None:
        prompt = _prompt(record["prompt"])
        candidates = [
            _trl_candidate(chosen, "chosen", _TRL_LABELS[0]),
            _trl_candidate(rejected, "rejected", _TRL_LABELS[1]),
        ]
        return _item(line, record, prompt, candidates, None)
    if type(chosen) is not list or type(rejected) is not list:
        raise _Refusal(
            "prompt",
            "prompt is missing; a trl record needs a prompt unless chosen and rejected are whole "
            "conversations (lists of messages).",
        )
    _messages(chosen, "chosen")
    _messages(rejected, "rejected")
    # Implicit prompt: the shared opening messages, leaving each side at least its last message.
    shared = 0
    limit = min(len(chosen), len(rejected)) - 1
    while shared < limit and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0:
        raise _Refusal(
            "prompt",
            "prompt is missing and chosen and rejected share no opening messages; add a prompt, "
            "or start both conversations with the same messages.",
        )
    candidates = [_reply(chosen[shared:], _TRL_LABELS[0]), _reply(rejected[shared:], _TRL_LABELS[1])]
    return _item(line, record, chosen[:shared], candidates, None)


_VALIDATORS: dict[ImportFormat, Callable[[dict[str, Any], int, ImportLimits], ParsedItem]] = {
    ImportFormat.NATIVE: _native,
    ImportFormat.HH: _hh,
    ImportFormat.TRL: _trl,
}


def detect_format(record: dict[str, Any]) -> ImportFormat | None:
    """The format a record's keys point to, or None."""
    if record.get("responses") is not None:
        return ImportFormat.NATIVE
    if record.get("chosen") is not None and record.get("rejected") is not None:
        if record.get("prompt") is not None or type(record["chosen"]) is list:
            return ImportFormat.TRL
        return ImportFormat.HH
    return None


def _not_an_object(line: int, record: Any) -> RowError:
    """The error for a decoded line that holds some other JSON value than an object."""
    return RowError(
        line,
        "(line)",
        f"Line {line} holds a JSON {_kind(record)}, not an object; each line must be one JSON object (JSON Lines).",
    )


def _undetected(line: int, record: dict[str, Any]) -> RowError:
    """The error for a first record whose keys fit no format; the stream stops after it."""
    keys = ", ".join(key[:40] for key in list(record)[:20]) or "none"
    return RowError(
        line,
        "(format)",
        f"Cannot tell the format from this record's keys (found: {keys}); a record needs "
        "native keys (prompt, responses), trl keys (prompt, chosen, rejected) or hh keys "
        "(chosen, rejected), or choose the format when uploading.",
    )


def _validate(
    records: Iterable[tuple[int, Any]], format: ImportFormat | None, limits: ImportLimits
) -> Iterator[ParsedItem | RowError]:
    """Validate decoded records (or pass their RowErrors on); the one path for every encoding."""
    validator = None if format is None else _VALIDATORS[format]
    count = 0
    for line, record in records:
        if not (isinstance(record, RowError) and record.line == 0):  # a file-level error is no record
            count += 1
            if count > limits.items:
                raise _TooLarge(
                    f"The file holds more than {limits.items:,} items, the limit for one upload "
                    "(ASSAY_UPLOAD_MAX_ITEMS); split it into several batches.",
                    line,
                )
        if type(record) is not dict:
            yield record if isinstance(record, RowError) else _not_an_object(line, record)
            continue
        if validator is None:
            detected = detect_format(record)
            if detected is None:
                yield _undetected(line, record)
                return
            validator = _VALIDATORS[detected]
        try:
            item = validator(record, line, limits)
            _check_bounds(item, limits, native=validator is _native)
            yield item
        except _Refusal as refusal:
            yield RowError(line, refusal.field, refusal.message)
