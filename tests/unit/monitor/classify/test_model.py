from __future__ import annotations

from pathlib import Path

import pytest
import torch

from monitor.classify.model import FinSentModel, fit_temperature, mean_pool, signed_score


def test_save_pretrained_roundtrip_keeps_weights_labels_and_temperatures(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model = FinSentModel.from_pretrained(tiny_model_dir).eval()
    model.config.topic_temperature = 0.7
    model.save_pretrained(tmp_path)
    again = FinSentModel.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    with torch.no_grad():
        a, b = model(input_ids=ids), again(input_ids=ids)
    assert torch.allclose(a.sentiment_logits, b.sentiment_logits)
    assert torch.allclose(a.topic_logits, b.topic_logits)
    assert again.config.topic_id2label == {0: "earnings", 1: "markets", 2: "other"}
    assert again.config.sentiment_id2label == {0: "negative", 1: "neutral", 2: "positive"}
    assert (again.config.topic_temperature, again.config.sentiment_temperature) == (0.7, 1.5)


def test_one_forward_pass_yields_both_heads_and_a_joint_loss(tiny_model_dir: Path) -> None:
    model = FinSentModel.from_pretrained(tiny_model_dir)
    out = model(
        input_ids=torch.tensor([[2, 10, 3], [2, 11, 3]]),
        topic_labels=torch.tensor([0, 2]),
        sentiment_labels=torch.tensor([1, 2]),
    )
    assert out.topic_logits.shape == (2, 3) and out.sentiment_logits.shape == (2, 3)
    assert out.loss is not None and out.loss.requires_grad


def test_mean_pool_ignores_padding_tokens() -> None:
    hidden = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert mean_pool(hidden, torch.tensor([[1, 1, 0]])).item() == pytest.approx(2.0)


def test_higher_temperature_gives_flatter_probabilities(tiny_model_dir: Path) -> None:
    model = FinSentModel.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor([[2, 10, 11, 3]]))
    model.config.sentiment_temperature = 1.0
    sharp = model.probabilities(out)[1]
    model.config.sentiment_temperature = 10.0
    flat = model.probabilities(out)[1]
    assert flat.max() < sharp.max()
    assert flat.sum().item() == pytest.approx(1.0)


def test_fit_temperature_cools_overconfident_logits() -> None:
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (400,), generator=generator)
    logits = torch.randn(400, 3, generator=generator)
    logits[torch.arange(400), labels] += 1.0
    assert fit_temperature(logits * 8, labels) > 2.0  # right ~60%, but scaled to look ~100% sure


def test_signed_score_is_p_positive_minus_p_negative_in_any_label_order() -> None:
    probs = torch.tensor([[0.2, 0.5, 0.3]])
    assert signed_score(probs, ["positive", "neutral", "negative"]).item() == pytest.approx(0.2 - 0.3)
