from __future__ import annotations

from pathlib import Path

import pytest

from monitor.classify import build_classifier
from monitor.classify.transformer import TransformerClassifier
from monitor.config import ClassifierSettings
from monitor.types import Prediction

TEXTS = [
    "shares plunge after fraud probe and the company reports bankruptcy on the market",
    "ok",
    "apple beats estimates",
    "",
    "中国股市大涨 投资者情绪乐观",
    "fed rates rise https://t.co/abc123",
    "the ceo of the company at the merger deal lawsuit on oil and gold and bitcoin",
]


@pytest.fixture(scope="module")
def classifier(tiny_model_dir: Path) -> TransformerClassifier:
    settings = ClassifierSettings(model_path=str(tiny_model_dir), dtype="float32")  # exact: 1e-5 comparisons
    return TransformerClassifier(settings, sub_batch_size=2)


def _close(a: Prediction, b: Prediction) -> bool:
    return (a.topic, a.sentiment) == (b.topic, b.sentiment) and all(
        x == pytest.approx(y, abs=1e-5) for x, y in zip(a.sentiment_probs, b.sentiment_probs, strict=True)
    )


def test_batched_predictions_equal_one_by_one_predictions(classifier: TransformerClassifier) -> None:
    batched = classifier.predict(TEXTS)
    for text, prediction in zip(TEXTS, batched, strict=True):
        assert _close(prediction, classifier.predict([text])[0])


def test_length_bucketing_restores_the_callers_order(classifier: TransformerClassifier) -> None:
    forward = classifier.predict(TEXTS)
    backward = classifier.predict(TEXTS[::-1])
    assert all(_close(a, b) for a, b in zip(forward, backward[::-1], strict=True))
    assert len({p.sentiment_probs for p in forward}) > 3  # distinct texts really got distinct outputs


def test_probabilities_sum_to_one_and_score_is_pos_minus_neg(classifier: TransformerClassifier) -> None:
    topic, _ = classifier.predict_proba(TEXTS)
    assert topic.sum(-1).tolist() == pytest.approx([1.0] * len(TEXTS), abs=1e-5)
    for p in classifier.predict(TEXTS):
        neg, neu, pos = p.sentiment_probs
        assert neg + neu + pos == pytest.approx(1.0, abs=1e-5)
        assert p.score == pytest.approx(pos - neg, abs=1e-6)
        assert p.topic in {"earnings", "markets", "other"}
        assert p.sentiment_confidence == pytest.approx(max(p.sentiment_probs), abs=1e-6)


def test_empty_input_list_returns_no_predictions(classifier: TransformerClassifier) -> None:
    assert classifier.predict([]) == []


def test_empty_and_chinese_texts_get_valid_predictions(classifier: TransformerClassifier) -> None:
    for p in classifier.predict(["", "中国股市大涨", "   "]):
        assert -1.0 <= p.score <= 1.0


def test_a_lone_surrogate_does_not_fail_the_rest_of_the_batch(classifier: TransformerClassifier) -> None:
    predictions = classifier.predict(["ok \ud800 bad", "apple beats estimates"])
    assert len(predictions) == 2
    assert _close(predictions[1], classifier.predict(["apple beats estimates"])[0])


def test_text_longer_than_max_length_is_truncated_not_rejected(tiny_model_dir: Path) -> None:
    settings = ClassifierSettings(model_path=str(tiny_model_dir), max_length_tokens=8)
    assert len(TransformerClassifier(settings).predict(["stock " * 500])) == 1


def test_int8_quantized_model_predicts_close_to_float32(
    tiny_model_dir: Path, classifier: TransformerClassifier
) -> None:
    int8 = TransformerClassifier(ClassifierSettings(model_path=str(tiny_model_dir), quantize_int8=True))
    assert int8.name.endswith("-int8")
    for a, b in zip(int8.predict(TEXTS), classifier.predict(TEXTS), strict=True):
        assert a.score == pytest.approx(b.score, abs=0.05)


def test_factory_builds_transformer_classifier_from_model_path(tiny_model_dir: Path) -> None:
    built = build_classifier(ClassifierSettings(kind="transformer", model_path=str(tiny_model_dir)))
    assert isinstance(built, TransformerClassifier)


def _padded_cost(lengths: list[int], bounds: list[int], overhead: int) -> int:
    starts = [0, *bounds[:-1]]
    return sum((end - start) * lengths[end - 1] + overhead for start, end in zip(starts, bounds, strict=True))


@pytest.mark.parametrize("seed", range(5))
def test_sub_batch_cuts_cover_every_text_and_never_pad_more_than_fixed_chunks(seed: int) -> None:
    import random

    from monitor.classify.transformer import split_sorted

    rng = random.Random(seed)
    lengths = sorted(rng.choice([6, 9, 12, 20, 25, 40, 64, 120]) for _ in range(rng.randint(1, 90)))
    bounds = split_sorted(lengths, max_rows=32, overhead_tokens=48)
    assert bounds[-1] == len(lengths) and bounds == sorted(set(bounds))
    assert all(end - start <= 32 for start, end in zip([0, *bounds[:-1]], bounds, strict=True))
    fixed = [*range(32, len(lengths), 32), len(lengths)]
    assert _padded_cost(lengths, bounds, 48) <= _padded_cost(lengths, fixed, 48)


def test_short_texts_do_not_share_a_pass_with_a_long_one() -> None:
    from monitor.classify.transformer import split_sorted

    assert split_sorted([8] * 20 + [120], max_rows=64, overhead_tokens=48) == [20, 21]


def test_sub_batch_width_is_rounded_to_a_multiple_of_8_with_masked_padding(classifier: TransformerClassifier) -> None:
    ids, mask = classifier._pad([[5, 6, 7], [5] * 9])
    assert ids.shape == (2, 16)
    assert mask.sum(dim=1).tolist() == [3, 9]
    assert ids[0, 3:].eq(int(classifier.tokenizer.pad_token_id or 0)).all()


def test_the_neighbour_memory_is_blended_once_per_call_with_each_texts_own_vector(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Per sub-batch, every pass scanned the memory's rows again: 24-30% of the rate at live-sized batches
    (found by the regression review). The labels are those of the model on each text alone."""
    import torch

    from monitor.classify.artifact import pad, tokenize
    from monitor.classify.neighbours import NeighbourMemory
    from tests.unit.monitor.classify.conftest import save_with_memory

    classifier = TransformerClassifier(
        ClassifierSettings(model_path=str(save_with_memory(tiny_model_dir, tmp_path / "m")), dtype="float32"),
        sub_batch_size=2)
    calls: list[int] = []
    real = NeighbourMemory.blend

    def counted(self: NeighbourMemory, pooled: torch.Tensor, topic: torch.Tensor, sentiment: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        calls.append(pooled.shape[0])
        return real(self, pooled, topic, sentiment)

    monkeypatch.setattr(NeighbourMemory, "blend", counted)
    topic, sentiment = classifier.predict_proba(TEXTS)
    assert calls == [len(TEXTS)]  # one blend, though the texts ran in several sub-batches
    model = classifier.model
    with torch.inference_mode():
        for i, text in enumerate(TEXTS):
            ids, mask = pad(tokenize(classifier.tokenizer, [text], classifier.max_length_tokens), 0)
            alone = model.probabilities(model(input_ids=ids, attention_mask=mask))
            assert torch.allclose(alone[0][0], topic[i], atol=1e-5)
            assert torch.allclose(alone[1][0], sentiment[i], atol=1e-5)
