from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from monitor.classify.artifact import DELTA_WEIGHTS, load_model, new_model, normalize_text
from monitor.classify.train import frozen_states, pad, tokenize, top_forward, train_command
from monitor.classify.transformer import TransformerClassifier
from monitor.config import ClassifierSettings


def _train(base: Path, csv: Path, out: Path, *extra: str) -> int:
    return train_command(
        [
            "--output",
            str(out),
            "--base-model",
            str(base),
            "--train-csv",
            str(csv),
            "--epochs",
            "2",
            "--train-layers",
            "1",
            "--batch-size",
            "8",
            *extra,
        ]
    )


def test_cached_lower_layers_plus_top_layers_equal_the_full_forward(tiny_base_dir: Path) -> None:
    model, tokenizer = new_model(str(tiny_base_dir), ["a", "b"], ["negative", "neutral", "positive"])
    model.eval()
    ids = tokenize(
        tokenizer, ["shares plunge after fraud probe", "ok", "apple beats estimates on strong profit"], 32
    )
    states = frozen_states(model, ids, 1, 0)
    input_ids, mask = pad(ids, 0)
    hidden = torch.zeros((len(ids), input_ids.shape[1], states[0].shape[1]))
    for row, state in enumerate(states):
        hidden[row, : state.shape[0]] = state
    with torch.no_grad():
        topic, sentiment = top_forward(model, hidden, mask, 1)
        full = model(input_ids=input_ids, attention_mask=mask)
    assert torch.allclose(sentiment, full.sentiment_logits, atol=1e-5)
    assert torch.allclose(topic, full.topic_logits, atol=1e-5)


def test_delta_artifact_holds_only_heads_and_trained_layers_and_loads(
    tiny_base_dir: Path, tiny_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "delta"
    assert _train(tiny_base_dir, tiny_csv, out) == 0
    names = set(load_file(str(out / DELTA_WEIGHTS)))
    assert any(n.startswith("encoder.encoder.layer.1.") for n in names)
    assert not any(n.startswith(("encoder.encoder.layer.0.", "encoder.embeddings.")) for n in names)
    assert {"topic_head.weight", "sentiment_head.weight"} <= names
    model, _ = load_model(str(out))
    assert model.config.trained_layers == [1]
    summary = json.loads((out / "training_summary.json").read_text())
    assert summary["best_epoch"] in (1, 2)
    prediction = TransformerClassifier(ClassifierSettings(model_path=str(out))).predict(["shares plunge"])[0]
    assert sum(prediction.sentiment_probs) == pytest.approx(1.0, abs=1e-5)


def test_training_is_deterministic_for_a_fixed_seed(
    tiny_base_dir: Path, tiny_csv: Path, tmp_path: Path
) -> None:
    _train(tiny_base_dir, tiny_csv, tmp_path / "one")
    _train(tiny_base_dir, tiny_csv, tmp_path / "two")
    one, two = (
        load_file(str(tmp_path / "one" / DELTA_WEIGHTS)),
        load_file(str(tmp_path / "two" / DELTA_WEIGHTS)),
    )
    assert one.keys() == two.keys()
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_full_export_is_a_standard_save_pretrained_directory(
    tiny_base_dir: Path, tiny_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "full"
    assert _train(tiny_base_dir, tiny_csv, out, "--full") == 0
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert not (out / DELTA_WEIGHTS).exists()
    assert len(TransformerClassifier(ClassifierSettings(model_path=str(out))).predict(["apple beats"])) == 1


def test_normalize_text_drops_urls_and_squeezes_whitespace() -> None:
    assert normalize_text("  $AAPL up  https://t.co/xyz  now\n") == "$AAPL up now"


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80))
def test_normalize_text_is_idempotent_and_leaves_no_urls(text: str) -> None:
    once = normalize_text(text)
    assert normalize_text(once) == once
    assert "http://" not in once and "https://" not in once
