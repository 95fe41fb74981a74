"""load_model takes only a complete trained two-head model; anything else is a one-line ModelLoadError."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from monitor.classify import ModelLoadError, artifact
from monitor.classify.artifact import (
    DELTA_WEIGHTS,
    FULL_WEIGHTS,
    PACKAGED_BASE,
    encodable,
    load_model,
    new_model,
    normalize_text,
    save_delta,
    save_full,
)
from tests.unit.monitor.classify.conftest import save_with_memory


def _copy(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / "model"))


def _refused(path: Path, pattern: str) -> str:
    with pytest.raises(ModelLoadError, match=pattern) as err:
        load_model(str(path))
    message = str(err.value)
    assert "\n" not in message and "classifier.model_path" in message
    return message


def _edit_config(directory: Path, **changes: object) -> None:
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, **changes}))


def test_plain_encoder_directory_is_refused_with_how_to_train_from_it(tiny_base_dir: Path) -> None:
    message = _refused(tiny_base_dir, r"plain bert encoder, not a trained finsent model")
    assert f"monitor train --base-model {tiny_base_dir} --full --output DIR" in message


def test_two_head_config_next_to_plain_encoder_weights_is_refused(
    tiny_model_dir: Path, tiny_base_dir: Path, tmp_path: Path
) -> None:
    directory = _copy(tiny_model_dir, tmp_path)
    shutil.copy(tiny_base_dir / FULL_WEIGHTS, directory / FULL_WEIGHTS)
    _refused(directory, r"model\.safetensors lacks \d+ of the model's tensors")


def test_delta_without_a_head_tensor_is_refused(tiny_delta_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_delta_dir, tmp_path)
    delta = load_file(str(directory / DELTA_WEIGHTS))
    save_file({k: v for k, v in delta.items() if k != "sentiment_head.weight"}, str(directory / DELTA_WEIGHTS))
    _refused(directory, r"delta\.safetensors does not match config\.json .*1 tensors missing \['sentiment_head")


def test_delta_without_a_trained_layer_tensor_is_refused(tiny_delta_dir: Path, tmp_path: Path) -> None:
    directory = _copy(tiny_delta_dir, tmp_path)
    delta = load_file(str(directory / DELTA_WEIGHTS))
    save_file({k: v for k, v in delta.items() if "head" in k}, str(directory / DELTA_WEIGHTS))
    _refused(directory, r"delta\.safetensors does not match config\.json \(trained_layers \[1\]\)")


def test_intact_delta_and_full_directories_load(tiny_delta_dir: Path, tiny_model_dir: Path) -> None:
    assert load_model(str(tiny_delta_dir))[0].config.trained_layers == [1]
    assert load_model(str(tiny_model_dir))[0].config.topic_labels == ["earnings", "markets", "other"]


def test_full_save_removes_a_stale_delta_and_a_delta_save_removes_stale_full_weights(
    tiny_delta_dir: Path, tmp_path: Path
) -> None:
    directory = _copy(tiny_delta_dir, tmp_path)
    model, tokenizer = load_model(str(directory))
    save_full(model, tokenizer, directory)
    assert not (directory / DELTA_WEIGHTS).exists()
    assert load_model(str(directory))[0].config.trained_layers == [1]
    save_delta(model, directory)
    assert not (directory / FULL_WEIGHTS).exists() and (directory / DELTA_WEIGHTS).is_file()


def test_directory_holding_both_weight_files_is_refused_naming_both(
    tiny_delta_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    directory = _copy(tiny_delta_dir, tmp_path)
    shutil.copy(tiny_model_dir / FULL_WEIGHTS, directory / FULL_WEIGHTS)
    _refused(directory, r"holds both delta\.safetensors and model\.safetensors")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _drop(name: str) -> Callable[[Path], None]:
    return lambda directory: (directory / name).unlink()


DAMAGED_DELTAS: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated delta": (lambda d: _truncate(d / DELTA_WEIGHTS), r"cannot load .*delta\.safetensors .*: Error while"),
    "empty delta": (lambda d: (d / DELTA_WEIGHTS).write_bytes(b""), r"cannot load .*delta\.safetensors"),
    "no config.json": (_drop("config.json"), r"config\.json not found"),
    "unparsable config.json": (lambda d: (d / "config.json").write_text("{ no"), r"cannot load .*config\.json"),
    "fewer topics in config": (
        lambda d: _edit_config(d, topic_labels=["earnings", "other"]),
        r"topic_head\.bias has shape \[3\] but config\.json needs \[2\]",
    ),
    "bullish/bearish labels": (
        lambda d: _edit_config(d, sentiment_labels=["bearish", "neutral", "bullish"]),
        r"sentiment_labels \['bearish', 'neutral', 'bullish'\] are not",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_DELTAS))
def test_damaged_delta_directory_is_a_one_line_error_naming_the_file(
    case: str, tiny_delta_dir: Path, tmp_path: Path
) -> None:
    damage, pattern = DAMAGED_DELTAS[case]
    directory = _copy(tiny_delta_dir, tmp_path)
    damage(directory)
    _refused(directory, pattern)


DAMAGED_FULL: dict[str, tuple[Callable[[Path], None], str]] = {
    "truncated weights": (lambda d: _truncate(d / FULL_WEIGHTS), r"cannot load .*model\.safetensors"),
    "fewer topics in config": (
        lambda d: _edit_config(d, topic_labels=["earnings", "other"]),
        r"model\.safetensors: topic_head\.\w+ has shape \[3.*\] but config\.json needs \[2",
    ),
    "no tokenizer files": (
        lambda d: [(d / name).unlink(missing_ok=True) for name in ("tokenizer.json", "tokenizer_config.json")],
        r"has no tokenizer",
    ),
    # found by review: a 5-token tokenizer loaded, every word became [UNK] and every text got one label
    "only tokenizer_config.json": (
        lambda d: [(d / name).unlink(missing_ok=True) for name in ("tokenizer.json", "vocab.txt")],
        r"its tokenizer has 5 tokens but the model's embeddings [\d,]+ rows .* copy tokenizer\.json",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_FULL))
def test_damaged_full_directory_is_a_one_line_error_naming_the_file(
    case: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    damage, pattern = DAMAGED_FULL[case]
    directory = _copy(tiny_model_dir, tmp_path)
    damage(directory)
    _refused(directory, pattern)


def test_lone_surrogate_becomes_a_replacement_character_and_pairs_are_joined() -> None:
    assert normalize_text("ok \ud800 bad") == "ok \ufffd bad"
    assert encodable("\ud83d\ude80 up") == "\U0001f680 up"
    normalize_text("ok \udfff").encode("utf-8")  # strict: raises if anything unencodable is left


def test_a_full_save_in_torchs_older_format_still_loads(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Found by a regression review: only model.safetensors was accepted, so a save_pretrained directory with
    pytorch_model.bin (or shards) that used to load stopped the daemon."""
    import torch

    directory = tmp_path / "bin"
    shutil.copytree(tiny_model_dir, directory)
    weights = load_file(str(directory / "model.safetensors"))
    torch.save(weights, directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    assert load_model(str(directory))[0].config.topic_labels == ["earnings", "markets", "other"]


def _contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _interrupt(*_: object, **__: object) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_while_the_delta_is_written_leaves_the_old_model_whole(
    tiny_delta_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # found by review: config.json was written first, in place, so the new run's config sat over the old weights
    # and loaded without error
    directory = _copy(tiny_delta_dir, tmp_path)
    before = _contents(directory)
    model, _ = load_model(str(directory))
    model.config.topic_temperature = 0.151
    monkeypatch.setattr(artifact, "save_file", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_delta(model, directory)
    assert _contents(directory) == before  # no staging directory left either


def test_ctrl_c_while_a_full_model_is_written_leaves_the_old_model_whole(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _copy(tiny_model_dir, tmp_path)
    before = _contents(directory)
    model, tokenizer = load_model(str(directory))
    model.config.topic_temperature = 0.151
    monkeypatch.setattr(tokenizer, "save_pretrained", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_full(model, tokenizer, directory)
    assert _contents(directory) == before


def test_save_interrupted_while_moving_its_files_in_leaves_a_directory_that_refuses_to_load(
    tiny_delta_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _copy(tiny_delta_dir, tmp_path)
    model, _ = load_model(str(directory))
    monkeypatch.setattr(artifact.os, "replace", _interrupt)
    with pytest.raises(KeyboardInterrupt):
        save_delta(model, directory)
    monkeypatch.undo()
    _refused(directory, r"config\.json not found .*a save interrupted")
    assert [p.name for p in directory.iterdir()] == [DELTA_WEIGHTS]


def test_delta_trained_from_a_relative_base_directory_loads_from_any_working_directory(
    tiny_base_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # found by review: config.json kept "mybase", resolved against the daemon's working directory
    monkeypatch.chdir(tiny_base_dir.parent)
    model, _ = new_model(tiny_base_dir.name, ["earnings", "other"], ["negative", "neutral", "positive"])
    model.config.trained_layers = [1]
    save_delta(model, tmp_path / "delta")
    monkeypatch.chdir(tmp_path)
    loaded, _ = load_model(str(tmp_path / "delta"))
    assert loaded.config.base_model == str(tiny_base_dir.resolve())


def test_packaged_base_and_hub_ids_are_recorded_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert artifact.recorded_base(None) == artifact.recorded_base(PACKAGED_BASE) == PACKAGED_BASE
    hub_id = "sentence-transformers/all-MiniLM-L6-v2"
    assert artifact.recorded_base(hub_id) == hub_id


@pytest.mark.parametrize(("change", "named"), [
    ({"sentiment_temperature": 0}, "sentiment_temperature is 0"),
    ({"neighbour_temperature": -0.05}, "neighbour_temperature is -0.05"),
    ({"neighbour_weight": 1.5}, "neighbour_weight is 1.5"),
    ({"neighbour_k": 0}, "neighbour_k is 0"),
])
def test_blend_or_calibration_numbers_that_corrupt_every_probability_are_refused_naming_them(
    change: dict[str, object], named: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Found by review: a hand-edited config loaded with temperature 0 (NaN everywhere), neighbour_k 0
    (probabilities summing to 0.5) or weight 1.5 (scores past -1), without a word."""
    directory = save_with_memory(tiny_model_dir, tmp_path / "model")
    _edit_config(directory, **change)
    _refused(directory, named)


@pytest.mark.parametrize(("head", "spoil", "named"), [
    ("sentiment", "labels_high", "labels hold .* outside the head's 0..2"),
    ("topic", "labels_negative", "labels hold -1"),
    ("sentiment", "zero_vectors", "not a unit vector"),
])
def test_a_neighbour_memory_that_would_mislabel_texts_is_refused_at_load(
    head: str, spoil: str, named: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Found by review: labels out of range loaded and failed only when such a row was a neighbour; zeroed
    vectors made every text's vote the same label."""
    directory = save_with_memory(tiny_model_dir, tmp_path / "model")
    tensors = load_file(str(directory / FULL_WEIGHTS))
    labels, vectors = f"memory.{head}.labels", f"memory.{head}.vectors"
    if spoil == "labels_high":
        tensors[labels][0] = 3
    elif spoil == "labels_negative":
        tensors[labels][0] = -1
    else:
        tensors[vectors][0] = 0
    save_file(tensors, str(directory / FULL_WEIGHTS))
    assert "--add-neighbours" in _refused(directory, named)
