"""How many cores the model may use: the affinity mask, capped by a container's CPU quota."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.classify.cpu_features import available_cpus, cgroup_cpu_quota


def _v2(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpu.max").write_text(text)
    return root


def _v1(root: Path, quota: str, period: str) -> Path:
    (root / "cpu").mkdir(parents=True)
    (root / "cpu" / "cpu.cfs_quota_us").write_text(quota)
    (root / "cpu" / "cpu.cfs_period_us").write_text(period)
    return root


@pytest.mark.parametrize(("text", "cores"), [("200000 100000\n", 2.0), ("150000 100000", 1.5), ("max 100000", None)])
def test_cgroup_v2_cpu_max_is_read_as_cores(tmp_path: Path, text: str, cores: float | None) -> None:
    assert cgroup_cpu_quota(_v2(tmp_path, text)) == cores


def test_cgroup_v1_quota_over_period_is_read_as_cores_and_minus_one_is_no_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_quota(_v1(tmp_path / "a", "400000", "100000")) == 4.0
    assert cgroup_cpu_quota(_v1(tmp_path / "b", "-1", "100000")) is None


def test_no_cgroup_files_or_garbage_mean_no_limit(tmp_path: Path) -> None:
    assert cgroup_cpu_quota(tmp_path) is None
    assert cgroup_cpu_quota(_v2(tmp_path / "g", "lots")) is None


def test_a_container_quota_caps_the_usable_cores_rounded_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: `docker run --cpus 2` on a 64-core host kept the affinity at 64, so torch ran 64
    threads in 2 cores' time and the worker process was chosen for a core the container does not have."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(64)), raising=False)
    assert available_cpus(_v2(tmp_path / "two", "200000 100000")) == 2
    assert available_cpus(_v2(tmp_path / "half", "50000 100000")) == 1
    assert available_cpus(_v2(tmp_path / "odd", "150000 100000")) == 2
    assert available_cpus(tmp_path / "none") == 64
