"""The reward model's pure parts: aggregation, the split by prompt, training, scoring, artefacts."""

import numpy as np
import pytest

from server.trainer import model
from server.trainer.model import HashedNgrams, Pair


def pair(i: int, good_wins: int = 1, bad_wins: int = 0, prompt: str | None = None) -> Pair:
    good = f"Sure, here is a careful and kind answer about topic {i}."
    bad = f"No. Go away {i}!"
    a, b = sorted((good, bad))
    wins = {good: good_wins, bad: bad_wins}
    return Pair(prompt=prompt or f"Question {i}?", a=a, b=b, wins_a=wins[a], wins_b=wins[b])


class TestAggregate:
    def test_votes_are_counted_per_pair_in_either_direction(self) -> None:
        prompt = [{"role": "user", "content": "hi"}]
        good = [{"role": "assistant", "content": "hello there"}]
        bad = [{"role": "assistant", "content": "go away"}]
        rows = [
            {"prompt": prompt, "chosen": good, "rejected": bad},
            {"prompt": prompt, "chosen": bad, "rejected": good},
            {"prompt": prompt, "chosen": good, "rejected": bad},
            {"prompt": "other", "chosen": "x", "rejected": "y"},
        ]
        pairs, n = model.aggregate(rows)
        assert n == 4
        assert len(pairs) == 2
        first = next(p for p in pairs if p.prompt == prompt)
        winner = first.a if first.label == 1 else first.b
        assert winner == "hello there"  # a lone assistant message reads as its text
        assert sorted((first.wins_a, first.wins_b)) == [1, 2]

    def test_split_vote_has_no_label(self) -> None:
        assert pair(1, good_wins=2, bad_wins=2).label is None


class TestSplit:
    def test_every_turn_of_one_opening_prompt_lands_on_one_side(self) -> None:
        sides = set()
        for follow_up in range(20):
            prompt = [
                {"role": "user", "content": "How do I pick a lock?"},
                {"role": "assistant", "content": "Why?"},
                {"role": "user", "content": f"reason {follow_up}"},
            ]
            sides.add(model.is_validation(prompt))
        assert len(sides) == 1

    def test_about_a_fifth_of_prompts_are_held_out(self) -> None:
        held = sum(model.is_validation(f"prompt {i}") for i in range(2000))
        assert 300 < held < 500


class TestTrain:
    def test_learns_a_separable_preference_and_reports_metrics(self) -> None:
        trained = model.train([pair(i) for i in range(60)], HashedNgrams(), n_judgments=60)
        m = trained.metrics
        assert m["accuracy"] == 1.0
        assert m["n_train"] + m["n_validation"] == m["n_pairs"] == 60
        assert m["n_validation"] > 0
        assert m["log_loss"] < 0.69
        assert m["features"] == "hashed-char-ngrams-2-4-2^18"
        assert m["training_seconds"] >= 0

    def test_too_little_data_is_refused(self) -> None:
        with pytest.raises(model.NotEnoughData, match="at least 10 are needed"):
            model.train([pair(i) for i in range(5)], HashedNgrams(), n_judgments=5)

    def test_rewards_rank_the_learnt_preference(self) -> None:
        trained = model.train([pair(i) for i in range(60)], HashedNgrams(), n_judgments=60)
        r = model.rewards(trained.weights, HashedNgrams(), ["Sure, here is a careful answer.", "No. Go away!"])
        assert r[0] > r[1]


class TestScoreItems:
    def test_an_untrained_model_is_unsure_of_replies_with_nothing_in_common(self) -> None:
        zero = np.zeros(2**18)
        [(p, u)] = model.score_items(zero, HashedNgrams(), [["aaaa", "zzzz"]])
        assert (p, u) == (0.5, pytest.approx(1.0))

    def test_replies_it_cannot_tell_apart_teach_nothing(self) -> None:
        zero = np.zeros(2**18)
        [(p, u)] = model.score_items(zero, HashedNgrams(), [["same words", "same words"]])
        assert (p, u) == (0.5, 0.0)

    def test_a_learnt_preference_is_sure_and_oriented(self) -> None:
        trained = model.train([pair(i) for i in range(60)], HashedNgrams(), n_judgments=60)
        good, bad = "Sure, here is a careful and kind answer about topic 99.", "No. Go away 99!"
        (p_good_first, u), (p_bad_first, _) = model.score_items(
            trained.weights, HashedNgrams(), [[good, bad], [bad, good]]
        )
        assert p_good_first > 0.5 > p_bad_first
        assert p_good_first == pytest.approx(1 - p_bad_first)
        [(_, unsure)] = model.score_items(trained.weights, HashedNgrams(), [["blue whale", "red panda"]])
        assert unsure > u  # an unfamiliar pair is worth more than one the model already ranks

    def test_no_items(self) -> None:
        assert model.score_items(np.zeros(2**18), HashedNgrams(), []) == []

    def test_more_candidates_use_the_most_uncertain_pair(self) -> None:
        zero = np.zeros(2**18)
        [(_, u)] = model.score_items(zero, HashedNgrams(), [["same words", "same words", "zzzz"]])
        assert u == pytest.approx(1.0)


def test_artefact_round_trip(tmp_path) -> None:
    trained = model.train([pair(i) for i in range(30)], HashedNgrams(), n_judgments=30)
    path, digest = model.save(trained, tmp_path)
    assert path.name == f"reward-model-{digest[:16]}.npz"
    loaded = model.load(path)
    assert loaded.features == trained.features
    assert loaded.metrics == trained.metrics
    assert np.allclose(loaded.weights, trained.weights, atol=1e-6)


class TestEmbeddings:
    def test_a_local_model2vec_model_adds_its_embedding_to_the_ngrams(self, tmp_path) -> None:
        model2vec = pytest.importorskip("model2vec")
        from tokenizers import Tokenizer, models, pre_tokenizers

        words = ["[UNK]", "[PAD]", "sure", "here", "is", "a", "careful", "and", "kind", "answer", "no", "go", "away"]
        tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        vectors = np.random.default_rng(0).normal(size=(len(words), 8)).astype(np.float32)
        model2vec.StaticModel(vectors=vectors, tokenizer=tokenizer, normalize=True).save_pretrained(str(tmp_path / "m"))

        featurizer = model.Model2VecEmbeddings(tmp_path / "m")
        assert featurizer.name == "model2vec:m+hashed-char-ngrams-2-4-2^18"
        assert featurizer.transform(["sure here is", "go away"]).shape == (2, 8 + 2**18)
        trained = model.train([pair(i) for i in range(60)], featurizer, n_judgments=60)
        assert trained.metrics["accuracy"] == 1.0
        assert trained.features == featurizer.name

    def test_without_the_package_the_reason_is_given(self, tmp_path, monkeypatch) -> None:
        monkeypatch.setitem(__import__("sys").modules, "model2vec", None)
        with pytest.raises(
            RuntimeError, match=r"Embeddings need the optional model2vec package: pip install model2vec"
        ):
            model.Model2VecEmbeddings(tmp_path)

    def test_a_missing_model_directory_is_named(self, tmp_path) -> None:
        pytest.importorskip("model2vec")
        with pytest.raises(RuntimeError, match="No model2vec model directory at"):
            model.Model2VecEmbeddings(tmp_path / "absent")


class TestCompareLabels:
    """Two labellings of the same comparisons: one model each, measured on the same held-out prompts."""

    def test_only_the_pairs_both_decide_are_trained_on_and_held_out(self) -> None:
        common = [pair(i) for i in range(5, 60)]
        # Pairs only one labelling decides, labelled against the learnable preference: counted, they
        # would pull the held-out accuracy below 1. Pairs 0-4 are a split majority: left out of both.
        weighted_only = [pair(i, good_wins=0, bad_wins=1) for i in range(100, 130)]
        majority_only = [pair(i, good_wins=0, bad_wins=1) for i in range(200, 230)]
        assert any(model.is_validation(p.prompt) for p in weighted_only)
        assert any(model.is_validation(p.prompt) for p in majority_only)
        weighted = [pair(i) for i in range(5)] + common + weighted_only
        majority = [pair(i, good_wins=1, bad_wins=1) for i in range(5)] + common + majority_only
        compared = model.compare_labels(HashedNgrams(), {"weighted": weighted, "majority": majority})
        held_out = sum(model.is_validation(p.prompt) for p in common)
        assert (compared["n_train"], compared["n_validation"]) == (55 - held_out, held_out)
        assert compared["weighted"]["accuracy"] == compared["majority"]["accuracy"] == 1.0
        assert compared["labels_agree"] == 1.0

    def test_labels_agree_is_the_share_of_held_out_pairs_labelled_alike(self) -> None:
        weighted = [pair(i) for i in range(80)]
        flipped = {p.key for p in weighted[:40] if model.is_validation(p.prompt)}
        majority = [pair(i, good_wins=0, bad_wins=1) if i < 40 else pair(i) for i in range(80)]
        compared = model.compare_labels(HashedNgrams(), {"weighted": weighted, "majority": majority})
        assert flipped
        assert compared["labels_agree"] == round(1 - len(flipped) / compared["n_validation"], 6)
        assert compared["majority"]["accuracy"] < compared["weighted"]["accuracy"]

    def test_too_few_pairs_in_common_is_not_enough(self) -> None:
        weighted = [pair(i) for i in range(60)]
        majority = [pair(i) for i in range(50, 110)]
        with pytest.raises(model.NotEnoughData, match="training pairs in common"):
            model.compare_labels(HashedNgrams(), {"weighted": weighted, "majority": majority})
