"""Which precision the classifier runs in on this device, chosen by measurement.

Why a probe and not a table: whether bf16 pays off on a CPU depends on the instruction set (AMX-BF16
on Sapphire Rapids and later, AVX512-BF16 on Cooper Lake / Zen 4-5), on oneDNN's kernels for it and on
the model's shapes, and "bf16 weights" vs "fp32 weights under autocast" trade cast overhead against
accuracy differently per host. So with ``classifier.dtype = "auto"`` on a CPU that advertises a bf16
instruction set, the loader times a few forward passes of the real model on a synthetic batch in all
three modes, interleaved (so a neighbour's burst hits every candidate alike), and keeps the fastest,
but only if it beats fp32 by ``MIN_SPEEDUP`` (a tie keeps fp32's exact arithmetic); between the two
bf16 modes, autocast must win by ``AUTOCAST_MARGIN``. The two bf16 modes round differently, so a
host where they tie may pick either after a restart: pin ``dtype = "bfloat16"`` where labels must be
bit-identical across restarts. CPUs without bf16
instructions skip the probe and stay in fp32 (emulated bf16 is slower there). int8 is never picked
automatically: it changes labels (its macro-F1 cost is in ``monitor eval``); ``quantize_int8 = true``
asks for it. On CUDA the rule is fixed: bf16 where supported, else fp16.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from monitor.classify.cpu_features import MIN_SPEEDUP

AUTOCAST_MARGIN = 1.15
"""bf16 autocast must beat bf16 weights by this much to be chosen: the two modes round differently
(a handful of labels in 4,230 differ), so near a tie the choice should not flip with the noise."""
MIN_PROBE_PARAMETERS = 5_000_000
"""Smaller models stay fp32 without a probe: their time is per-op overhead, not GEMMs, so bf16 would
only add rounding (and a noisy probe could pick it by chance)."""
PROBE_ROWS, PROBE_TOKENS, PROBE_ROUNDS = 16, 24, 3
"""Probe batch: tweet-length texts, timed this many interleaved rounds (best kept). The probe runs on
ONE intra-op thread: bf16 vs fp32 is a property of each core's instruction set, and on a shared host a
multi-threaded probe measures the neighbours (an OpenMP barrier waits for a descheduled thread: we saw
single calls vary 200-3,400 ms at load 9 on 2 cores, against 90-340 ms on one thread)."""


@dataclass(frozen=True, slots=True)
class Precision:
    """The chosen mode: weights in ``dtype``, optionally run under bf16 autocast, and why."""

    dtype: torch.dtype
    autocast: bool
    reason: str

    @property
    def label(self) -> str:
        name = str(self.dtype).removeprefix("torch.")
        return f"{name}+autocast-bf16" if self.autocast else name

    def context(self, device: torch.device) -> contextlib.AbstractContextManager[object]:
        """Where the forward pass runs: bf16 autocast when chosen, else nothing."""
        if self.autocast:
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


Forward = Callable[[torch.Tensor, torch.Tensor], object]


def probe_inputs(
    vocab_size: int, rows: int = PROBE_ROWS, tokens: int = PROBE_TOKENS
) -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic batch of ``rows`` texts padded to ``tokens`` (the last quarter of rows shorter)."""
    generator = torch.Generator().manual_seed(0)
    low = min(1000, max(vocab_size - 1, 1))
    ids = torch.randint(low, max(vocab_size, low + 1), (rows, tokens), generator=generator)
    mask = torch.ones_like(ids)
    mask[rows - rows // 4 :, tokens // 2 :] = 0
    return ids, mask


def best_times_s(candidates: dict[str, Forward], ids: torch.Tensor, mask: torch.Tensor,
                 rounds: int = PROBE_ROUNDS) -> dict[str, float]:
    """Fastest of ``rounds`` timed calls per candidate, after one warm-up each, interleaved, on one thread."""
    best = {name: float("inf") for name in candidates}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _time_rounds(candidates, ids, mask, rounds, best)
    finally:
        torch.set_num_threads(threads)
    return best


def _time_rounds(
    candidates: dict[str, Forward], ids: torch.Tensor, mask: torch.Tensor, rounds: int, best: dict[str, float]
) -> None:
    with torch.inference_mode():
        for forward in candidates.values():
            forward(ids, mask)
        for _ in range(rounds):
            for name, forward in candidates.items():
                started = time.perf_counter()
                forward(ids, mask)
                best[name] = min(best[name], time.perf_counter() - started)


def _call(model: nn.Module, autocast: bool) -> Forward:
    def forward(ids: torch.Tensor, mask: torch.Tensor) -> object:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return model(input_ids=ids, attention_mask=mask)

    return forward


def choose_cpu_precision(
    setting: str, model: nn.Module, vocab_size: int, flag: str | None
) -> tuple[Precision, nn.Module]:
    """The precision for ``model`` (fp32 on entry) on this CPU and the module to run it with."""
    if setting == "bfloat16":
        return Precision(torch.bfloat16, False, "classifier.dtype = bfloat16 (configured)"), model.to(torch.bfloat16)
    if setting in ("float32", "float16"):
        why = "configured" if setting == "float32" else "float16 is not fast on CPUs"
        return Precision(torch.float32, False, f"classifier.dtype = {setting} ({why})"), model
    if flag is None:
        return Precision(torch.float32, False, "no amx_bf16/avx512_bf16 in the cpu flags"), model
    parameters = sum(p.numel() for p in model.parameters())
    if parameters < MIN_PROBE_PARAMETERS:
        why = f"{flag}: model too small for bf16 to pay ({parameters:,} parameters)"
        return Precision(torch.float32, False, why), model
    ids, mask = probe_inputs(vocab_size)
    bf16 = copy.deepcopy(model).to(torch.bfloat16)  # a copy: fp32 -> bf16 -> fp32 would lose bits
    times = best_times_s(
        {"float32": _call(model, False), "autocast": _call(model, True), "bfloat16": _call(bf16, False)}, ids, mask
    )
    speedup = {name: times["float32"] / t for name, t in times.items()}
    summary = f"bf16 weights {speedup['bfloat16']:.1f}x, autocast {speedup['autocast']:.1f}x fp32 in probe"
    winner = "autocast" if speedup["autocast"] >= AUTOCAST_MARGIN * speedup["bfloat16"] else "bfloat16"
    if speedup[winner] < MIN_SPEEDUP:
        return Precision(torch.float32, False, f"{flag}: {summary} (< {MIN_SPEEDUP}x, fp32 kept)"), model
    if winner == "bfloat16":
        return Precision(torch.bfloat16, False, f"{flag}: {summary}"), bf16
    return Precision(torch.float32, True, f"{flag}: {summary}"), model


def cuda_precision(setting: str) -> Precision:
    if setting == "auto":
        # not emulated: by default torch also says yes where a bf16 tensor can merely be allocated (T4, V100), so
        # the fp16 fallback never ran there (found by review)
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return Precision(torch.bfloat16, False, "cuda: bf16 supported")
        return Precision(torch.float16, False, "cuda: no bf16 on this GPU, fp16")
    dtype = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[setting]
    return Precision(dtype, False, f"classifier.dtype = {setting} (configured)")
