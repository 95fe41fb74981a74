"""How much compute a classifier run is, and how much the hardware can do: shared by the CPU and GPU
benchmarks so every GFLOP/s figure is counted one way.

Model FLOPs are counted from the real (unpadded) token counts: per sequence of length L, every encoder
Linear does 2 FLOPs per weight per token, and attention adds QK^T and AV, 2·L²·d each per layer.
Padding, softmax, layer norms and GELU are not counted: they are overhead, not useful work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import torch
from torch import nn


def model_flops(model: nn.Module, layers: int, hidden: int, lengths: Iterable[int]) -> float:
    """Useful FLOPs of one forward pass over sequences of these real lengths."""
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    return float(sum(2.0 * linear * n + 4.0 * layers * n * n * hidden for n in lengths))


def best_call_s(
    call: Callable[[], object], *, per_window: int, seconds: float, warm_up: int,
    sync: Callable[[], object] = lambda: None,
) -> float:
    """Seconds per ``call`` in the fastest window of ``per_window`` calls, windows repeated for about
    ``seconds`` after ``warm_up`` calls (``sync`` ends each window: the CUDA queue, or nothing on a CPU)."""
    for _ in range(warm_up):
        call()
    sync()
    best, spent = float("inf"), 0.0
    while spent < seconds:
        started = time.perf_counter()
        for _ in range(per_window):
            call()
        sync()
        elapsed = (time.perf_counter() - started) / per_window
        best, spent = min(best, elapsed), spent + per_window * elapsed
    return best


def gemm_gflops(dtype: torch.dtype, m: int, k: int, n: int, device: str = "cpu", seconds: float = 0.5) -> float:
    """Best-of-several GFLOP/s of an (m x k) @ (k x n) matmul: the ceiling a model's Linears aim at."""
    a = torch.randn(m, k, dtype=dtype, device=device)
    b = torch.randn(k, n, dtype=dtype, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    best = best_call_s(lambda: a @ b, per_window=4, seconds=seconds, warm_up=2, sync=sync)
    return 2.0 * m * k * n / best / 1e9


def linear_shapes(model: nn.Module) -> list[tuple[int, int]]:
    """(in, out) of every Linear in the model, in module order: one forward pass's GEMM mix."""
    return [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]


def linear_mix_gflops(shapes: list[tuple[int, int]], rows: int, dtype: torch.dtype, seconds: float = 0.5) -> float:
    """Sustained GFLOP/s of the model's own Linears at ``rows`` rows (one sub-batch's padded tokens),
    timed over windows of 10 whole passes, best window kept: what the model's GEMMs could do here.

    ``gemm_gflops`` keeps the best 4-call window of one matmul, which on a shared host catches bursts the
    model never sees for a whole forward pass; this is the fairer yardstick for "how close to the
    hardware" and is reported next to it."""
    weights = [(torch.randn(rows, k, dtype=dtype), torch.randn(n, k, dtype=dtype)) for k, n in shapes]
    flops = 2.0 * rows * sum(k * n for k, n in shapes)

    def one_pass() -> None:
        for x, w in weights:
            nn.functional.linear(x, w)

    return flops / best_call_s(one_pass, per_window=10, seconds=seconds, warm_up=1) / 1e9
