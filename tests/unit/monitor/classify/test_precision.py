from __future__ import annotations

from pathlib import Path

import pytest
import torch

from monitor.classify import precision
from monitor.classify.cpu_features import cpu_bf16_flag, describe_precision
from monitor.classify.model import FinSentModel
from monitor.classify.precision import Precision, choose_cpu_precision
from monitor.classify.transformer import TransformerClassifier
from monitor.config import ClassifierSettings


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    return path


def test_amx_bf16_is_preferred_over_avx512_bf16(tmp_path: Path) -> None:
    assert cpu_bf16_flag(_cpuinfo(tmp_path, "avx512_bf16 amx_bf16 amx_tile")) == "amx_bf16"
    assert cpu_bf16_flag(_cpuinfo(tmp_path, "avx512f avx512_bf16")) == "avx512_bf16"


def test_cpu_without_bf16_flags_or_cpuinfo_has_no_bf16(tmp_path: Path) -> None:
    assert cpu_bf16_flag(_cpuinfo(tmp_path, "avx2 avx512f")) is None
    assert cpu_bf16_flag(tmp_path / "missing") is None


@pytest.fixture
def model(tiny_model_dir: Path) -> FinSentModel:
    loaded = FinSentModel.from_pretrained(str(tiny_model_dir))
    loaded.train(False)
    return loaded


def _fake_probe(monkeypatch: pytest.MonkeyPatch, times: dict[str, float]) -> None:
    monkeypatch.setattr(precision, "MIN_PROBE_PARAMETERS", 0)
    monkeypatch.setattr(precision, "best_times_s", lambda candidates, ids, mask: {k: times[k] for k in candidates})


@pytest.mark.parametrize(
    ("times", "dtype", "autocast"),
    [
        ({"float32": 3.0, "autocast": 1.5, "bfloat16": 1.0}, torch.bfloat16, False),
        ({"float32": 3.0, "autocast": 1.0, "bfloat16": 1.5}, torch.float32, True),
        ({"float32": 3.0, "autocast": 1.0, "bfloat16": 1.1}, torch.bfloat16, False),  # autocast < 1.15x bf16
        ({"float32": 1.1, "autocast": 1.0, "bfloat16": 1.0}, torch.float32, False),  # < 1.2x: exact fp32 kept
    ],
)
def test_auto_keeps_the_fastest_mode_only_when_it_clearly_beats_fp32(
    monkeypatch: pytest.MonkeyPatch, model: FinSentModel, times: dict[str, float], dtype: torch.dtype, autocast: bool
) -> None:
    _fake_probe(monkeypatch, times)
    chosen, module = choose_cpu_precision("auto", model, 100, "avx512_bf16")
    assert (chosen.dtype, chosen.autocast) == (dtype, autocast)
    assert next(module.parameters()).dtype == dtype
    assert chosen.reason.startswith("avx512_bf16: bf16 weights")
    assert "fp32 in probe" in chosen.reason


def test_auto_without_bf16_instructions_stays_fp32_without_probing(
    monkeypatch: pytest.MonkeyPatch, model: FinSentModel
) -> None:
    monkeypatch.setattr(precision, "best_times_s", lambda *a: pytest.fail("probed"))
    chosen, module = choose_cpu_precision("auto", model, 100, None)
    assert chosen == Precision(torch.float32, False, "no amx_bf16/avx512_bf16 in the cpu flags")
    assert module is model


def test_a_tiny_model_stays_fp32_even_on_a_bf16_cpu(model: FinSentModel) -> None:
    chosen, _ = choose_cpu_precision("auto", model, 100, "amx_bf16")
    assert chosen.dtype == torch.float32 and "too small" in chosen.reason


def test_the_real_probe_times_every_candidate(model: FinSentModel) -> None:
    candidates = {"a": precision._call(model, False), "b": precision._call(model, True)}
    vocab = int(model.config.encoder_config().vocab_size)
    times = precision.best_times_s(candidates, *precision.probe_inputs(vocab, rows=2, tokens=4), rounds=2)
    assert set(times) == {"a", "b"} and all(0 < t < 10 for t in times.values())
    assert torch.get_num_threads() >= 1


def test_configured_bf16_classifier_agrees_with_fp32(tiny_model_dir: Path) -> None:
    texts = ["shares plunge after fraud probe", "apple beats estimates", "fed rates rise", "ok"]
    fp32 = TransformerClassifier(ClassifierSettings(model_path=str(tiny_model_dir), dtype="float32"))
    bf16 = TransformerClassifier(ClassifierSettings(model_path=str(tiny_model_dir), dtype="bfloat16"))
    assert bf16.precision.label == "bfloat16" and fp32.precision.label == "float32"
    for a, b in zip(fp32.predict(texts), bf16.predict(texts), strict=True):
        assert a.score == pytest.approx(b.score, abs=0.05)
        assert sum(b.sentiment_probs) == pytest.approx(1.0, abs=1e-5)


def test_autocast_classifier_runs_bf16_matmuls_on_fp32_weights(
    monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    _fake_probe(monkeypatch, {"float32": 3.0, "autocast": 1.0, "bfloat16": 2.0})
    monkeypatch.setattr("monitor.classify.transformer.cpu_bf16_flag", lambda: "amx_bf16")
    clf = TransformerClassifier(ClassifierSettings(model_path=str(tiny_model_dir)))
    assert clf.precision.label == "float32+autocast-bf16"
    assert next(clf.model.parameters()).dtype == torch.float32
    assert len(clf.predict(["stock surge after upgrade"])) == 1


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("transformer", "auto", "cpu", False, None), "float32 (no amx_bf16"),
        (("transformer", "auto", "auto", False, "amx_bf16"), "amx_bf16: bf16 weights or bf16 autocast"),
        (("transformer", "bfloat16", "cpu", False, None), "bfloat16 (configured)"),
        (("transformer", "auto", "cpu", True, "amx_bf16"), "int8 dynamic quantization"),
        (("transformer", "auto", "cuda", False, None), "cuda: bfloat16"),
        (("lexicon", "auto", "cpu", False, None), "n/a"),
    ],
)
def test_config_describes_the_precision_rule_without_loading_the_model(
    args: tuple[str, str, str, bool, str | None], expected: str
) -> None:
    assert describe_precision(*args).startswith(expected)


@pytest.mark.parametrize(("major", "expected"), [(7, torch.float16), (8, torch.bfloat16)])
def test_cuda_auto_picks_bf16_only_where_the_gpu_has_it_natively(
    monkeypatch: pytest.MonkeyPatch, major: int, expected: torch.dtype
) -> None:
    """A T4/V100 (compute capability 7) can allocate bf16 tensors, so torch's default check said yes and the fp16
    fallback never ran (found by review)."""
    from types import SimpleNamespace

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _device: SimpleNamespace(major=major))
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda _device: True)  # emulation "works"
    assert precision.cuda_precision("auto").dtype == expected
