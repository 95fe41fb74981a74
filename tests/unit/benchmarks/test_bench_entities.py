"""The entity-linking / novelty benchmark's short version prints its JSON report (no speed asserted)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from benchmarks import bench_entities
from monitor.novelty.index import NoveltyIndex


def test_short_run_reports_linking_with_both_watchlists_and_novelty_memory(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bench_entities.main(["--repeat", "1", "--names", "200", "--memory-entries", "200"])
    report = json.loads(capsys.readouterr().out)
    assert report["messages"] > 4000  # the bundled demo stream
    assert report["link_synthetic_200"]["companies"] == 200
    assert report["link_bundled"]["msg_per_s"] > 0 and report["novelty_decide"]["msg_per_s"] > 0
    assert report["novelty_bytes_per_story"] > 0


def test_every_novelty_run_decides_the_stream_afresh_not_as_repeats_of_the_run_before(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Runs 2-5 shared run 1's index: 4,200 of 4,231 decisions were repeats, the duplicate path (found by review)."""
    repeats: list[bool] = []
    decide = NoveltyIndex.decide

    def recording(index: NoveltyIndex, *args: Any, **kwargs: Any) -> str | None:
        decision = decide(index, *args, **kwargs)
        if index.window_s == 86_400:  # the timed index, not the memory probe's
            repeats.append(decision is not None)
        return decision

    monkeypatch.setattr(NoveltyIndex, "decide", recording)
    bench_entities.main(["--repeat", "2", "--names", "50", "--memory-entries", "50"])
    messages = json.loads(capsys.readouterr().out)["messages"]
    first, second = repeats[:messages], repeats[messages:]
    assert len(second) == messages and sum(second) == sum(first) < messages // 2
