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


def test_the_cuda_index_follows_the_driver() -> None:
    """A CUDA build newer than the driver installs and then cannot use the GPU (CUDA 13 needs R580)."""
    assert bench_gpu.cuda_indexes(575) == ["cu129", "cu128", "cu126"]
    assert bench_gpu.cuda_indexes(580)[0] == "cu130"
    assert bench_gpu.cuda_indexes(470) == []
    assert bench_gpu.cuda_indexes(None) == [name for name, _ in bench_gpu.CUDA_INDEXES]


def _cpu_torch_on_a_gpu_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, str]]:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.delenv("FINSENT_GPU_REEXEC", raising=False)
    monkeypatch.setattr(bench_gpu, "nvidia_present", lambda: True)
    monkeypatch.setattr(bench_gpu, "GPU_SITE", tmp_path / "gpu-site")
    installs: list[tuple[str, str]] = []

    def no_exec(*_args: object) -> None:
        raise SystemExit("re-exec")

    monkeypatch.setattr(bench_gpu.os, "execve", no_exec)
    return installs


def test_a_driver_older_than_every_cuda_build_is_one_line_without_a_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _cpu_torch_on_a_gpu_host(monkeypatch, tmp_path)
    monkeypatch.setattr(bench_gpu, "driver_major", lambda: 470)
    monkeypatch.setattr(bench_gpu, "pip_install", lambda *_a: pytest.fail("nothing to install for this driver"))
    assert bench_gpu.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "driver (470) is older" in out[0]


def test_a_working_cuda_install_from_an_earlier_run_is_reused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """pip --target re-downloaded the whole stack at every run and kept a bad first install for ever."""
    _cpu_torch_on_a_gpu_host(monkeypatch, tmp_path)
    monkeypatch.setattr(bench_gpu, "site_cuda", lambda site, _v: "12.8" if site == bench_gpu.GPU_SITE else None)
    monkeypatch.setattr(bench_gpu, "pip_install", lambda *_a: pytest.fail("installed again"))
    with pytest.raises(SystemExit, match="re-exec"):
        bench_gpu.main([])


def _fake_torch_site(site: Path, version: str) -> Path:
    """A site holding a stand-in torch ``version`` that reports CUDA 12.1 usable, as a leftover install would."""
    (site / "torch").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text(
        f"__version__ = {version!r}\nclass version:\n    cuda = '12.1'\n"
        "class cuda:\n    @staticmethod\n    def is_available():\n        return True\n")
    return site


def test_a_gpu_site_is_used_only_when_it_holds_the_venvs_torch_version(tmp_path: Path) -> None:
    site = _fake_torch_site(tmp_path / "gpu-site", "2.4.0+cu121")
    assert bench_gpu.site_cuda(site, "2.4.0") == "12.1"
    assert bench_gpu.site_cuda(site, "2.13.0") is None


def test_a_gpu_site_left_with_another_torch_version_is_installed_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A var/gpu-site torch 2.4.0+cu121 was reused under a venv of torch 2.13.0 (found by review)."""
    _cpu_torch_on_a_gpu_host(monkeypatch, tmp_path)
    _fake_torch_site(bench_gpu.GPU_SITE, "2.4.0+cu121")
    monkeypatch.setattr(torch, "__version__", "2.13.0+cpu")
    monkeypatch.setattr(bench_gpu, "driver_major", lambda: 575)
    installs: list[str] = []

    def install(version: str, urls: list[str]) -> str | None:
        installs.append(version)
        return "stop here"

    monkeypatch.setattr(bench_gpu, "install_cuda_torch", install)
    assert bench_gpu.main([]) == 0
    assert installs == ["2.13.0"]


def test_a_failed_install_says_what_each_index_answered_in_one_line_and_keeps_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess

    _cpu_torch_on_a_gpu_host(monkeypatch, tmp_path)
    monkeypatch.setattr(bench_gpu, "driver_major", lambda: 575)
    tried: list[str] = []

    def failing_pip(target: Path, url: str, requirement: str) -> subprocess.CompletedProcess[str]:
        tried.append(url)
        target.mkdir(parents=True)
        return subprocess.CompletedProcess([], 1, "", "WARNING: Retrying...\nERROR: No matching distribution found\n")

    monkeypatch.setattr(bench_gpu, "pip_install", failing_pip)
    assert bench_gpu.main([]) == 0
    out = capsys.readouterr().out.splitlines()
    assert tried == [bench_gpu.TORCH_INDEX.format(n) for n in ("cu129", "cu128", "cu126")]
    assert len(out) == 2 and out[1].startswith("bench-gpu: could not install") and "No matching distribution" in out[1]
    assert "Retrying" not in out[1]
    assert not any(tmp_path.iterdir()), "the partial install is removed"


def test_the_peak_table_prefers_the_most_specific_device_name() -> None:
    assert bench_gpu.peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bench_gpu.peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert bench_gpu.peak_tflops("NVIDIA H200 NVL") == 835.0
    assert bench_gpu.peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert bench_gpu.peak_tflops("NVIDIA L40S") == 362.0 and bench_gpu.peak_tflops("NVIDIA L4") == 121.0
    assert bench_gpu.peak_tflops("Some Future GPU") == 0.0


def test_every_batch_shape_runs_once_before_the_clock_starts() -> None:
    """Shapes first met inside the timed loop timed their CUDA graph capture (or compilation) as a batch."""
    encoded = [[5] * n for n in (3, 4, 20, 21, 40, 41)]
    batches = bench_gpu.padded_batches(encoded, 2, torch.device("cpu"))
    calls: list[object] = []

    def forward(ids: torch.Tensor, _mask: torch.Tensor) -> None:
        calls.append(tuple(ids.shape))

    bench_gpu.measure(forward, batches, lambda: calls.append("sync"), lambda _lengths: 0.0, ("x", "eager", 2))
    warm, timed = calls[: calls.index("sync")], [c for c in calls[calls.index("sync") :] if c != "sync"]
    assert set(timed) <= set(warm) and len(timed) == len(batches)


def test_flops_are_counted_before_the_clock_starts_not_between_timed_batches() -> None:
    """A FLOP count (~0.5 ms on the CPU) between batches was timed as GPU work (found by review)."""
    encoded = [[5] * n for n in (3, 4, 20, 21, 40, 41)]
    batches = bench_gpu.padded_batches(encoded, 2, torch.device("cpu"))
    calls: list[object] = []

    def forward(ids: torch.Tensor, _mask: torch.Tensor) -> None:
        calls.append("forward")

    def flops(lengths: list[int]) -> float:
        calls.append("flops")
        return 10.0 * sum(lengths)

    row = bench_gpu.measure(forward, batches, lambda: calls.append("sync"), flops, ("x", "eager", 2))
    assert "flops" not in calls[calls.index("sync") :]  # nothing but forward passes once warm
    assert row.flops == 10.0 * sum(len(e) for e in encoded)
