"""Record types, and the field checks every record format shares (prompt, messages, ids, metadata)."""

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeAlias

import orjson

from server.errors import quote


class ImportFormat(StrEnum):
    NATIVE = "native"
    HH = "hh"
    TRL = "trl"


Prompt: TypeAlias = str | list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class ParsedCandidate:
    """One response to compare: exactly one of text and messages is set."""

    text: str | None
    messages: list[dict[str, str]] | None
    model: str | None
    metadata: dict[str, Any]
    # Native records only: flaws planted in this response on purpose (message/start/end, description).
    planted: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedItem:
    """One valid record, normalized to a prompt and its candidates."""

    line: int
    external_id: str
    prompt: Prompt
    candidates: list[ParsedCandidate]
    metadata: dict[str, Any]
    gold: Any | None
    # Native records only: critiques of the candidates, checked (candidate index, text, author,
    # span as message/start/end, severity), in the shape the import stores them.
    critiques: tuple[dict[str, Any], ...] = ()
    # Native records only: subtasks, flattened depth first (server/batches/formats/subtasks.py).
    subtasks: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one record (line > 0) or the whole file (line 0) was refused; `too_large` when a size
    limit stopped the file (the upload is refused with 413 rather than 422)."""

    line: int
    field: str
    message: str
    too_large: bool = False


@dataclass(frozen=True, slots=True)
class ImportLimits:
    """What one upload may expand to. The defaults are the settings' (ASSAY_UPLOAD_*, README)."""

    decompressed_bytes: int = 1 << 30
    line_bytes: int = 4 << 20  # a JSONL line, a CSV row (characters) or a Parquet row (decoded)
    text_chars: int = 100_000  # a prompt's or a candidate's text, all messages together
    messages: int = 1000  # chat messages in a prompt or a candidate
    candidates: int = 16
    items: int = 200_000
    parquet_row_group_bytes: int = 256 << 20  # uncompressed, as the file's metadata states it


class _TooLarge(Exception):
    """A size limit was passed: the stream stops with this file-level error (the upload gets 413)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.error = RowError(line, "(file)", message, too_large=True)


MAX_ID_LENGTH = 200
MAX_MODEL_LENGTH = 200  # candidates.model is varchar(200)
MAX_JSON_DEPTH = 32  # metadata and gold; orjson, which stores them, stops at 255

_ROLES = frozenset({"system", "user", "assistant", "tool"})
_MESSAGE_KEYS = frozenset({"role", "content"})
_RESPONSE_KEYS = frozenset({"text", "messages", "model", "metadata", "planted"})
_PLANTED_KEYS = frozenset({"span", "message", "description"})
_NATIVE_KEYS = frozenset({"id", "prompt", "responses", "metadata", "gold", "critiques", "subtasks"})
_CRITIQUE_KEYS = frozenset({"candidate", "text", "author", "span", "message", "severity"})
_HH_KEYS = frozenset({"id", "chosen", "rejected", "metadata"})
_TRL_KEYS = frozenset({"id", "prompt", "chosen", "rejected", "metadata"})
# Keys in the order messages list them (frozensets have none).
_ORDER = (
    "id",
    "prompt",
    "responses",
    "chosen",
    "rejected",
    "text",
    "messages",
    "role",
    "content",
    "model",
    "metadata",
    "gold",
    "critiques",
    "subtasks",
    "candidate",
    "author",
    "span",
    "message",
    "severity",
    "planted",
    "description",
)


class _Refusal(Exception):
    """A record's first problem, turned into a RowError by the loop that validates records."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


# ---------------------------------------------------------------------------------------------
# Field checks shared by every format


def _kind(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _bounded_text(value: Any, field: str, limit: int) -> str:
    """A non-empty string of at most `limit` characters that PostgreSQL can store (no NUL)."""
    if type(value) is not str:
        raise _Refusal(field, f"{field} must be a string, got {_kind(value)}.")
    if not value.strip():
        raise _Refusal(field, f"{field} is empty.")
    if len(value) > limit:
        raise _Refusal(field, f"{field} is {len(value):,} characters long; at most {limit:,} are allowed.")
    if "\x00" in value:
        raise _Refusal(field, f"{field} contains a NUL character (\\u0000), which cannot be stored; remove it.")
    return value


def _unknown_keys(record: dict[str, Any], allowed: frozenset[str], where: str, field_prefix: str) -> None:
    """Refuse keys outside `allowed` (null-valued ones count as absent)."""
    unknown = [k for k in record if k not in allowed and record[k] is not None]
    if not unknown:
        return
    names = ", ".join(f'"{k[:40]}"' for k in unknown[:5])
    if len(unknown) > 5:
        names += f" and {len(unknown) - 5} more"
    allowed_list = ", ".join(k for k in _ORDER if k in allowed)
    noun = "key" if len(unknown) == 1 else "keys"
    message = f"{where} has unknown {noun} {names}; allowed keys: {allowed_list}."
    raise _Refusal(f"{field_prefix}{unknown[0][:40]}", message)


def _external_id(value: Any) -> str | None:
    """The record's id as text, or None when absent."""
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            raise _Refusal("id", "id is empty; give a non-empty id or leave the key out to use a content hash.")
        if len(value) > MAX_ID_LENGTH:
            raise _Refusal("id", f"id is {len(value)} characters long; ids may be at most {MAX_ID_LENGTH} characters.")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise _Refusal("id", f"id must be a string or a whole number, got {_kind(value)}.")


def _metadata(value: Any, field: str) -> dict[str, Any]:
    """An optional metadata object ({} when absent)."""
    if value is None:
        return {}
    if type(value) is not dict:
        raise _Refusal(field, f"{field} must be an object, got {_kind(value)}.")
    return value


def _messages(value: list[Any], field: str) -> list[dict[str, str]]:
    """Check a list of chat messages; returns it unchanged when valid."""
    for i, message in enumerate(value):
        where = f"{field}[{i}]"
        if type(message) is not dict:
            raise _Refusal(where, f"{where} must be an object with role and content, got {_kind(message)}.")
        if not _MESSAGE_KEYS.issuperset(message):
            _unknown_keys(message, _MESSAGE_KEYS, where, f"{where}.")
        role = message.get("role")
        if role is None:
            raise _Refusal(f"{where}.role", f"{where}.role is missing; each message needs role and content.")
        if role not in _ROLES:
            found = quote(role) if isinstance(role, str) else _kind(role)
            raise _Refusal(f"{where}.role", f"{where}.role must be one of system, user, assistant, tool; got {found}.")
        content = message.get("content")
        if content is None:
            raise _Refusal(f"{where}.content", f"{where}.content is missing; each message needs role and content.")
        if type(content) is not str:
            raise _Refusal(f"{where}.content", f"{where}.content must be a string, got {_kind(content)}.")
    return value


def _prompt(value: Any) -> Prompt:
    """A non-empty prompt: text, or a list of chat messages."""
    if value is None:
        raise _Refusal("prompt", "prompt is missing; every item needs a prompt (text or a list of chat messages).")
    if type(value) is str:
        if not value.strip():
            raise _Refusal("prompt", "prompt is empty; every item needs a prompt.")
        return value
    if type(value) is list:
        if not value:
            raise _Refusal("prompt", "prompt is an empty list of messages; every item needs a prompt.")
        return _messages(value, "prompt")
    raise _Refusal("prompt", f"prompt must be a string or a list of chat messages, got {_kind(value)}.")


def _content_id(prompt: Prompt, candidates: list[ParsedCandidate]) -> str:
    """A stable id from what raters see, for records that bring none."""
    content = {
        "prompt": prompt,
        "candidates": [{"text": c.text, "messages": c.messages, "model": c.model} for c in candidates],
    }
    digest = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sha256:{digest[:32]}"


def _item(
    line: int, record: dict[str, Any], prompt: Prompt, candidates: list[ParsedCandidate], gold: Any
) -> ParsedItem:
    """Assemble an item, checking the keys every format shares (id, metadata)."""
    external_id = _external_id(record.get("id"))
    metadata = _metadata(record.get("metadata"), "metadata")
    if external_id is None:
        external_id = _content_id(prompt, candidates)
    return ParsedItem(line, external_id, prompt, candidates, metadata, gold)


def _reply(turns: list[dict[str, str]], label: dict[str, str]) -> ParsedCandidate:
    """A candidate from the turns after the prompt: a lone assistant turn becomes plain text."""
    if len(turns) == 1 and turns[0]["role"] == "assistant":
        return ParsedCandidate(turns[0]["content"], None, None, dict(label))
    return ParsedCandidate(None, turns, None, dict(label))


# ---------------------------------------------------------------------------------------------
# File-level errors shared by every encoding


def _reason(exc: BaseException) -> str:
    """A library's error text, to quote inside a sentence."""
    return str(exc).strip().rstrip(".")


def _damaged(exc: BaseException) -> RowError:
    """The file-level error for compressed data that ends early or is corrupt."""
    return RowError(
        0, "(file)", f"The compressed file is damaged ({_reason(exc)}); compress it again or upload it uncompressed."
    )


# ---------------------------------------------------------------------------------------------
# Bounds every format shares: what the database can store, and what one upload may expand to


def _no_nul(value: str, field: str) -> None:
    if "\x00" in value:
        raise _Refusal(field, f"{field} contains a NUL character (\\u0000), which cannot be stored; remove it.")


def _text_size(value: Prompt, field: str, limits: ImportLimits) -> None:
    """Refuse a prompt or reply longer than the text limit, with too many messages, or holding NUL."""
    if isinstance(value, str):
        size = len(value)
        _no_nul(value, field)
    else:
        if len(value) > limits.messages:
            raise _Refusal(
                field,
                f"{field} has {len(value):,} messages; at most {limits.messages:,} are allowed "
                "(ASSAY_UPLOAD_MAX_MESSAGES).",
            )
        size = sum(len(m["content"]) for m in value)
        for i, message in enumerate(value):
            _no_nul(message["content"], f"{field}[{i}].content")
    if size > limits.text_chars:
        raise _Refusal(
            field,
            f"{field} is {size:,} characters long; a prompt or reply may be at most {limits.text_chars:,} "
            "characters (ASSAY_UPLOAD_MAX_TEXT_CHARS).",
        )


def _json_bounds(value: Any, field: str, depth: int = 0) -> None:
    """Refuse metadata or gold nested deeper than MAX_JSON_DEPTH or holding NUL (JSONB cannot store it)."""
    if depth > MAX_JSON_DEPTH:
        raise _Refusal(field, f"{field} is nested more than {MAX_JSON_DEPTH} levels deep; flatten it.")
    if isinstance(value, str):
        _no_nul(value, field)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key, field)
            _json_bounds(item, field, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json_bounds(item, field, depth + 1)


def _check_bounds(item: ParsedItem, limits: ImportLimits, *, native: bool) -> None:
    """Refuse an item whose values the database cannot store or that pass the per-item limits."""
    _no_nul(item.external_id, "id")
    _text_size(item.prompt, "prompt", limits)
    _json_bounds(item.metadata, "metadata")
    _json_bounds(item.gold, "gold")
    for i, candidate in enumerate(item.candidates):
        reply = candidate.text if candidate.text is not None else candidate.messages
        assert reply is not None  # a candidate has text or messages
        field = f"responses[{i}]" if native else ("chosen", "rejected")[i]
        reply_field = f"{field}.{'text' if candidate.text is not None else 'messages'}" if native else field
        _text_size(reply, reply_field, limits)
        if candidate.model is not None:
            _no_nul(candidate.model, f"{field}.model")
            if len(candidate.model) > MAX_MODEL_LENGTH:
                raise _Refusal(
                    f"{field}.model",
                    f"{field}.model is {len(candidate.model):,} characters long; "
                    f"at most {MAX_MODEL_LENGTH} are allowed.",
                )
        _json_bounds(candidate.metadata, f"{field}.metadata")
