"""The Redis window-store benchmark's short version against its own redis-server (no speed asserted)."""

from __future__ import annotations

import pytest

from benchmarks import bench_windows


def test_short_run_prints_one_row_per_batch_size(capsys: pytest.CaptureFixture[str]) -> None:
    bench_windows.main(["--messages", "300", "--batch-sizes", "1,64"])
    lines = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["batch", "messages"])
    rows = [line.split() for line in lines[header + 1 :] if line.strip()]
    assert [row[0] for row in rows] == ["1", "64"]
    assert all(float(row[2]) > 0 for row in rows)  # msgs/s
