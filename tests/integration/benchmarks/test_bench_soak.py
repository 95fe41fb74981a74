"""The soak benchmark's short version runs against real tansu + redis-server and prints its table
(a smoke test of the script: no timing is asserted, the host is shared)."""

from __future__ import annotations

import pytest

from benchmarks import bench_soak


def test_short_soak_runs_the_daemon_and_prints_lag_and_rss(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--short", "--duration-s", "12", "--sample-s", "3", "--rate", "30", "--classifier", "lexicon"]
    assert bench_soak.main(argv) == 0
    out = capsys.readouterr().out
    assert "| t (s) | produced | processed | lag | processed msg/s | RSS MiB | event-loop lag p99 (s) |" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) >= 3
    assert all(float(row.split("|")[6].replace(",", "")) > 10 for row in rows)  # RSS of a live daemon, MiB
    assert "flat lag:" in out and "bounded memory:" in out and "daemon exited 0" in out
    assert all(row.split("|")[7].strip().startswith(("<=", ">")) for row in rows[1:])  # the probe ran, scraped
    assert "event loop: p99 lag <=" in out
