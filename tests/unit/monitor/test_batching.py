from __future__ import annotations

import asyncio

import pytest

from monitor.batching import MicroBatcher
from tests.fakes import RecordingClassifier


def _batcher(clf: RecordingClassifier, max_batch_size: int = 64, max_wait_ms: int = 50) -> MicroBatcher:
    return MicroBatcher(clf, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, max_queue_messages=1000)


async def test_concurrent_requests_are_coalesced_into_one_model_call() -> None:
    clf = RecordingClassifier()
    async with _batcher(clf) as batcher:
        results = await asyncio.gather(*(batcher.classify([f"good {i}", "bad"]) for i in range(10)))
    assert clf.calls == [20]
    assert all(r[0].score > 0 and r[1].score < 0 for r in results)


async def test_batches_are_capped_at_max_batch_size() -> None:
    clf = RecordingClassifier()
    clf.gate.clear()  # hold the model so requests pile up
    async with _batcher(clf, max_batch_size=8, max_wait_ms=1) as batcher:
        pending = [asyncio.create_task(batcher.classify(["x"] * 4)) for _ in range(6)]
        await asyncio.sleep(0.05)
        clf.gate.set()
        await asyncio.gather(*pending)
    assert sum(clf.calls) == 24
    assert max(clf.calls) <= 8


async def test_each_caller_gets_its_own_predictions_in_order() -> None:
    clf = RecordingClassifier()
    async with _batcher(clf) as batcher:
        a, b = await asyncio.gather(batcher.classify(["bad", "good", "meh"]), batcher.classify(["good"]))
    assert [p.sentiment.value for p in a] == ["negative", "positive", "neutral"]
    assert [p.sentiment.value for p in b] == ["positive"]


async def test_model_error_fails_the_requests_but_not_the_worker() -> None:
    clf = RecordingClassifier(fail_with=RuntimeError("cuda oom"))
    async with _batcher(clf, max_wait_ms=0) as batcher:
        with pytest.raises(RuntimeError, match="cuda oom"):
            await batcher.classify(["x"])
        clf.fail_with = None
        assert len(await batcher.classify(["y"])) == 1


async def test_classify_before_start_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="before start"):
        await _batcher(RecordingClassifier()).classify(["x"])
