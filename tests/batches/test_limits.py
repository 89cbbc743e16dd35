"""What one upload may expand to, checked while it streams (pure: no database).

Each limit is tested with a small `ImportLimits` so the files stay small; the defaults are
tested against real data (an HH-RLHF file, 10,000-character replies).
"""

import gzip
import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from server.batches.formats import ImportLimits, ParsedItem, RowError, iter_records
from server.batches.formats.parquet_reader import value_bytes
from server.batches.service import import_limits
from server.config import Settings
from tests.batches.test_formats import BASE, HH_FILE, csv_bytes, jsonl, native

SMALL = ImportLimits(
    decompressed_bytes=10_000,
    line_bytes=1_000,
    text_chars=100,
    messages=3,
    candidates=3,
    items=5,
    parquet_row_group_bytes=50_000,
)


def run(data: bytes, limits: ImportLimits = SMALL, **kwargs: Any) -> list[ParsedItem | RowError]:
    return list(iter_records(io.BytesIO(data), limits=limits, **kwargs))


def errors(data: bytes, **kwargs: Any) -> list[RowError]:
    return [r for r in run(data, **kwargs) if isinstance(r, RowError)]


def parquet(table: pa.Table, **options: Any) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **options)
    return buffer.getvalue()


class TestDefaults:
    def test_settings_and_parser_defaults_agree(self) -> None:
        assert import_limits(Settings()) == ImportLimits()

    def test_long_replies_pass(self) -> None:
        reply = "word " * 2_000  # 10,000 characters
        record = native(prompt="p" * 10_000, responses=[{"text": reply} for _ in range(16)])
        assert isinstance(run(jsonl(record), limits=ImportLimits())[0], ParsedItem)

    @pytest.mark.skipif(not HH_FILE.exists(), reason="HH-RLHF sample not present (../shared/data is only on CI)")
    def test_hh_rlhf_file_passes(self) -> None:
        results = run(HH_FILE.read_bytes(), limits=ImportLimits())
        assert [r for r in results if isinstance(r, RowError)] == []
        assert len(results) == 1651


class TestPerItem:
    def test_text_too_long(self) -> None:
        assert errors(jsonl(native(prompt="x" * 101))) == [
            RowError(
                1,
                "prompt",
                "prompt is 101 characters long; a prompt or reply may be at most 100 characters "
                "(ASSAY_UPLOAD_MAX_TEXT_CHARS).",
            )
        ]

    def test_messages_count_together(self) -> None:
        reply = [{"role": "assistant", "content": "x" * 60}, {"role": "assistant", "content": "y" * 41}]
        assert errors(jsonl(native(responses=[{"text": "a"}, {"messages": reply}]))) == [
            RowError(
                1,
                "responses[1].messages",
                "responses[1].messages is 101 characters long; a prompt or reply may be at most 100 characters "
                "(ASSAY_UPLOAD_MAX_TEXT_CHARS).",
            )
        ]

    def test_too_many_messages(self) -> None:
        prompt = [{"role": "user", "content": "hi"}] * 4
        assert errors(jsonl(native(prompt=prompt)))[0].message == (
            "prompt has 4 messages; at most 3 are allowed (ASSAY_UPLOAD_MAX_MESSAGES)."
        )

    def test_too_many_candidates(self) -> None:
        record = native(responses=[{"text": str(i)} for i in range(4)])
        assert errors(jsonl(record)) == [
            RowError(
                1,
                "responses",
                "responses has 4 responses; an item may have at most 3 (ASSAY_UPLOAD_MAX_CANDIDATES).",
            )
        ]

    def test_hh_reply_too_long(self) -> None:
        record = {"chosen": "\n\nHuman: hi\n\nAssistant: " + "x" * 101, "rejected": "\n\nHuman: hi\n\nAssistant: no"}
        assert [(e.field, e.line) for e in errors(jsonl(record))] == [("chosen", 1)]

    @pytest.mark.parametrize(
        ("record", "field"),
        [
            (native(prompt="a\x00b"), "prompt"),
            (native(responses=[{"text": "a"}, {"text": "b\x00"}]), "responses[1].text"),
            (native(responses=[{"text": "a", "model": "m\x00"}, {"text": "b"}]), "responses[0].model"),
            (native(id="x\x00"), "id"),
            (native(metadata={"k": ["ok", {"deep": "\x00"}]}), "metadata"),
            (native(metadata={"k\x00": 1}), "metadata"),
            (native(gold={"preferred": 0, "explanation": "\x00"}), "gold"),
            (native(prompt=[{"role": "user", "content": "\x00"}]), "prompt[0].content"),
        ],
    )
    def test_nul_refused_where_it_would_be_stored(self, record: dict[str, Any], field: str) -> None:
        assert errors(jsonl(record)) == [
            RowError(1, field, f"{field} contains a NUL character (\\u0000), which cannot be stored; remove it.")
        ]

    def test_nul_byte_in_csv_cell(self) -> None:
        data = b"prompt,response_1,response_2\nQ\x00,a,b\n"
        assert [(e.line, e.field) for e in errors(data, encoding="csv")] == [(1, "prompt")]

    def test_metadata_nested_too_deep(self) -> None:
        deep: Any = 1
        for _ in range(40):
            deep = {"a": deep}
        big = ImportLimits(line_bytes=10_000)
        assert errors(jsonl(native(metadata=deep)), limits=big) == [
            RowError(1, "metadata", "metadata is nested more than 32 levels deep; flatten it.")
        ]

    def test_model_name_too_long(self) -> None:
        record = native(responses=[{"text": "a", "model": "m" * 201}, {"text": "b"}])
        assert errors(jsonl(record), limits=ImportLimits())[0].message == (
            "responses[0].model is 201 characters long; at most 200 are allowed."
        )

    def test_long_values_are_quoted_by_a_prefix(self) -> None:
        record = native(prompt=[{"role": "r" * 500, "content": "hi"}])
        message = errors(jsonl(record), limits=ImportLimits())[0].message
        assert message == (
            f"prompt[0].role must be one of system, user, assistant, tool; got {'r' * 40!r}… (500 characters)."
        )

    def test_unknown_keys_are_listed_briefly(self) -> None:
        record = {**BASE, **{f"{'k' * 100}{i}": 1 for i in range(8)}}
        error = errors(jsonl(record), limits=ImportLimits())[0]
        assert error.field == "k" * 40
        assert error.message.startswith(f'A native record has unknown keys "{"k" * 40}", ')
        assert " and 3 more; allowed keys: " in error.message


class TestPerFile:
    def test_long_line_stops_the_file_before_reading_it(self) -> None:
        data = jsonl(native()) + b'{"prompt": "' + b"x" * 5_000
        results = run(data)
        assert results[-1] == RowError(
            2,
            "(file)",
            "Line 2 is longer than 1,000 bytes, the limit for one line (ASSAY_UPLOAD_MAX_LINE_BYTES); "
            "each line must be one item.",
            too_large=True,
        )

    def test_line_of_exactly_the_limit_passes(self) -> None:
        line = jsonl(native(prompt="p" * 50))
        limits = ImportLimits(line_bytes=len(line) - 1)  # the newline is not part of the line's limit
        assert isinstance(run(line, limits=limits)[0], ParsedItem)

    def test_gzip_bomb_stops_at_the_decompressed_limit(self) -> None:
        bomb = gzip.compress(jsonl(*[native(id=str(i)) for i in range(4)]) + b"\n" * 50_000)
        results = run(bomb)
        assert results[-1] == RowError(
            0,
            "(file)",
            "The file expands to more than 10,000 bytes, the limit for one upload "
            "(ASSAY_UPLOAD_MAX_DECOMPRESSED_BYTES); split it into several batches.",
            too_large=True,
        )

    def test_too_many_items(self) -> None:
        results = run(jsonl(*[native(id=str(i)) for i in range(7)]))
        assert len(results) == 6
        assert results[-1] == RowError(
            6,
            "(file)",
            "The file holds more than 5 items, the limit for one upload (ASSAY_UPLOAD_MAX_ITEMS); "
            "split it into several batches.",
            too_large=True,
        )

    def test_csv_row_spanning_lines_is_bounded(self) -> None:
        data = csv_bytes(["prompt", "response_1", "response_2"], ["Q", "line\n" * 300, "b"])
        assert run(data, encoding="csv")[-1] == RowError(
            1,
            "(file)",
            "Row 1 is longer than 1,000 characters, the limit for one row (ASSAY_UPLOAD_MAX_LINE_BYTES); "
            "each row must be one item.",
            too_large=True,
        )

    def test_csv_column_number_too_long_to_read(self) -> None:
        header = "prompt,response_1,response_2,response_" + "9" * 5_000
        error = errors(header.encode() + b"\nQ,a,b,c\n", encoding="csv", limits=ImportLimits())[0]
        assert error.message.startswith('Unknown column "response_99999')


class TestParquet:
    def test_dictionary_bomb_is_read_without_expanding(self) -> None:
        """One 300 kB value repeated: a few hundred bytes on disk, each row measured before it is built."""
        rows = 200
        big = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array(["x" * 300_000]))
        responses = pa.array([[{"text": "a"}, {"text": "b"}]] * rows, pa.list_(pa.struct([("text", pa.string())])))
        table = pa.Table.from_arrays([big, responses], names=["prompt", "responses"])
        data = parquet(table, compression="zstd", store_schema=False)  # the schema says string, not dictionary
        assert len(data) < 2_000
        limits = ImportLimits(line_bytes=400_000, decompressed_bytes=1_000_000, text_chars=1_000_000)
        # Rows are measured before any is built: the fourth passes 1 MB, so none is.
        assert run(data, limits=limits) == [
            RowError(
                0,
                "(file)",
                "The file expands to more than 1,000,000 bytes (at least 1,200,200), the limit for one upload "
                "(ASSAY_UPLOAD_MAX_DECOMPRESSED_BYTES); split it into several batches.",
                too_large=True,
            )
        ]

    def test_row_too_large(self) -> None:
        table = pa.Table.from_pylist([native(prompt="x" * 2_000)])
        assert run(parquet(table))[-1] == RowError(
            1,
            "(file)",
            "Row 1 holds 2,050 bytes of data; a row may hold at most 1,000 (ASSAY_UPLOAD_MAX_LINE_BYTES).",
            too_large=True,
        )

    def test_row_count_checked_in_the_footer(self) -> None:
        table = pa.Table.from_pylist([native(id=str(i)) for i in range(6)])
        assert run(parquet(table)) == [
            RowError(
                0,
                "(file)",
                "The file holds 6 rows, more than the 5 items one upload may hold (ASSAY_UPLOAD_MAX_ITEMS); "
                "split it into several batches.",
                too_large=True,
            )
        ]

    def test_row_group_size_checked_in_the_footer(self) -> None:
        table = pa.Table.from_pylist([native(id=str(i), prompt=f"{i}" + "x" * 20_000) for i in range(3)])
        error = run(parquet(table, compression="zstd"), limits=ImportLimits(parquet_row_group_bytes=50_000))[0]
        assert isinstance(error, RowError)
        assert error.too_large
        assert error.message.startswith("Row group 1 of the Parquet file holds ")
        assert error.message.endswith(
            "bytes uncompressed, more than the 50,000 allowed (ASSAY_UPLOAD_MAX_PARQUET_ROW_GROUP_BYTES); "
            "write it with smaller row groups (row_group_size)."
        )

    def test_gzipped_parquet_is_bounded_while_unpacking(self) -> None:
        table = pa.Table.from_pylist([native(id=str(i), prompt="x" * 90) for i in range(5)])
        data = gzip.compress(parquet(table, compression="none"))
        assert run(data, limits=ImportLimits(decompressed_bytes=1_000))[-1].message.startswith(  # type: ignore[union-attr]
            "The file expands to more than 1,000 bytes"
        )
        assert len([r for r in run(data, limits=ImportLimits()) if isinstance(r, ParsedItem)]) == 5

    def test_value_bytes_of_nested_columns(self) -> None:
        prompts = pa.array([[{"role": "user", "content": "abc"}], None, []])
        # per row: a list (16) of one struct (16) holding "user" (4) and "abc" (3); a null list; an empty one
        assert value_bytes(prompts).tolist() == [39, 16, 16]
        texts = pa.array(["ab", None, "abcd"]).dictionary_encode()
        assert value_bytes(texts).tolist() == [2, 0, 4]
