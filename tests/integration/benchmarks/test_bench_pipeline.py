"""The end-to-end benchmark's short version, memory and a real redis-server: the naive loop and the real
pipeline must leave the same messages in the windows (no speed asserted, the host is shared)."""

from __future__ import annotations

import pytest

from benchmarks import bench_pipeline


def test_short_run_naive_and_pipeline_apply_and_window_the_same_messages(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_pipeline.main(["--classifiers", "lexicon", "--messages", "400"]) == 0
    out = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| lexicon | ") and "(" in line]
    by_store: dict[str, list[list[str]]] = {}
    for cells in rows:
        by_store.setdefault(cells[1], []).append(cells)
    assert sorted(by_store) == ["memory", "redis"]
    for store, (naive, ours) in by_store.items():
        assert naive[2].startswith("(a)") and ours[2].startswith("(b)"), store
        assert naive[-2] == ours[-2] == "400 / 0 / 0 / 0", store  # applied / invalid / late / alerts
        assert naive[-1] == ours[-1], f"{store}: windows differ: {naive[-1]} vs {ours[-1]}"
    assert "| engine msg/s (b) | classifier alone msg/s |" in out
