from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks import bench_gpu


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(bench_gpu, "nvidia_present", lambda: False)
    assert bench_gpu.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("bench-gpu: no NVIDIA GPU")


def test_a_gpu_that_torch_cannot_use_is_reported_not_crashed_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(bench_gpu, "nvidia_present", lambda: True)
    monkeypatch.setenv("FINSENT_GPU_REEXEC", "1")  # as after the CUDA build was installed: no second try
    assert bench_gpu.main([]) == 0
    assert "cannot use it" in capsys.readouterr().out


def test_batches_are_length_sorted_and_padded_to_a_bucket() -> None:
    encoded = [[5] * n for n in (3, 40, 17, 9, 130)]
    batches = bench_gpu.padded_batches(encoded, 2, torch.device("cpu"))
    assert [b[0].shape[1] for b in batches] == [16, 64, 128]
    assert sorted(n for b in batches for n in b[2]) == [3, 9, 17, 40, 128]
    _ids, mask, lengths = batches[0]
    assert mask.sum(dim=1).tolist() == [3, 9] and lengths == [3, 9]


def test_cpu_dry_run_prints_the_sweep_table(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_gpu.main(["--device", "cpu", "--quick", "--texts", "40", "--model", str(tiny_model_dir)]) == 0
    out = capsys.readouterr().out
    assert "| dtype | mode | batch | msg/s |" in out
    assert "| bfloat16 | eager | 16 |" in out and "| bfloat16 | eager | 64 |" in out
    assert "product path (tokenize+predict)" in out
