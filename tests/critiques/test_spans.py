import pytest

from server.labeling.spans import Span, SpanError, parse_span, quote, segments

TEXT = "ok 😀 café"  # the emoji is one code point (two UTF-16 units)
CHAT = [{"role": "assistant", "content": "first"}, {"role": "assistant", "content": "a 😀 b"}]


def refused(value, message=None, *, text=TEXT, messages=None) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(SpanError) as caught:
        parse_span(value, message, text=text, messages=messages)
    return caught.value.message


def test_code_points_not_utf16() -> None:
    span = parse_span([3, 4], None, text=TEXT, messages=None)
    assert quote(TEXT, span) == "😀"
    assert parse_span([5, 9], None, text=TEXT, messages=None).end == len(TEXT)


def test_chat_span_counts_in_its_message() -> None:
    span = parse_span([2, 3], 1, text=None, messages=CHAT)
    assert span == Span(2, 3, 1)
    assert quote(CHAT[1]["content"], span) == "😀"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1-2", "span must be [start, end]: two whole numbers, in Unicode code points."),
        ([1], "span must be [start, end]: two whole numbers, in Unicode code points."),
        ([1.0, 2], "span must be [start, end]: two whole numbers, in Unicode code points."),
        ([True, 2], "span must be [start, end]: two whole numbers, in Unicode code points."),
        ([-1, 2], "span starts at -1; a span starts at 0 or later."),
        ([2, 2], "span [2, 2] is empty or reversed: start must be less than end."),
        ([3, 2], "span [3, 2] is empty or reversed: start must be less than end."),
        (
            [0, 10],
            "span [0, 10] ends past the end of the response, which is 9 characters (Unicode code points) long.",
        ),
    ],
)
def test_text_refusals(value, message) -> None:  # type: ignore[no-untyped-def]
    assert refused(value) == message


def test_chat_refusals() -> None:
    assert refused([0, 1], None, text=None, messages=CHAT) == (
        "span is in a chat response: say which message it is in with message (0 to 1)."
    )
    assert refused([0, 1], 2, text=None, messages=CHAT) == (
        "message must be a whole number from 0 to 1 (the response has 2)."
    )
    assert refused([0, 6], 1, text=None, messages=CHAT) == (
        "span [0, 6] ends past the end of message 1, which is 5 characters (Unicode code points) long."
    )
    assert refused([0, 1], 0) == "span is in a text response: send no message index with it."


def test_segments_cut_at_every_boundary_and_keep_text() -> None:
    text = "abcdef😀gh"
    parts = segments(text, [(Span(1, 4), "x"), (Span(3, 7), "y")])
    assert "".join(p.text for p in parts) == text
    assert [(p.text, p.marks) for p in parts] == [
        ("a", ()),
        ("bc", ("x",)),
        ("d", ("x", "y")),
        ("ef😀", ("y",)),
        ("gh", ()),
    ]


def test_control_characters_are_kept_as_text_with_a_symbol() -> None:
    (segment,) = segments("a\x07b\nc", [])
    assert segment.parts == [("a", None), ("\x07", "␇"), ("b\nc", None)]
    assert "".join(text for text, _ in segment.parts) == "a\x07b\nc"
