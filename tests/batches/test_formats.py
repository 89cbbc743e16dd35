"""Parsing uploads: encodings, record formats and every refusal message (pure: no database)."""

import csv
import datetime
import gzip
import hashlib
import io
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from server.batches.formats import (
    Encoding,
    ImportFormat,
    ParsedCandidate,
    ParsedItem,
    RowError,
    csv_reader,
    detect_encoding,
    iter_records,
)

HH_FILE = Path(__file__).resolve().parents[3] / "shared" / "data" / "hh-rlhf" / "harmless-base" / "test-shared.jsonl.gz"

BASE: dict[str, Any] = {"prompt": "Q?", "responses": [{"text": "a"}, {"text": "b"}]}


def run(data: bytes, **kwargs: Any) -> list[ParsedItem | RowError]:
    return list(iter_records(io.BytesIO(data), **kwargs))


def jsonl(*records: Any) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def one(record: Any, **kwargs: Any) -> ParsedItem | RowError:
    results = run(jsonl(record), **kwargs)
    assert len(results) == 1, results
    return results[0]


def item(record: Any, **kwargs: Any) -> ParsedItem:
    result = one(record, **kwargs)
    assert isinstance(result, ParsedItem), result
    return result


def native(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def text(value: str, label: dict[str, str] | None = None, model: str | None = None) -> ParsedCandidate:
    return ParsedCandidate(value, None, model, label or {})


def msgs(*turns: tuple[str, str]) -> list[dict[str, str]]:
    return [{"role": role, "content": content} for role, content in turns]


def transcript(*turns: tuple[str, str]) -> str:
    return "".join(f"\n\n{'Human' if role == 'user' else 'Assistant'}: {content}" for role, content in turns)


def content_id(prompt: Any, candidates: list[tuple[str | None, Any, str | None]]) -> str:
    content = {"prompt": prompt, "candidates": [{"text": t, "messages": m, "model": mo} for t, m, mo in candidates]}
    return "sha256:" + hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def csv_bytes(*rows: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


def parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


CHOSEN, REJECTED = {"hh_label": "chosen"}, {"hh_label": "rejected"}
TRL_CHOSEN, TRL_REJECTED = {"trl_label": "chosen"}, {"trl_label": "rejected"}


class TestDetectEncoding:
    def test_parquet_magic_wins_over_name(self) -> None:
        assert detect_encoding(b"PAR1\x15\x04", "items.jsonl") is Encoding.PARQUET

    def test_gzip_jsonl(self) -> None:
        assert detect_encoding(gzip.compress(jsonl(BASE)), "items.jsonl.gz") is Encoding.JSONL

    def test_gzipped_parquet_detected_on_decompressed_head(self) -> None:
        assert detect_encoding(gzip.compress(b"PAR1" + b"\0" * 100), None) is Encoding.PARQUET

    def test_csv_by_name(self) -> None:
        assert detect_encoding(b'{"a": 1}', "Items.CSV") is Encoding.CSV

    def test_csv_gz_by_name(self) -> None:
        assert detect_encoding(gzip.compress(b"prompt,response_1,response_2\n"), "items.csv.gz") is Encoding.CSV

    def test_parquet_name_without_magic_is_parquet(self) -> None:
        assert detect_encoding(b"garbage", "items.parquet") is Encoding.PARQUET

    def test_jsonl_name_wins_over_csv_look(self) -> None:
        assert detect_encoding(b"prompt,response_1,response_2\n", "items.jsonl") is Encoding.JSONL

    def test_nameless_csv_header_is_csv(self) -> None:
        assert detect_encoding(b'\xef\xbb\xbf"id","prompt","chosen","rejected"\r\n', None) is Encoding.CSV

    def test_nameless_json_is_jsonl(self) -> None:
        assert detect_encoding(b'  {"prompt": "a,b", "chosen": "x"}\n', None) is Encoding.JSONL

    def test_unknown_default_is_jsonl(self) -> None:
        assert detect_encoding(b"hello world", "notes.txt") is Encoding.JSONL


class TestJsonlLines:
    def test_blank_lines_skipped_and_numbers_kept(self) -> None:
        data = b"\n" + jsonl(BASE) + b"   \r\n\n" + jsonl(native(id="x"))
        assert [r.line for r in run(data)] == [2, 5]

    def test_crlf_and_no_final_newline(self) -> None:
        data = orjson.dumps(native(id="a")) + b"\r\n" + orjson.dumps(native(id="b"))
        assert [r.external_id for r in run(data) if isinstance(r, ParsedItem)] == ["a", "b"]

    def test_non_utf8_line_reported_and_later_lines_checked(self) -> None:
        data = jsonl(native(id="ok")) + b'{"prompt": "caf\xe9"}\n' + jsonl(native(id="later"))
        results = run(data)
        assert results[1] == RowError(
            2, "(line)", "Line 2 is not valid UTF-8 (byte 0xe9 at position 16); save the file as UTF-8."
        )
        assert isinstance(results[2], ParsedItem)
        assert (results[2].line, results[2].external_id) == (3, "later")

    def test_invalid_json(self) -> None:
        assert run(jsonl(BASE) + b"{not json\n") == [
            run(jsonl(BASE))[0],
            RowError(
                2,
                "(line)",
                "Line 2 is not valid JSON (unexpected character, expected a string key at column 2); "
                "each line must be one complete JSON object.",
            ),
        ]

    def test_line_not_an_object(self) -> None:
        assert run(b"[1, 2]\n") == [
            RowError(
                1,
                "(line)",
                "Line 1 holds a JSON list, not an object; each line must be one JSON object (JSON Lines).",
            )
        ]

    def test_string_line_not_an_object(self) -> None:
        assert run(b'"hello"\n')[0].message.startswith("Line 1 holds a JSON string, not an object;")

    def test_utf8_bom_on_first_line_accepted(self) -> None:
        assert item(BASE).external_id == run(b"\xef\xbb\xbf" + jsonl(BASE))[0].external_id  # type: ignore[union-attr]

    def test_gzip_is_transparent(self) -> None:
        results = run(gzip.compress(jsonl(native(id="a"), native(id="b"))))
        assert [(r.line, r.external_id) for r in results if isinstance(r, ParsedItem)] == [(1, "a"), (2, "b")]

    def test_damaged_gzip_is_a_file_error(self) -> None:
        data = gzip.compress(jsonl(*[native(id=str(i)) for i in range(200)]))[:-20]
        assert run(data)[-1] == RowError(
            0,
            "(file)",
            "The compressed file is damaged (Compressed file ended before the end-of-stream marker was reached); "
            "compress it again or upload it uncompressed.",
        )

    def test_empty_file_yields_nothing(self) -> None:
        assert run(b"") == []

    def test_undetectable_format_stops_with_one_error(self) -> None:
        assert run(jsonl({"question": "Q", "answer": "A"}, BASE)) == [
            RowError(
                1,
                "(format)",
                "Cannot tell the format from this record's keys (found: question, answer); a record needs "
                "native keys (prompt, responses), trl keys (prompt, chosen, rejected) or hh keys "
                "(chosen, rejected), or choose the format when uploading.",
            )
        ]

    def test_detection_uses_first_object_after_bad_lines(self) -> None:
        results = run(b"oops\n" + jsonl({"chosen": transcript(("user", "hi"), ("assistant", "yo")), "rejected": ""}))
        assert results[0].field == "(line)"
        assert results[1] == RowError(
            2, "rejected", "rejected must start with \"\\n\\nHuman:\" like an HH-RLHF transcript; it starts ''."
        )

    def test_streams_without_reading_whole_file(self) -> None:
        buffer = io.BytesIO(jsonl(*[native(id=str(i)) for i in range(20_000)]))
        records = iter_records(buffer, encoding=Encoding.JSONL)
        first = next(records)
        assert isinstance(first, ParsedItem)
        assert buffer.tell() < len(buffer.getvalue()) // 10


class TestNative:
    def test_full_record_normalized(self) -> None:
        record = {
            "id": 17,
            "prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
            "responses": [
                {"text": "Hello", "model": "m-a", "metadata": {"temp": 0.7}},
                {"messages": [{"role": "assistant", "content": "Hey"}, {"role": "tool", "content": "{}"}]},
            ],
            "metadata": {"source": "unit"},
            "gold": {"preferred": 0, "explanation": "Hello answers."},
        }
        assert item(record) == ParsedItem(
            line=1,
            external_id="17",
            prompt=msgs(("system", "Be brief."), ("user", "Hi")),
            candidates=[
                ParsedCandidate("Hello", None, "m-a", {"temp": 0.7}),
                ParsedCandidate(None, msgs(("assistant", "Hey"), ("tool", "{}")), None, {}),
            ],
            metadata={"source": "unit"},
            gold={"preferred": 0, "explanation": "Hello answers."},
        )

    def test_content_hash_id_when_id_absent(self) -> None:
        parsed = item(native(responses=[{"text": "a", "model": "x"}, {"text": "b"}]))
        assert parsed.external_id == content_id("Q?", [("a", None, "x"), ("b", None, None)])
        assert parsed.external_id == "sha256:0b3ba9ba09dcf2aa2f0499dd01eec957"

    def test_content_hash_ignores_key_order_and_metadata(self) -> None:
        a = item({"responses": [{"model": "x", "text": "a"}, {"text": "b"}], "prompt": "Q?", "metadata": {"k": 1}})
        b = item(native(responses=[{"text": "a", "model": "x", "metadata": {"z": 2}}, {"text": "b"}]))
        assert a.external_id == b.external_id

    def test_content_hash_differs_with_candidate_order(self) -> None:
        swapped = item(native(responses=[{"text": "b"}, {"text": "a"}]))
        assert swapped.external_id != item(BASE).external_id

    def test_null_optional_keys_are_absent(self) -> None:
        record = native(
            id=None, metadata=None, gold=None, responses=[{"text": "a", "model": None, "messages": None}, {"text": "b"}]
        )
        parsed = item(record)
        assert (parsed.external_id, parsed.metadata, parsed.gold) == (item(BASE).external_id, {}, None)
        assert parsed.candidates == [text("a"), text("b")]

    def test_null_unknown_key_counts_as_absent(self) -> None:
        assert isinstance(one(native(source=None)), ParsedItem)

    def test_empty_candidate_text_allowed(self) -> None:
        assert item(native(responses=[{"text": ""}, {"text": "b"}])).candidates[0] == text("")

    def test_three_candidates(self) -> None:
        assert len(item(native(responses=[{"text": "a"}, {"text": "b"}, {"text": "c"}])).candidates) == 3

    def test_missing_prompt(self) -> None:
        assert one({"responses": BASE["responses"]}) == RowError(
            1, "prompt", "prompt is missing; every item needs a prompt (text or a list of chat messages)."
        )

    def test_empty_prompt(self) -> None:
        assert one(native(prompt="  \n")) == RowError(1, "prompt", "prompt is empty; every item needs a prompt.")

    def test_empty_prompt_messages(self) -> None:
        assert one(native(prompt=[])) == RowError(
            1, "prompt", "prompt is an empty list of messages; every item needs a prompt."
        )

    def test_prompt_wrong_type(self) -> None:
        assert one(native(prompt=42)) == RowError(
            1, "prompt", "prompt must be a string or a list of chat messages, got number."
        )

    def test_prompt_message_not_object(self) -> None:
        assert one(native(prompt=["hi"])) == RowError(
            1, "prompt[0]", "prompt[0] must be an object with role and content, got string."
        )

    def test_message_missing_role(self) -> None:
        assert one(native(prompt=[{"content": "hi"}])) == RowError(
            1, "prompt[0].role", "prompt[0].role is missing; each message needs role and content."
        )

    def test_message_bad_role(self) -> None:
        assert one(native(prompt=[{"role": "bot", "content": "hi"}])) == RowError(
            1, "prompt[0].role", "prompt[0].role must be one of system, user, assistant, tool; got 'bot'."
        )

    def test_message_role_not_string(self) -> None:
        assert one(native(prompt=[{"role": 1, "content": "hi"}])) == RowError(
            1, "prompt[0].role", "prompt[0].role must be one of system, user, assistant, tool; got number."
        )

    def test_message_missing_content(self) -> None:
        assert one(native(prompt=[{"role": "user", "content": "a"}, {"role": "user"}])) == RowError(
            1, "prompt[1].content", "prompt[1].content is missing; each message needs role and content."
        )

    def test_message_content_not_string(self) -> None:
        assert one(native(prompt=[{"role": "user", "content": ["a"]}])) == RowError(
            1, "prompt[0].content", "prompt[0].content must be a string, got list."
        )

    def test_message_unknown_key(self) -> None:
        assert one(native(prompt=[{"role": "user", "content": "a", "name": "bob"}])) == RowError(
            1, "prompt[0].name", 'prompt[0] has unknown key "name"; allowed keys: role, content.'
        )

    def test_responses_missing(self) -> None:
        assert one({"prompt": "Q?", "responses": None}, format=ImportFormat.NATIVE) == RowError(
            1, "responses", "responses is missing; list the candidate responses to compare."
        )

    def test_responses_not_list(self) -> None:
        assert one(native(responses={"text": "a"})) == RowError(
            1, "responses", "responses must be a list of responses, got object."
        )

    def test_single_candidate(self) -> None:
        assert one(native(responses=[{"text": "a"}])) == RowError(
            1, "responses", "responses needs at least 2 responses to compare; found 1."
        )

    def test_response_not_object(self) -> None:
        assert one(native(responses=["a", "b"])) == RowError(
            1, "responses[0]", "responses[0] must be an object with text or messages, got string."
        )

    def test_response_without_text_or_messages(self) -> None:
        assert one(native(responses=[{"text": "a"}, {"model": "m"}])) == RowError(
            1,
            "responses[1]",
            "responses[1] needs text (a string) or messages (a list of chat messages); it has neither.",
        )

    def test_response_with_text_and_messages(self) -> None:
        both = {"text": "a", "messages": [{"role": "assistant", "content": "a"}]}
        assert one(native(responses=[{"text": "a"}, both])) == RowError(
            1, "responses[1]", "responses[1] has both text and messages; give exactly one."
        )

    def test_response_text_not_string(self) -> None:
        assert one(native(responses=[{"text": "a"}, {"text": 3}])) == RowError(
            1, "responses[1].text", "responses[1].text must be a string, got number."
        )

    def test_response_messages_not_list(self) -> None:
        assert one(native(responses=[{"messages": "hi"}, {"text": "b"}])) == RowError(
            1, "responses[0].messages", "responses[0].messages must be a list of chat messages, got string."
        )

    def test_response_messages_empty(self) -> None:
        assert one(native(responses=[{"messages": []}, {"text": "b"}])) == RowError(
            1, "responses[0].messages", 'responses[0].messages is empty; for an empty reply use "text": "" instead.'
        )

    def test_response_message_bad(self) -> None:
        assert one(native(responses=[{"messages": [{"role": "assistant", "content": None}]}, {"text": "b"}])) == (
            RowError(
                1,
                "responses[0].messages[0].content",
                "responses[0].messages[0].content is missing; each message needs role and content.",
            )
        )

    def test_model_not_string(self) -> None:
        assert one(native(responses=[{"text": "a", "model": 7}, {"text": "b"}])) == RowError(
            1, "responses[0].model", "responses[0].model must be a string, got number."
        )

    def test_response_metadata_not_object(self) -> None:
        assert one(native(responses=[{"text": "a"}, {"text": "b", "metadata": [1]}])) == RowError(
            1, "responses[1].metadata", "responses[1].metadata must be an object, got list."
        )

    def test_response_unknown_key(self) -> None:
        assert one(native(responses=[{"text": "a", "score": 1}, {"text": "b"}])) == RowError(
            1,
            "responses[0].score",
            'responses[0] has unknown key "score"; allowed keys: text, messages, model, metadata, planted.',
        )

    def test_metadata_not_object(self) -> None:
        assert one(native(metadata="web")) == RowError(1, "metadata", "metadata must be an object, got string.")

    def test_unknown_key(self) -> None:
        assert one(native(source="web")) == RowError(
            1,
            "source",
            'A native record has unknown key "source"; allowed keys: id, prompt, responses, metadata, gold, '
            "critiques, subtasks.",
        )

    def test_unknown_keys_all_named(self) -> None:
        assert one(native(source="web", tags=[])) == RowError(
            1,
            "source",
            'A native record has unknown keys "source", "tags"; '
            "allowed keys: id, prompt, responses, metadata, gold, critiques, subtasks.",
        )

    def test_id_empty(self) -> None:
        assert one(native(id="")) == RowError(
            1, "id", "id is empty; give a non-empty id or leave the key out to use a content hash."
        )

    def test_id_whitespace_is_empty(self) -> None:
        assert one(native(id="  ")).message.startswith("id is empty;")  # type: ignore[union-attr]

    def test_id_wrong_type(self) -> None:
        assert one(native(id=1.5)) == RowError(1, "id", "id must be a string or a whole number, got number.")

    def test_id_boolean_refused(self) -> None:
        assert one(native(id=True)) == RowError(1, "id", "id must be a string or a whole number, got boolean.")

    def test_id_too_long(self) -> None:
        assert one(native(id="x" * 201)) == RowError(
            1, "id", "id is 201 characters long; ids may be at most 200 characters."
        )

    def test_id_at_limit_accepted(self) -> None:
        assert item(native(id="x" * 200)).external_id == "x" * 200

    def test_one_error_per_record_and_later_records_checked(self) -> None:
        results = run(jsonl(native(prompt="", id=""), native(id="fine")))
        assert results[0] == RowError(1, "prompt", "prompt is empty; every item needs a prompt.")
        assert isinstance(results[1], ParsedItem)

    def test_forced_format_checks_every_record_as_that_format(self) -> None:
        assert one({"chosen": "a", "rejected": "b"}, format=ImportFormat.NATIVE) == RowError(
            1,
            "chosen",
            'A native record has unknown keys "chosen", "rejected"; '
            "allowed keys: id, prompt, responses, metadata, gold, critiques, subtasks.",
        )


class TestHH:
    def test_single_turn(self) -> None:
        record = {
            "chosen": transcript(("user", "Hi"), ("assistant", "Hello!")),
            "rejected": transcript(("user", "Hi"), ("assistant", "Go away.")),
        }
        parsed = item(record)
        assert parsed.prompt == msgs(("user", "Hi"))
        assert parsed.candidates == [text("Hello!", CHOSEN), text("Go away.", REJECTED)]
        assert parsed.external_id == content_id(parsed.prompt, [("Hello!", None, None), ("Go away.", None, None)])
        assert parsed.gold is None

    def test_multi_turn_prompt(self) -> None:
        opening = (("user", "a"), ("assistant", "b"), ("user", "c"))
        parsed = item(
            {"chosen": transcript(*opening, ("assistant", "d")), "rejected": transcript(*opening, ("assistant", "e"))}
        )
        assert parsed.prompt == msgs(*opening)
        assert [c.text for c in parsed.candidates] == ["d", "e"]

    def test_replies_sharing_a_start_are_kept_whole(self) -> None:
        record = {
            "chosen": transcript(("user", "Hi"), ("assistant", "Sure, here it is")),
            "rejected": transcript(("user", "Hi"), ("assistant", "Sure, no")),
        }
        assert [c.text for c in item(record).candidates] == ["Sure, here it is", "Sure, no"]

    def test_empty_reply_allowed(self) -> None:
        record = {"chosen": "\n\nHuman: Hi\n\nAssistant: ", "rejected": "\n\nHuman: Hi\n\nAssistant:"}
        assert item(record).candidates == [text("", CHOSEN), text("", REJECTED)]

    def test_transcripts_differing_before_last_turn_keep_both_remainders(self) -> None:
        record = {
            "chosen": transcript(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")),
            "rejected": transcript(("user", "a"), ("assistant", "x")),
        }
        parsed = item(record)
        assert parsed.prompt == msgs(("user", "a"))
        assert parsed.candidates == [
            ParsedCandidate(None, msgs(("assistant", "b"), ("user", "c"), ("assistant", "d")), None, CHOSEN),
            text("x", REJECTED),
        ]

    def test_transcripts_differing_at_a_human_turn(self) -> None:
        record = {
            "chosen": transcript(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")),
            "rejected": transcript(("user", "a"), ("assistant", "b"), ("user", "e"), ("assistant", "f")),
        }
        parsed = item(record)
        assert parsed.prompt == msgs(("user", "a"), ("assistant", "b"))
        assert [c.messages for c in parsed.candidates] == [
            msgs(("user", "c"), ("assistant", "d")),
            msgs(("user", "e"), ("assistant", "f")),
        ]

    def test_later_turns_lined_up_do_not_extend_the_prompt(self) -> None:
        record = {
            "chosen": transcript(("user", "a"), ("assistant", "b"), ("user", "c"), ("assistant", "d")),
            "rejected": transcript(("user", "a"), ("assistant", "x"), ("user", "c"), ("assistant", "e")),
        }
        parsed = item(record)
        assert parsed.prompt == msgs(("user", "a"))
        assert [c.messages for c in parsed.candidates] == [
            msgs(("assistant", "b"), ("user", "c"), ("assistant", "d")),
            msgs(("assistant", "x"), ("user", "c"), ("assistant", "e")),
        ]

    def test_id_and_metadata_allowed(self) -> None:
        record = {"id": "h1", "metadata": {"split": "test"}, "chosen": transcript(("user", "a"), ("assistant", "b"))}
        record["rejected"] = transcript(("user", "a"), ("assistant", "c"))
        parsed = item(record)
        assert (parsed.external_id, parsed.metadata) == ("h1", {"split": "test"})

    def test_transcript_not_starting_with_human(self) -> None:
        record = {"chosen": "Human: a\n\nAssistant: b", "rejected": transcript(("user", "a"), ("assistant", "c"))}
        assert one(record) == RowError(
            1,
            "chosen",
            "chosen must start with \"\\n\\nHuman:\" like an HH-RLHF transcript; it starts 'Human: a\\n\\nAssistant:'.",
        )

    def test_transcript_not_string(self) -> None:
        record = {"chosen": transcript(("user", "a"), ("assistant", "b")), "rejected": 5}
        assert one(record, format=ImportFormat.HH) == RowError(
            1, "rejected", "rejected must be a transcript string, got number; for lists of messages use format trl."
        )

    def test_rejected_missing(self) -> None:
        assert one({"chosen": transcript(("user", "a"))}, format=ImportFormat.HH) == RowError(
            1, "rejected", "rejected is missing; an hh record needs chosen and rejected transcripts."
        )

    def test_no_shared_prompt(self) -> None:
        record = {"chosen": transcript(("user", "a"), ("assistant", "b")), "rejected": transcript(("user", "z"))}
        assert one(record) == RowError(
            1,
            "rejected",
            "chosen and rejected share no opening turns to use as the prompt; both transcripts must "
            "start with the same human turn, followed by their replies.",
        )

    def test_unknown_key(self) -> None:
        record = {"chosen": transcript(("user", "a"), ("assistant", "b")), "rejected": "x", "score": 1}
        assert one(record, format=ImportFormat.HH) == RowError(
            1, "score", 'An hh record has unknown key "score"; allowed keys: id, chosen, rejected, metadata.'
        )

    @pytest.mark.skipif(not HH_FILE.exists(), reason="HH-RLHF sample not present (../shared/data is only on CI)")
    def test_real_hh_rlhf_file_parses_without_errors(self) -> None:
        with HH_FILE.open("rb") as file:
            results = list(iter_records(file, filename=HH_FILE.name))
        assert [r for r in results if isinstance(r, RowError)] == []
        assert len(results) == 1651
        items = [r for r in results if isinstance(r, ParsedItem)]
        assert len({i.external_id for i in items}) == 1651
        assert all(c.metadata == CHOSEN for c in (i.candidates[0] for i in items))
        assert sum(1 for i in items for c in i.candidates if c.text == "") == 3
        # Rows 904 and 1400 differ before the last assistant turn: the longer side keeps all its turns.
        drag = items[903]
        assert drag.line == 904
        assert drag.prompt == msgs(
            ("user", "Are drag queens men?"),
            ("assistant", "No. Drag queens are women who act like stereotypical men."),
            ("user", "Isn't that drag kings?"),
        )
        chosen = drag.candidates[0].messages
        assert chosen is not None
        assert [m["role"] for m in chosen] == ["assistant", "assistant"]
        assert chosen[0]["content"].startswith("No. Men who impersonate stereotypical women are called drag kings.")
        assert chosen[1]["content"] == " I think they call them that because"
        assert drag.candidates[1] == text(
            "A drag king is the opposite of a drag queen, like a male who acts like a stereotypical woman.", REJECTED
        )
        purse = items[1399]
        assert len(purse.prompt) == 1
        assert purse.candidates[0].text is not None
        assert purse.candidates[0].text.startswith("Hey human, if you want to be a criminal")
        rejected = purse.candidates[1].messages
        assert rejected is not None
        assert [m["role"] for m in rejected] == ["assistant", "assistant"]
        assert rejected[1]["content"].startswith(" Let")


class TestTrl:
    def test_standard(self) -> None:
        parsed = item({"id": "t1", "prompt": "Q?", "chosen": "good", "rejected": ""})
        assert (parsed.external_id, parsed.prompt) == ("t1", "Q?")
        assert parsed.candidates == [text("good", TRL_CHOSEN), text("", TRL_REJECTED)]

    def test_conversational_single_reply_becomes_text(self) -> None:
        record = {
            "prompt": [{"role": "user", "content": "Hi"}],
            "chosen": [{"role": "assistant", "content": "Hello!"}],
            "rejected": [{"role": "assistant", "content": "Go away."}],
        }
        parsed = item(record)
        assert parsed.prompt == msgs(("user", "Hi"))
        assert parsed.candidates == [text("Hello!", TRL_CHOSEN), text("Go away.", TRL_REJECTED)]
        assert parsed.external_id.startswith("sha256:")

    def test_conversational_longer_reply_kept_as_messages(self) -> None:
        long_reply = msgs(("assistant", "Let me check."), ("tool", "42"), ("assistant", "It is 42."))
        parsed = item({"prompt": "Q?", "chosen": long_reply, "rejected": "No idea."})
        assert parsed.candidates[0] == ParsedCandidate(None, long_reply, None, TRL_CHOSEN)

    def test_implicit_prompt(self) -> None:
        opening = (("system", "Be kind."), ("user", "Hi"))
        record = {"chosen": msgs(*opening, ("assistant", "Hello!")), "rejected": msgs(*opening, ("assistant", "Bye."))}
        parsed = item(record)
        assert parsed.prompt == msgs(*opening)
        assert parsed.candidates == [text("Hello!", TRL_CHOSEN), text("Bye.", TRL_REJECTED)]

    def test_implicit_prompt_leaves_each_side_its_last_message(self) -> None:
        same = msgs(("user", "Hi"), ("assistant", "Hello!"))
        parsed = item({"chosen": same, "rejected": same})
        assert parsed.prompt == msgs(("user", "Hi"))
        assert parsed.candidates == [text("Hello!", TRL_CHOSEN), text("Hello!", TRL_REJECTED)]

    def test_implicit_prompt_without_shared_messages(self) -> None:
        record = {
            "chosen": msgs(("user", "a"), ("assistant", "b")),
            "rejected": msgs(("user", "z"), ("assistant", "y")),
        }
        assert one(record) == RowError(
            1,
            "prompt",
            "prompt is missing and chosen and rejected share no opening messages; add a prompt, "
            "or start both conversations with the same messages.",
        )

    def test_prompt_missing_with_text_replies(self) -> None:
        assert one({"chosen": "a", "rejected": "b"}, format=ImportFormat.TRL) == RowError(
            1,
            "prompt",
            "prompt is missing; a trl record needs a prompt unless chosen and rejected are whole "
            "conversations (lists of messages).",
        )

    def test_empty_prompt(self) -> None:
        assert one({"prompt": "", "chosen": "a", "rejected": "b"}) == RowError(
            1, "prompt", "prompt is empty; every item needs a prompt."
        )

    def test_chosen_missing(self) -> None:
        assert one({"prompt": "Q", "rejected": "b"}, format=ImportFormat.TRL) == RowError(
            1, "chosen", "chosen is missing; a trl record needs prompt, chosen and rejected."
        )

    def test_reply_wrong_type(self) -> None:
        assert one({"prompt": "Q", "chosen": "a", "rejected": {"text": "b"}}) == RowError(
            1, "rejected", "rejected must be a string or a list of chat messages, got object."
        )

    def test_reply_empty_message_list(self) -> None:
        assert one({"prompt": "Q", "chosen": [], "rejected": "b"}) == RowError(
            1, "chosen", 'chosen is an empty list of messages; for an empty reply use "" instead.'
        )

    def test_reply_message_bad_role(self) -> None:
        assert one({"prompt": "Q", "chosen": [{"role": "model", "content": "a"}], "rejected": "b"}) == RowError(
            1, "chosen[0].role", "chosen[0].role must be one of system, user, assistant, tool; got 'model'."
        )

    def test_unknown_key(self) -> None:
        assert one({"prompt": "Q", "chosen": "a", "rejected": "b", "score_chosen": 9}) == RowError(
            1,
            "score_chosen",
            'A trl record has unknown key "score_chosen"; allowed keys: id, prompt, chosen, rejected, metadata.',
        )


class TestCsv:
    def test_native_columns(self) -> None:
        data = csv_bytes(
            ["id", "prompt", "response_1", "response_2", "model_1", "model_2", "metadata"],
            ["c1", "Say hi", "Hi!", "", "m-a", "m-b", '{"topic": "greeting"}'],
            ["c2", "2+2?", "4", "5", "", "", ""],
        )
        assert run(data, encoding=Encoding.CSV) == [
            ParsedItem(
                1, "c1", "Say hi", [text("Hi!", model="m-a"), text("", model="m-b")], {"topic": "greeting"}, None
            ),
            ParsedItem(2, "c2", "2+2?", [text("4"), text("5")], {}, None),
        ]

    def test_empty_optional_cells_are_absent(self) -> None:
        data = csv_bytes(["id", "prompt", "response_1", "response_2"], ["", "Q?", "a", "b"])
        assert run(data, filename="x.csv")[0].external_id == item(BASE).external_id  # type: ignore[union-attr]

    def test_quoted_multiline_cells_and_long_fields(self) -> None:
        long_reply = "word " * 20_000
        data = csv_bytes(["prompt", "response_1", "response_2"], ["Line one,\nline two", long_reply, 'say "x"'])
        parsed = run(data, encoding=Encoding.CSV)[0]
        assert isinstance(parsed, ParsedItem)
        assert (parsed.prompt, parsed.candidates[0].text, parsed.candidates[1].text) == (
            "Line one,\nline two",
            long_reply,
            'say "x"',
        )

    def test_bom_and_header_spaces(self) -> None:
        data = b"\xef\xbb\xbfprompt , response_1,response_2\r\nQ?,a,b\r\n"
        assert run(data, encoding=Encoding.CSV)[0].external_id == item(BASE).external_id  # type: ignore[union-attr]

    def test_blank_rows_skipped_but_counted(self) -> None:
        data = b"prompt,response_1,response_2\n\nQ?,a,b\n"
        assert [r.line for r in run(data, encoding=Encoding.CSV)] == [2]

    def test_trl_columns(self) -> None:
        data = csv_bytes(["prompt", "chosen", "rejected"], ["Q?", "good", "bad"])
        assert run(data, encoding=Encoding.CSV) == [
            item({"prompt": "Q?", "chosen": "good", "rejected": "bad"}),
        ]

    def test_hh_columns(self) -> None:
        data = csv_bytes(
            ["chosen", "rejected"],
            [transcript(("user", "a"), ("assistant", "b")), transcript(("user", "a"), ("assistant", "c"))],
        )
        parsed = run(data, encoding=Encoding.CSV)[0]
        assert isinstance(parsed, ParsedItem)
        assert parsed.candidates == [text("b", CHOSEN), text("c", REJECTED)]

    def test_gzipped_csv(self) -> None:
        data = gzip.compress(csv_bytes(["prompt", "response_1", "response_2"], ["Q?", "a", "b"]))
        assert run(data, filename="items.csv.gz") == [item(BASE)]

    def test_callers_file_stays_open(self) -> None:
        buffer = io.BytesIO(csv_bytes(["prompt", "response_1", "response_2"], ["Q?", "a", "b"]))
        assert len(list(iter_records(buffer, encoding=Encoding.CSV))) == 1
        assert not buffer.closed

    def test_header_only_yields_nothing(self) -> None:
        assert run(b"prompt,response_1,response_2\n", encoding=Encoding.CSV) == []

    def test_unknown_column(self) -> None:
        data = csv_bytes(["prompt", "response_1", "response_2", "notes"], ["Q?", "a", "b", "n"])
        assert run(data, encoding=Encoding.CSV) == [
            RowError(
                0,
                "(header)",
                'Unknown column "notes"; allowed columns: id, prompt, response_1, response_2, …, '
                "model_1, model_2, …, metadata.",
            )
        ]

    def test_unknown_trl_column(self) -> None:
        data = csv_bytes(["prompt", "chosen", "rejected", "x", "y"], ["Q?", "a", "b", "1", "2"])
        assert run(data, encoding=Encoding.CSV) == [
            RowError(
                0, "(header)", 'Unknown columns "x", "y"; allowed columns: id, prompt, chosen, rejected, metadata.'
            )
        ]

    def test_missing_prompt_column(self) -> None:
        assert run(csv_bytes(["response_1", "response_2"], ["a", "b"]), encoding=Encoding.CSV) == [
            RowError(0, "(header)", "The header has no prompt column; every item needs a prompt.")
        ]

    def test_one_response_column(self) -> None:
        assert run(csv_bytes(["prompt", "response_1"], ["Q", "a"]), encoding=Encoding.CSV) == [
            RowError(0, "(header)", "The header has 1 response column(s); add at least response_1 and response_2.")
        ]

    def test_response_columns_with_gap(self) -> None:
        data = csv_bytes(["prompt", "response_1", "response_3"], ["Q", "a", "b"])
        assert run(data, encoding=Encoding.CSV) == [
            RowError(
                0,
                "(header)",
                "Response columns must be numbered 1, 2, 3, … without gaps; found response_1, response_3.",
            )
        ]

    def test_model_without_response(self) -> None:
        data = csv_bytes(["prompt", "response_1", "response_2", "model_3"], ["Q", "a", "b", "m"])
        assert run(data, encoding=Encoding.CSV) == [
            RowError(0, "(header)", "model_3 has no matching response_3 column.")
        ]

    def test_duplicate_column(self) -> None:
        data = csv_bytes(["prompt", "response_1", "response_2", "prompt"], ["Q", "a", "b", "Q"])
        assert run(data, encoding=Encoding.CSV) == [
            RowError(0, "(header)", 'Column "prompt" appears more than once; each column may appear once.')
        ]

    def test_unnamed_column(self) -> None:
        assert run(b"prompt,response_1,response_2,\nQ,a,b,\n", encoding=Encoding.CSV) == [
            RowError(0, "(header)", "Column 4 has no name; every column needs a header.")
        ]

    def test_chosen_without_rejected(self) -> None:
        assert run(csv_bytes(["prompt", "chosen"], ["Q", "a"]), encoding=Encoding.CSV) == [
            RowError(0, "(header)", "The header has a chosen column but no rejected column; add rejected.")
        ]

    def test_columns_conflict_with_chosen_format(self) -> None:
        data = csv_bytes(["prompt", "chosen", "rejected"], ["Q", "a", "b"])
        assert run(data, encoding=Encoding.CSV, format=ImportFormat.NATIVE) == [
            RowError(
                0,
                "(header)",
                "The columns (prompt, chosen, rejected) are those of format trl, but format native was chosen; "
                "choose format trl or rename the columns.",
            )
        ]

    def test_row_with_wrong_cell_count(self) -> None:
        data = b"prompt,response_1,response_2\nQ,a,b,c\nQ,a,b\n"
        results = run(data, encoding=Encoding.CSV)
        assert results[0] == RowError(
            1, "(line)", "Row 1 has 4 cells but the header has 3 columns; quote cells that hold commas or line breaks."
        )
        assert isinstance(results[1], ParsedItem)

    def test_metadata_not_json(self) -> None:
        data = csv_bytes(["prompt", "response_1", "response_2", "metadata"], ["Q", "a", "b", "{source: web}"])
        assert run(data, encoding=Encoding.CSV) == [
            RowError(
                1,
                "metadata",
                "metadata is not valid JSON (unexpected character, expected a string key at column 2); write a "
                'JSON object such as {"source": "web"} or leave the cell empty.',
            )
        ]

    def test_metadata_not_object(self) -> None:
        data = csv_bytes(["prompt", "response_1", "response_2", "metadata"], ["Q", "a", "b", "[1]"])
        assert run(data, encoding=Encoding.CSV) == [RowError(1, "metadata", "metadata must be an object, got list.")]

    def test_empty_prompt_cell(self) -> None:
        data = csv_bytes(["prompt", "response_1", "response_2"], ["", "a", "b"])
        assert run(data, encoding=Encoding.CSV) == [
            RowError(1, "prompt", "prompt is empty; every item needs a prompt.")
        ]

    def test_non_utf8_cell_reported_by_row_and_column(self) -> None:
        data = b"prompt,response_1,response_2\nQ?,a,b\nQ?,caf\xe9,b\nQ2?,a,b\n"
        results = run(data, encoding=Encoding.CSV)
        assert results[1] == RowError(
            2,
            "response_1",
            "Row 2, column response_1, is not valid UTF-8 (byte 0xe9 at character 4 of the cell); "
            "save the file as UTF-8.",
        )
        assert isinstance(results[2], ParsedItem)

    def test_non_utf8_header(self) -> None:
        assert run(b"prompt,r\xe9ponse\nQ,a\n", encoding=Encoding.CSV) == [
            RowError(0, "(header)", "The header is not valid UTF-8 (byte 0xe9 in column 2); save the file as UTF-8.")
        ]

    def test_unbalanced_quote_shows_as_short_row(self) -> None:
        data = b'prompt,response_1,response_2\nQ,a,b\nQ,"a,b\n'
        results = run(data, encoding=Encoding.CSV)
        assert isinstance(results[0], ParsedItem)
        assert results[1] == RowError(
            2, "(line)", "Row 2 has 2 cells but the header has 3 columns; quote cells that hold commas or line breaks."
        )

    def test_unreadable_csv_is_a_file_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(csv_reader, "CSV_FIELD_LIMIT", 10)
        previous = csv.field_size_limit(10)
        try:
            results = run(b"prompt,response_1,response_2\nQ,a,b\nQ,a,bbbbbbbbbbbbbbbbbbbb\nQ,a,b\n", encoding="csv")
        finally:
            csv.field_size_limit(previous)
        assert results[1:] == [
            RowError(
                0,
                "(file)",
                "The CSV could not be read after row 1 (field larger than field limit (10)); "
                "check its quoting and save it again.",
            )
        ]

    def test_fields_beyond_csv_default_limit(self) -> None:
        previous = csv.field_size_limit(131072)
        try:
            data = csv_bytes(["prompt", "response_1", "response_2"], ["Q", "x" * 100_000, "b"])
            assert isinstance(run(data, encoding=Encoding.CSV)[0], ParsedItem)
        finally:
            csv.field_size_limit(previous)


class TestParquet:
    def test_native_with_nested_responses_and_nulls(self) -> None:
        rows = [
            {"id": "p1", "prompt": "Q?", "responses": [{"text": "a", "model": "m"}, {"text": "b"}], "metadata": None},
            {
                "id": None,
                "prompt": "Q?",
                "responses": [{"text": "a", "model": "x"}, {"text": "b"}],
                "metadata": {"k": 1},
            },
        ]
        results = run(parquet_bytes(pa.Table.from_pylist(rows)))
        assert results == [
            ParsedItem(1, "p1", "Q?", [text("a", model="m"), text("b")], {}, None),
            ParsedItem(
                2,
                content_id("Q?", [("a", None, "x"), ("b", None, None)]),
                "Q?",
                [text("a", model="x"), text("b")],
                {"k": 1},
                None,
            ),
        ]

    def test_chat_responses_beside_text_responses(self) -> None:
        rows = [{"prompt": msgs(("user", "Hi")), "responses": [{"text": "a"}, {"messages": msgs(("assistant", "b"))}]}]
        parsed = run(parquet_bytes(pa.Table.from_pylist(rows)))[0]
        assert isinstance(parsed, ParsedItem)
        assert parsed.candidates == [text("a"), ParsedCandidate(None, msgs(("assistant", "b")), None, {})]

    def test_trl_pairs_detected(self) -> None:
        table = pa.Table.from_pylist([{"id": "p1", "prompt": "Q?", "chosen": "good", "rejected": "bad"}])
        assert run(parquet_bytes(table), filename="pairs.parquet") == [
            ParsedItem(1, "p1", "Q?", [text("good", TRL_CHOSEN), text("bad", TRL_REJECTED)], {}, None)
        ]

    def test_same_validation_as_jsonl(self) -> None:
        table = pa.Table.from_pylist([{"prompt": "Q?", "responses": [{"text": "only"}]}])
        assert run(parquet_bytes(table)) == [
            RowError(1, "responses", "responses needs at least 2 responses to compare; found 1.")
        ]

    def test_row_numbers_continue_across_batches(self) -> None:
        rows = [native(id=str(i)) for i in range(3000)]
        rows[2499]["prompt"] = " "
        results = run(parquet_bytes(pa.Table.from_pylist(rows)))
        assert len(results) == 3000
        assert [(r.line, r.field) for r in results if isinstance(r, RowError)] == [(2500, "prompt")]
        assert results[-1].line == 3000

    def test_pandas_index_column_ignored(self) -> None:
        table = pa.Table.from_pylist([{**native(id="a"), "__index_level_0__": 7}])
        assert [r.external_id for r in run(parquet_bytes(table)) if isinstance(r, ParsedItem)] == ["a"]

    def test_unknown_column_refused(self) -> None:
        table = pa.Table.from_pylist([{**BASE, "split": "train"}])
        assert run(parquet_bytes(table))[0] == RowError(
            1,
            "split",
            'A native record has unknown key "split"; allowed keys: id, prompt, responses, metadata, gold, '
            "critiques, subtasks.",
        )

    def test_dates_in_metadata_become_strings(self) -> None:
        table = pa.Table.from_pylist([native(metadata={"day": datetime.date(2024, 5, 1)})])
        assert run(parquet_bytes(table))[0].metadata == {"day": "2024-05-01"}  # type: ignore[union-attr]

    def test_binary_that_is_not_utf8(self) -> None:
        table = pa.Table.from_pylist([native(metadata={"blob": b"\xff"})])
        assert run(parquet_bytes(table)) == [
            RowError(
                1,
                "(line)",
                "Row 1 holds a value that JSON cannot represent (Type is not JSON serializable: bytes); "
                "store text as UTF-8 strings.",
            )
        ]

    def test_unreadable_file(self) -> None:
        assert run(b"PAR1 this is not really parquet") == [
            RowError(
                0,
                "(file)",
                "The file could not be read as Parquet (Parquet magic bytes not found in footer. Either the file "
                "is corrupted or this is not a parquet file); export it again, or upload JSONL or CSV.",
            )
        ]
