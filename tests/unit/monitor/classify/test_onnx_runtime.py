"""The ONNX Runtime path gives the torch path's predictions, caches its export, and fails clearly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from monitor.classify import ModelLoadError, build_classifier, onnx_runtime
from monitor.classify.artifact import load_model
from monitor.classify.onnx_runtime import OnnxClassifier, fingerprint
from monitor.classify.transformer import TransformerClassifier
from monitor.config import ClassifierSettings
from tests.unit.monitor.classify.test_transformer import TEXTS


def _settings(model_dir: Path, cache: Path, **extra: object) -> ClassifierSettings:
    return ClassifierSettings(model_path=str(model_dir), runtime="onnxruntime", onnx_cache_dir=str(cache), **extra)


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx_cache")


@pytest.fixture(scope="module")
def onnx_classifier(tiny_model_dir: Path, onnx_cache: Path) -> OnnxClassifier:
    return OnnxClassifier(_settings(tiny_model_dir, onnx_cache), sub_batch_size=2)


def test_onnx_predictions_equal_torch_predictions_on_every_length_bucket(
    onnx_classifier: OnnxClassifier, tiny_model_dir: Path
) -> None:
    torch_path = TransformerClassifier(ClassifierSettings(model_path=str(tiny_model_dir)), sub_batch_size=3)
    for a, b in zip(onnx_classifier.predict(TEXTS), torch_path.predict(TEXTS), strict=True):
        assert (a.topic, a.sentiment) == (b.topic, b.sentiment)
        assert a.sentiment_probs == pytest.approx(b.sentiment_probs, abs=1e-4)
        assert a.topic_confidence == pytest.approx(b.topic_confidence, abs=1e-4)


def test_export_is_cached_per_model_and_reused_by_the_next_start(
    onnx_classifier: OnnxClassifier, tiny_model_dir: Path, onnx_cache: Path
) -> None:
    assert onnx_classifier.exported and onnx_classifier.graph_path.parent == onnx_cache
    again = OnnxClassifier(_settings(tiny_model_dir, onnx_cache))
    assert not again.exported and again.graph_path == onnx_classifier.graph_path
    assert not list(onnx_cache.glob("*.tmp.onnx")), "no half-written export is left behind"


def test_int8_graph_is_quantized_once_and_predicts_close_to_float32(
    onnx_classifier: OnnxClassifier, tiny_model_dir: Path, onnx_cache: Path
) -> None:
    int8 = OnnxClassifier(_settings(tiny_model_dir, onnx_cache, quantize_int8=True))
    assert int8.name.endswith("-int8") and int8.graph_path.name.endswith("-int8.onnx")
    for a, b in zip(int8.predict(TEXTS), onnx_classifier.predict(TEXTS), strict=True):
        assert a.score == pytest.approx(b.score, abs=0.05)


def test_factory_builds_the_onnx_classifier_for_runtime_onnxruntime(
    onnx_classifier: OnnxClassifier, tiny_model_dir: Path, onnx_cache: Path
) -> None:
    assert isinstance(build_classifier(_settings(tiny_model_dir, onnx_cache)), OnnxClassifier)


def test_missing_onnxruntime_names_the_setting_and_the_extra(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    with pytest.raises(ModelLoadError, match=r"classifier.runtime.*\[onnx\]"):
        OnnxClassifier(_settings(tiny_model_dir, tmp_path))


def test_cuda_device_with_the_onnx_runtime_is_refused_with_the_fix(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"classifier\.device"):  # by the settings, before any model loads
        _settings(tiny_model_dir, tmp_path, device="cuda")
    settings = _settings(tiny_model_dir, tmp_path).model_copy(update={"device": "cuda"})  # unvalidated
    with pytest.raises(ModelLoadError, match=r"classifier\.device"):
        OnnxClassifier(settings)


def test_a_damaged_cached_graph_is_exported_again_once(
    onnx_classifier: OnnxClassifier, tiny_model_dir: Path, onnx_cache: Path
) -> None:
    onnx_classifier.graph_path.write_bytes(b"half a graph")
    again = OnnxClassifier(_settings(tiny_model_dir, onnx_cache))
    assert again.exported and again.graph_path == onnx_classifier.graph_path
    assert again.predict(["shares plunge"])[0].sentiment == onnx_classifier.predict(["shares plunge"])[0].sentiment


def test_a_graph_that_fails_again_after_re_export_is_a_one_line_error_naming_the_cache(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exports: list[Path] = []

    def broken_export(model: object, example: object, path: Path) -> None:
        exports.append(path)
        path.write_bytes(b"still broken")

    monkeypatch.setattr(onnx_runtime, "export_onnx", broken_export)
    (tmp_path / f"{fingerprint(load_model(str(tiny_model_dir))[0])}.onnx").write_bytes(b"damaged")
    with pytest.raises(ModelLoadError, match=r"cannot load .*\.onnx .*\(classifier\.onnx_cache_dir\)") as err:
        OnnxClassifier(_settings(tiny_model_dir, tmp_path))
    assert len(exports) == 1 and "\n" not in str(err.value)


def test_a_model_with_a_neighbour_memory_exports_and_predicts_as_torch_does(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The memory's votes are part of the exported graph (a data-dependent k did not trace)."""
    import torch

    from tests.unit.monitor.classify.conftest import save_with_memory

    with_memory = save_with_memory(tiny_model_dir, tmp_path / "with_memory")
    memory = load_model(str(with_memory))[0].memory
    assert memory is not None
    torch_path = TransformerClassifier(ClassifierSettings(model_path=str(with_memory)), sub_batch_size=3)
    assert torch_path.model.memory is not None
    assert torch.equal(torch_path.model.memory.topic.labels, memory.topic.labels)
    onnx_path = OnnxClassifier(_settings(with_memory, tmp_path / "cache"), sub_batch_size=2)
    for a, b in zip(onnx_path.predict(TEXTS), torch_path.predict(TEXTS), strict=True):
        assert (a.topic, a.sentiment) == (b.topic, b.sentiment)
        assert a.sentiment_probs == pytest.approx(b.sentiment_probs, abs=1e-4)
