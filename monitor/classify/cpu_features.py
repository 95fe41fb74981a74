"""What this CPU can do for inference, read without importing torch (``monitor config`` stays fast)."""

from __future__ import annotations

import os
from pathlib import Path

BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
"""/proc/cpuinfo flags of native bf16 dot products, best first."""
MIN_SPEEDUP = 1.2
"""A bf16 mode must be this much faster than fp32 in the load-time probe to be chosen."""


def cpu_bf16_flag(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The best native bf16 instruction set this CPU advertises, or None (also off Linux)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
            break
    return next((f for f in BF16_CPU_FLAGS if f in flags), None)


def describe_precision(kind: str, dtype: str, device: str, quantize_int8: bool, flag: str | None) -> str:
    """What the classifier's precision settings resolve to here, without loading the model."""
    if kind != "transformer":
        return f"n/a (classifier.kind = {kind})"
    if quantize_int8 and device != "cuda":
        return "int8 dynamic quantization (classifier.quantize_int8 = true)"
    if dtype != "auto":
        return f"{dtype} (configured)"
    if device == "cuda":
        return "cuda: bfloat16 (float16 where the GPU lacks bf16)"
    if flag is None:
        return "float32 (no amx_bf16/avx512_bf16 in the cpu flags)"
    return (f"{flag}: bf16 weights or bf16 autocast, whichever the load-time probe measures faster, if "
            f">= {MIN_SPEEDUP}x fp32 (else float32); `monitor config --probe` measures it now")


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask on Linux, else every core)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
