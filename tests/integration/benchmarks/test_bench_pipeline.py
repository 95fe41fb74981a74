"""The end-to-end benchmark's short version, memory and a real redis-server: the naive loop and the real
pipeline must leave the same messages in the windows (no speed asserted, the host is shared)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest

from benchmarks import bench_pipeline
from monitor.types import RawMessage, SourceKind, SourceRecord


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
        assert float(ours[5].removesuffix(" ms")) > 0, f"{store}: (b) p50 latency {ours[5]}"
    assert "| engine msg/s (b) | classifier alone msg/s |" in out


class _ListSource:
    """Two records in one read; nothing else of a source is used here."""

    def __init__(self) -> None:
        at = datetime(2024, 1, 2, tzinfo=UTC)
        messages = [RawMessage(id=str(n), source=SourceKind.NEWS, text="t", event_time=at) for n in range(2)]
        self.records = [SourceRecord(msg, n) for n, msg in enumerate(messages)]

    async def batches(self, max_records: int, timeout_ms: int) -> AsyncIterator[list[SourceRecord]]:
        yield self.records

    async def commit(self, records: Sequence[SourceRecord]) -> None:
        return None


def test_timed_source_times_each_record_even_when_the_commit_is_a_new_list() -> None:
    source = bench_pipeline.TimedSource(_ListSource())  # type: ignore[arg-type]

    async def read_then_commit_copies() -> None:
        async for records in source.batches(10, 0):
            await source.commit(list(records[:1]))  # what the event-time jump guard hands back: a new list
            await source.commit(list(records[1:]))

    asyncio.run(read_then_commit_copies())
    assert len(source.latencies_ms) == 2 and all(ms > 0 for ms in source.latencies_ms)
    source.check_complete(2)


def test_timed_source_fails_loudly_when_a_record_read_was_never_timed() -> None:
    source = bench_pipeline.TimedSource(_ListSource())  # type: ignore[arg-type]

    async def read_commit_one() -> None:
        async for records in source.batches(10, 0):
            await source.commit(records[:1])

    asyncio.run(read_commit_one())
    with pytest.raises(RuntimeError, match="1 latencies for 2 records"):
        source.check_complete(2)
