"""The GIL benchmark's short version: the bundled model alone and next to a busy thread (no speed asserted)."""

from __future__ import annotations

import pytest

from benchmarks import bench_gil


def test_short_run_prints_alone_and_one_switch_interval(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_gil.main(["--texts", "16", "--rounds", "1", "--switch-ms", "5"]) in (0, None)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0] for row in rows] == ["| alone", "| next to a busy Python thread, switch interval 5 ms"]
    assert rows[0].endswith("| 100% |")
