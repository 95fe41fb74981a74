"""The soak benchmark's short version runs against real tansu + redis-server and prints its table
(a smoke test of the script: no timing is asserted, the host is shared, but the daemon must have done the
work: an idle daemon's flat lag and RSS would pass any format check)."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import bench_soak
from tests.servers import free_port


def test_short_soak_runs_the_daemon_and_prints_lag_and_rss(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--short", "--duration-s", "12", "--sample-s", "3", "--rate", "30", "--classifier", "lexicon"]
    assert bench_soak.main(argv) == 0
    out = capsys.readouterr().out
    assert "| t (s) | produced | processed | lag | processed msg/s | RSS MiB | event-loop lag p99 (s) |" in out
    rows = [line for line in out.splitlines()
            if line.startswith("| ") and line[2].isdigit() and "no /metrics" not in line]  # a scrape may time out
    assert len(rows) >= 3
    assert all(float(row.split("|")[6].replace(",", "")) > 10 for row in rows)  # RSS of a live daemon, MiB
    produced, processed = (int(rows[-1].split("|")[i].replace(",", "")) for i in (2, 3))
    assert processed >= 0.8 * produced > 0, out  # 30 msg/s of lexicon: it keeps up
    # the lag verdict itself depends on the neighbours (2 s of stall flips it): a real one, not "nothing processed"
    assert "flat lag: yes (" in out or "flat lag: NO (second half grew" in out
    assert "bounded memory:" in out and "nothing processed" not in out and "daemon exited 0" in out
    assert all(row.split("|")[7].strip().startswith(("<=", ">")) for row in rows[1:])  # the probe ran, scraped
    assert "event loop: p99 lag <=" in out


def _sample(at_s: float, produced: int, processed: int) -> bench_soak.Sample:
    return bench_soak.Sample(at_s, produced, processed, rss_mib=100.0, loop_lag={})


def test_a_daemon_that_processed_nothing_gets_no_for_both_verdicts_and_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = argparse.Namespace(rate=30.0)
    samples = [_sample(3.0 * n, 30 * n, 0) for n in range(1, 5)]
    assert bench_soak.print_verdict(args, samples) is False
    out = capsys.readouterr().out
    assert "flat lag: NO (nothing processed)" in out and "bounded memory: NO (nothing processed)" in out


def test_a_daemon_that_kept_up_gets_yes_for_both_verdicts(capsys: pytest.CaptureFixture[str]) -> None:
    samples = [_sample(3.0 * n, 90 * n, 90 * n - 5) for n in range(1, 5)]
    assert bench_soak.print_verdict(argparse.Namespace(rate=30.0), samples) is True
    out = capsys.readouterr().out
    assert "flat lag: yes (" in out and "bounded memory: yes (" in out


def test_a_failed_scrape_is_a_missing_sample_not_nothing_processed(capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review: the last /metrics scrape timing out (``scrape`` gives "", so 0 processed) failed a run that
    processed 266 of 270 messages, as "nothing processed"."""
    samples = [_sample(3.0 * n, 90 * n, 90 * n - 4) for n in range(1, 4)]
    samples.append(bench_soak.Sample(12.0, 360, 0, rss_mib=100.0, loop_lag={}, scraped=False))
    assert bench_soak.print_verdict(argparse.Namespace(rate=30.0), samples) is True
    out = capsys.readouterr().out
    assert "flat lag: yes (second half grew by 0 messages" in out and "bounded memory: yes (" in out
    assert "1 of 4 /metrics scrapes failed" in out and "final lag 4" in out and "nothing processed" not in out
    assert bench_soak.scrape(free_port()) == ""  # what a failed scrape gives, which run_producer marks unscraped
