"""What this CPU can do for inference, read without importing torch (``monitor config`` stays fast)."""

from __future__ import annotations

import math
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


CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where a container's CPU limit is read (cgroup v2 ``cpu.max``, or v1 ``cpu/cpu.cfs_quota_us``)."""


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """Cores this process may use: its affinity mask (Linux, else every core), capped by a container's CPU
    quota rounded up. Why the quota: ``docker run --cpus 2`` on a 64-core host leaves the affinity at 64, so
    torch started 64 intra-op threads throttled into 2 cores' time, and the worker process was chosen for
    a core the container does not have (found by review)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    return max(1, min(cores, math.ceil(quota))) if quota is not None else cores


def cgroup_cpu_quota(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU limit of this process's cgroup in cores, or None without one (``max``, -1, no file)."""
    for quota_file, period_file in ((root / "cpu.max", None),
                                    (root / "cpu" / "cpu.cfs_quota_us", root / "cpu" / "cpu.cfs_period_us")):
        try:
            fields = quota_file.read_text(encoding="ascii").split()
            if period_file is not None:
                fields.append(period_file.read_text(encoding="ascii").strip())
            quota, period = fields[0], fields[1]
            if quota in ("max", "-1"):
                return None
            return int(quota) / int(period) if int(quota) > 0 and int(period) > 0 else None
        except (OSError, ValueError, IndexError):
            continue
    return None
