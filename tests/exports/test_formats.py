"""The pure row builders: pairs from judgments, the item aggregate, and each format's shape."""

from typing import Any

import pytest

from server.exports.formats import (
    ExportFormat,
    Pair,
    Renderer,
    aggregate_item,
    hh_transcript,
    item_pairs,
    judgment_pairs,
)

A = {"id": "a", "text": "Paris.", "messages": None}
B = {"id": "b", "text": "Lyon.", "messages": None}
C = {"id": "c", "text": "Nice.", "messages": None}
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]


def judgment(**fields: Any) -> dict[str, Any]:
    return {"prompt": "Capital of France?", "candidates": [A, B], "choice_id": None, "ranking": None} | fields


class TestPairs:
    def test_choice_prefers_it_over_every_other_candidate(self) -> None:
        pairs = judgment_pairs(judgment(choice_id="b", strength=3))
        assert [(p.chosen["id"], p.rejected["id"], p.margin) for p in pairs] == [("b", "a", 2.0)]

    def test_ranking_gives_every_ordered_pair(self) -> None:
        pairs = judgment_pairs(judgment(candidates=[A, B, C], ranking=["c", "a", "b"]))
        assert [(p.chosen["id"], p.rejected["id"]) for p in pairs] == [("c", "a"), ("c", "b"), ("a", "b")]

    def test_tie_and_both_bad_without_choice_give_none(self) -> None:
        assert judgment_pairs(judgment(tie=True)) == []
        assert judgment_pairs(judgment(both_bad=True)) == []


class TestAggregate:
    def test_majority_with_agreement_and_mean_margin(self) -> None:
        votes = [
            {"choice_id": "a", "strength": 4},
            {"choice_id": "a", "strength": 2},
            {"choice_id": "b", "strength": 1},
        ]
        aggregate = aggregate_item([A, B], votes)
        (pair,) = aggregate.pairs
        assert (pair.chosen, pair.rejected, pair.votes_for, pair.votes_against) == ("a", "b", 2, 1)
        assert pair.agreement == pytest.approx(2 / 3)
        assert pair.margin == pytest.approx(2.0)  # mean of (4-1, 2-1)

    def test_split_vote_has_no_majority_pair(self) -> None:
        aggregate = aggregate_item([A, B], [{"choice_id": "a"}, {"choice_id": "b"}])
        assert aggregate.pairs == []
        assert len(aggregate.all_votes) == 1  # still reported in raw

    def test_ties_count_against_agreement(self) -> None:
        aggregate = aggregate_item([A, B], [{"choice_id": "a"}, {"tie": True}, {"choice_id": "a"}])
        assert aggregate.pairs[0].agreement == pytest.approx(2 / 3)
        assert aggregate.ties == 1

    def test_min_agreement_drops_weak_pairs(self) -> None:
        row = {"prompt": "q", "candidates": [A, B]}
        aggregate = aggregate_item([A, B], [{"choice_id": "a"}, {"choice_id": "a"}, {"choice_id": "b"}])
        assert len(item_pairs(row, aggregate, min_agreement=0.6)) == 1
        assert item_pairs(row, aggregate, min_agreement=0.7) == []


class TestTrl:
    def test_text_prompt_gets_the_separator_trl_will_not_add(self) -> None:
        row = Renderer(ExportFormat.trl, chat=False).rows(Pair("Capital of France?", A, B))[0]
        assert row == {"prompt": "Capital of France?\n\n", "chosen": "Paris.", "rejected": "Lyon."}

    @pytest.mark.parametrize(
        ("prompt", "chosen", "rejected"),
        [("Q:\n", "x", "y"), ("\n\nHuman: hi\n\nAssistant:", " hello", " hey")],
    )
    def test_no_separator_when_the_text_already_has_one(self, prompt: str, chosen: str, rejected: str) -> None:
        pair = Pair(prompt, {"id": "1", "text": chosen}, {"id": "2", "text": rejected})
        assert Renderer(ExportFormat.trl, chat=False).rows(pair)[0]["prompt"] == prompt

    def test_chat_export_turns_text_into_messages(self) -> None:
        row = Renderer(ExportFormat.trl, chat=True).rows(Pair("Capital of France?", A, B))[0]
        assert row["prompt"] == [{"role": "user", "content": "Capital of France?"}]
        assert row["chosen"] == [{"role": "assistant", "content": "Paris."}]

    def test_margin_is_in_every_row_when_asked(self) -> None:
        renderer = Renderer(ExportFormat.trl, chat=False, margin=True)
        assert renderer.rows(Pair("q", A, B, margin=3.0))[0]["margin"] == 3.0
        assert renderer.rows(Pair("q", A, B, margin=None))[0]["margin"] == 0.0
        assert "margin" not in Renderer(ExportFormat.trl, chat=False).rows(Pair("q", A, B, margin=3.0))[0]


class TestOtherFormats:
    def test_unpaired_labels_each_side(self) -> None:
        rows = Renderer(ExportFormat.trl_unpaired, chat=False).rows(Pair("q", A, B))
        assert [(r["completion"], r["label"]) for r in rows] == [("Paris.", True), ("Lyon.", False)]

    def test_unpaired_both_bad_labels_every_candidate_false(self) -> None:
        rows = Renderer(ExportFormat.trl_unpaired, chat=True).both_bad_rows(CHAT, [A, B])
        assert [r["label"] for r in rows] == [False, False]
        assert Renderer(ExportFormat.trl, chat=True).both_bad_rows(CHAT, [A, B]) == []

    def test_openai_preference_shape(self) -> None:
        (row,) = Renderer(ExportFormat.openai, chat=True).rows(Pair(CHAT, A, B))
        assert row == {
            "input": {"messages": CHAT},
            "preferred_output": [{"role": "assistant", "content": "Paris."}],
            "non_preferred_output": [{"role": "assistant", "content": "Lyon."}],
        }

    def test_hh_transcripts(self) -> None:
        assert hh_transcript(CHAT, A) == "\n\nSystem: Be brief.\n\nHuman: Capital of France?\n\nAssistant: Paris."
        assert hh_transcript("Hi", B) == "\n\nHuman: Hi\n\nAssistant: Lyon."
        assert hh_transcript("\n\nHuman: Hi\n\nAssistant:", B) == "\n\nHuman: Hi\n\nAssistant: Lyon."
        reply = {"id": "m", "messages": [{"role": "assistant", "content": "Sure."}, {"role": "user", "content": "Ok"}]}
        assert hh_transcript("Hi", reply) == "\n\nHuman: Hi\n\nAssistant: Sure.\n\nHuman: Ok"
