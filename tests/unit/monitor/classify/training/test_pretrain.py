from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, BertForMaskedLM

from monitor.classify import ModelLoadError
from monitor.classify.artifact import DELTA_WEIGHTS, load_model
from monitor.classify.training import pretrain
from monitor.classify.training.dataset import DatasetError
from monitor.classify.training.pretrain import batches, masked_lm_loss, pretrain_command
from monitor.classify.training.train import train_command


def _pretrain(base: Path, texts: Path, out: Path, *extra: str) -> int:
    return pretrain_command(
        ["--base-model", str(base), "--text", str(texts), "--output", str(out), "--steps", "6", "--batch-size", "4",
         "--num-threads", "1", *extra]
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return AutoModel.from_pretrained(str(path), add_pooling_layer=False).state_dict()  # type: ignore[no-any-return]


def test_pretraining_moves_the_layers_and_keeps_the_embeddings_bit_for_bit(
    tiny_base_dir: Path, tiny_csv: Path, tmp_path: Path
) -> None:
    assert _pretrain(tiny_base_dir, tiny_csv, tmp_path / "dapt") == 0
    before, after = _weights(tiny_base_dir), _weights(tmp_path / "dapt")
    embeddings = [k for k in before if k.startswith("embeddings.")]
    assert embeddings and all(torch.equal(before[k], after[k]) for k in embeddings)
    assert not torch.equal(before["encoder.layer.0.attention.self.query.weight"],
                           after["encoder.layer.0.attention.self.query.weight"])
    summary = json.loads((tmp_path / "dapt" / "pretrain_summary.json").read_text())
    assert summary["steps"] == 6 and summary["texts"] == 10  # the CSV repeats 10 distinct texts


def test_pretraining_is_deterministic_for_a_fixed_seed(tiny_base_dir: Path, tiny_csv: Path, tmp_path: Path) -> None:
    _pretrain(tiny_base_dir, tiny_csv, tmp_path / "one")
    _pretrain(tiny_base_dir, tiny_csv, tmp_path / "two")
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_masked_only_loss_equals_the_full_vocabulary_projection_loss(tiny_base_dir: Path) -> None:
    torch.manual_seed(0)
    model = BertForMaskedLM.from_pretrained(str(tiny_base_dir)).eval()
    ids = torch.randint(5, model.config.vocab_size, (3, 9))
    mask = torch.ones_like(ids)
    mask[2, 6:] = 0
    labels = torch.full_like(ids, -100)
    labels[0, 1], labels[1, 4], labels[2, 2] = ids[0, 1], ids[1, 4], ids[2, 2]
    with torch.no_grad():
        ours = masked_lm_loss(model, ids, mask, labels)
        theirs = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    assert ours == pytest.approx(float(theirs), abs=1e-5)


def test_batches_are_full_length_grouped_and_cover_the_texts_before_repeating() -> None:
    ids = [[1] * n for n in range(1, 41)]
    out = batches(ids, 4, 10, torch.Generator().manual_seed(0))
    assert len(out) == 10 and all(len(b) == 4 for b in out)
    assert sorted(len(row) for b in out for row in b) == list(range(1, 41))


def test_an_adapted_encoder_starts_training_and_the_delta_composes_with_the_packaged_base(
    tiny_base_dir: Path, tiny_csv: Path, tiny_topic_csv: Path, tmp_path: Path
) -> None:
    _pretrain(tiny_base_dir, tiny_csv, tmp_path / "dapt", "--lr", "0.01")  # moves well beyond fp16 rounding
    out = tmp_path / "model"
    common = ["--output", str(out), "--base-model", str(tiny_base_dir), "--train-csv", str(tiny_csv),
              "--topic-csv", str(tiny_topic_csv), "--epochs", "1", "--batch-size", "8", "--lr", "0"]
    assert train_command([*common, "--init-encoder", str(tmp_path / "dapt"), "--head-lr", "0"]) == 0
    names = set(load_file(str(out / DELTA_WEIGHTS)))
    assert any(n.startswith("encoder.encoder.layer.0.") for n in names)
    assert not any(n.startswith("encoder.embeddings.") for n in names)
    loaded, _ = load_model(str(out))
    adapted = _weights(tmp_path / "dapt")
    key = "encoder.layer.0.attention.self.query.weight"  # lr 0: still the adapted weights, fp16-rounded
    assert torch.allclose(loaded.encoder.state_dict()[key], adapted[key], atol=1e-3)
    assert not torch.allclose(_weights(tiny_base_dir)[key], adapted[key], atol=1e-3)


def test_init_encoder_refuses_a_partial_layer_set(
    tiny_base_dir: Path, tiny_csv: Path, tiny_topic_csv: Path, tmp_path: Path
) -> None:
    _pretrain(tiny_base_dir, tiny_csv, tmp_path / "dapt")
    with pytest.raises(SystemExit, match="--init-encoder trains every encoder layer"):
        train_command(["--output", str(tmp_path / "m"), "--base-model", str(tiny_base_dir), "--train-csv",
                       str(tiny_csv), "--topic-csv", str(tiny_topic_csv), "--init-encoder", str(tmp_path / "dapt"),
                       "--train-layers", "1"])


def test_init_encoder_refuses_an_encoder_with_other_embeddings(
    tiny_base_dir: Path, tiny_csv: Path, tiny_topic_csv: Path, tmp_path: Path
) -> None:
    other = AutoModel.from_pretrained(str(tiny_base_dir))
    with torch.no_grad():
        other.embeddings.word_embeddings.weight.add_(1.0)
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ModelLoadError, match="embeddings or architecture differ"):
        train_command(["--output", str(tmp_path / "m"), "--base-model", str(tiny_base_dir), "--train-csv",
                       str(tiny_csv), "--topic-csv", str(tiny_topic_csv), "--init-encoder", str(tmp_path / "other")])


def test_init_encoder_without_a_pretrained_directory_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"no config\.json -- pass a directory written by `monitor pretrain"):
        train_command(["--output", str(tmp_path / "m"), "--init-encoder", str(tmp_path / "missing"),
                       "--train-csv", str(tmp_path / "absent.csv")])


def test_pretraining_on_a_missing_text_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"absent\.jsonl not found"):
        pretrain_command(["--text", str(tmp_path / "absent.jsonl"), "--output", str(tmp_path / "out")])


def test_auto_precision_pretrains_in_fp32_on_a_cpu_without_native_bf16(
    tiny_base_dir: Path, tiny_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pretrain, "cpu_bf16_flag", lambda: None)
    assert _pretrain(tiny_base_dir, tiny_csv, tmp_path / "dapt") == 0
    assert json.loads((tmp_path / "dapt" / "pretrain_summary.json").read_text())["precision"] == "fp32"


def test_pretraining_draws_no_progress_bars_when_stderr_is_not_a_terminal(
    tiny_base_dir: Path, tiny_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _pretrain(tiny_base_dir, tiny_csv, tmp_path / "dapt") == 0
    assert "mlm" not in capsys.readouterr().err
