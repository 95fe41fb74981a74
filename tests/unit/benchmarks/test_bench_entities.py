"""The entity-linking / novelty benchmark's short version prints its JSON report (no speed asserted)."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_entities


def test_short_run_reports_linking_with_both_watchlists_and_novelty_memory(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench_entities.main(["--repeat", "1", "--names", "200", "--memory-entries", "200"])
    report = json.loads(capsys.readouterr().out)
    assert report["messages"] > 4000  # the bundled demo stream
    assert report["link_synthetic_200"]["companies"] == 200
    assert report["link_bundled"]["msg_per_s"] > 0 and report["novelty_decide"]["msg_per_s"] > 0
    assert report["novelty_bytes_per_story"] > 0
