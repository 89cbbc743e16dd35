"""Spans: a stretch of a candidate's response, `[start, end)` in Unicode code points (pure).

A span is counted in the candidate's `text`, or, for a chat candidate, in `messages[k].content`
with `message: k`. Code points, not bytes or UTF-16 units: Python's `str` indexes code points, so
`text[start:end]` is the quoted stretch, and PostgreSQL's `substr` counts the same way.

The page: the browser counts UTF-16 code units (an emoji or another astral character is two),
so the rater page converts before it sends and after it reads (server/static/spans.js:
`toCodePoints(text, utf16Offset)` and `toUtf16(text, codePointOffset)`). The server renders a
highlighted response from `segments()`, so the text nodes of the response are exactly the
characters of the stored text: markers for control characters are drawn by CSS (`::before`),
never inserted as text, so they cannot shift an offset.

Critiques use spans now; flaws marked by raters and planted flaws (issue 11, later) reuse
`Span`, `parse_span` and `segments`.
"""

import itertools
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_OFFSET = 10_000_000  # far above any stored response (the import bounds texts at 100,000 characters)


class SpanError(Exception):
    """A span that does not fit its response; `message` is the sentence for the client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    message: int | None = None  # the chat message the span is in; None for a text response

    def as_json(self) -> list[int]:
        return [self.start, self.end]


def response_text(text: str | None, messages: Sequence[Mapping[str, Any]] | None, message: int | None) -> str:
    """The string a span counts in: the text, or one message's content."""
    if text is not None:
        return text
    assert messages is not None
    assert message is not None
    return str(messages[message].get("content", ""))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_span(
    value: Any,
    message: Any,
    *,
    text: str | None,
    messages: Sequence[Mapping[str, Any]] | None,
    field: str = "span",
) -> Span:
    """Check a span sent as `[start, end]` (and `message` for a chat response) against its response.

    Raises SpanError with a sentence naming `field` and what to change.
    """
    if not (isinstance(value, list | tuple) and len(value) == 2 and all(_whole(v) for v in value)):
        raise SpanError(f"{field} must be [start, end]: two whole numbers, in Unicode code points.")
    start, end = int(value[0]), int(value[1])
    if start < 0:
        raise SpanError(f"{field} starts at {start}; a span starts at 0 or later.")
    if end <= start:
        raise SpanError(f"{field} [{start}, {end}] is empty or reversed: start must be less than end.")
    if text is not None:
        if message is not None:
            raise SpanError(f"{field} is in a text response: send no message index with it.")
        limit, where = len(text), "the response"
    else:
        count = len(messages or [])
        if message is None:
            raise SpanError(
                f"{field} is in a chat response: say which message it is in with message (0 to {count - 1})."
            )
        if not _whole(message) or not 0 <= message < count:
            raise SpanError(f"message must be a whole number from 0 to {count - 1} (the response has {count}).")
        limit = len(response_text(None, messages, message))
        where = f"message {message}"
    if end > limit:
        raise SpanError(
            f"{field} [{start}, {end}] ends past the end of {where}, which is {limit:,} characters "
            "(Unicode code points) long."
        )
    return Span(start=start, end=end, message=None if text is not None else int(message))


def quote(text: str, span: Span) -> str:
    """The stretch of `text` a span covers."""
    return text[span.start : span.end]


@dataclass(frozen=True, slots=True)
class Segment:
    """A run of a response's text with the marks covering it (ids of critiques, later flaws)."""

    text: str
    marks: tuple[str, ...] = ()

    @property
    def parts(self) -> list[tuple[str, str | None]]:
        """The text in runs of ordinary characters and single control characters (with the
        symbol CSS draws for it), so a template can mark control characters without adding text."""
        out: list[tuple[str, str | None]] = []
        run = ""
        for char in self.text:
            if char not in "\n\t" and unicodedata.category(char) == "Cc":
                if run:
                    out.append((run, None))
                    run = ""
                code = ord(char)
                out.append(
                    (
                        char,
                        chr(0x2400 + code)
                        if code < 0x20
                        else "\N{SYMBOL FOR DELETE}"
                        if code == 0x7F
                        else "\N{REPLACEMENT CHARACTER}",
                    )
                )
            else:
                run += char
        if run:
            out.append((run, None))
        return out


def segments(text: str, marks: Sequence[tuple[Span, str]]) -> list[Segment]:
    """`text` cut at every span boundary, each piece with the ids of the spans covering it."""
    cuts = {0, len(text)}
    for span, _ in marks:
        cuts.update((min(span.start, len(text)), min(span.end, len(text))))
    points = sorted(cuts)
    out = []
    for a, b in itertools.pairwise(points):
        covering = tuple(mark for span, mark in marks if span.start <= a and b <= span.end)
        out.append(Segment(text=text[a:b], marks=covering))
    return out
