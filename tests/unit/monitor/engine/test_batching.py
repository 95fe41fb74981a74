from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence

import pytest
from structlog.testing import capture_logs

from monitor.engine.batching import MicroBatcher
from monitor.engine.inference_process import InferenceWorkerError
from monitor.retry import Dependencies
from monitor.types import Prediction
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


async def test_requests_needing_more_than_the_queue_bound_together_all_finish() -> None:
    # found by review: each took its capacity unit by unit, side by side, so each held part of the bound and
    # waited for the rest, and the model never ran again (a replay stalled silently)
    clf = RecordingClassifier()
    batcher = MicroBatcher(clf, max_batch_size=64, max_wait_ms=1, max_queue_messages=100)
    async with batcher:
        async with asyncio.timeout(5):
            results = await asyncio.gather(*(batcher.classify(["x"] * 60) for _ in range(4)))
    assert [len(r) for r in results] == [60] * 4


async def test_a_cancelled_wait_for_capacity_gives_back_what_it_held() -> None:
    clf = RecordingClassifier()
    clf.gate.clear()  # hold the model: the first request keeps 60 of the 100
    async with MicroBatcher(clf, max_batch_size=64, max_wait_ms=1, max_queue_messages=100) as batcher:
        first = asyncio.create_task(batcher.classify(["x"] * 60))
        waiting = asyncio.create_task(batcher.classify(["y"] * 60))  # holds 40, waits for 20 more
        await asyncio.sleep(0.05)
        waiting.cancel()
        clf.gate.set()
        await first
        async with asyncio.timeout(5):
            assert len(await batcher.classify(["z"] * 100)) == 100  # all 100 are free again
    assert waiting.cancelled()


async def test_a_request_classified_alone_never_shares_a_forward_pass() -> None:
    """Poison isolation retries one text at a time: merged with another request's poison text, the good one
    failed with it and was dead-lettered, and a canary merged so stopped the daemon (found by review)."""
    clf = RecordingClassifier()
    async with _batcher(clf, max_wait_ms=200) as batcher:
        results = await asyncio.gather(
            batcher.classify(["a", "b"]), batcher.classify_alone(["alone"]), batcher.classify(["c"]),
            batcher.classify_alone(["also alone"]), batcher.classify(["d", "e"]))
    assert clf.calls == [2, 1, 1, 1, 2]  # [a, b] / [alone] / [c] / [also alone] / [d, e]: in order
    assert [len(r) for r in results] == [2, 1, 1, 1, 2]


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


async def test_a_worker_that_cannot_serve_is_logged_in_one_line_without_a_traceback() -> None:
    # found by review: each single-text retry after a failed respawn logged a traceback (71 before the fatal line)
    clf = RecordingClassifier(fail_with=InferenceWorkerError("the inference worker could not be restarted"))
    async with _batcher(clf, max_wait_ms=0) as batcher:
        with capture_logs() as logs, pytest.raises(InferenceWorkerError):
            await batcher.classify(["x"])
    [failed] = [e for e in logs if e["event"] == "inference_failed"]
    assert "exc_info" not in failed and failed["error"] == "the inference worker could not be restarted"


async def test_classify_before_start_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="before start"):
        await _batcher(RecordingClassifier()).classify(["x"])


class _PreparingClassifier:
    """Records when batches are prepared (tokenized) and when their forward passes run."""

    name = "preparing"

    def __init__(self) -> None:
        import threading

        self.events: list[str] = []
        self.release_first = threading.Event()
        self._inner = RecordingClassifier()

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        raise AssertionError("the batcher should use prepare() for a preparing classifier")

    def prepare(self, texts: Sequence[str]) -> Callable[[], list[Prediction]]:
        self.events.append(f"prepare {texts[0]}")

        def forward() -> list[Prediction]:
            self.events.append(f"forward {texts[0]}")
            if texts[0] == "first":
                assert self.release_first.wait(5)
            self.events.append(f"done {texts[0]}")
            return self._inner.predict(texts)

        return forward


async def test_next_batch_is_tokenized_while_the_previous_forward_pass_runs() -> None:
    clf = _PreparingClassifier()
    async with MicroBatcher(clf, max_batch_size=1, max_wait_ms=0, max_queue_messages=100) as batcher:
        first = asyncio.create_task(batcher.classify(["first"]))
        await asyncio.sleep(0.05)
        second = asyncio.create_task(batcher.classify(["second good"]))
        for _ in range(100):
            if "prepare second good" in clf.events:
                break
            await asyncio.sleep(0.01)
        assert clf.events == ["prepare first", "forward first", "prepare second good"]  # overlapped
        clf.release_first.set()
        a, b = await asyncio.gather(first, second)
    assert clf.events[-3:] == ["done first", "forward second good", "done second good"]  # in order, one at a time
    assert len(a) == 1 and b[0].score > 0


async def test_a_tokenizer_failure_fails_its_requests_only() -> None:
    clf = _PreparingClassifier()
    clf.release_first.set()
    original = clf.prepare

    def prepare(texts: Sequence[str]) -> Callable[[], list[Prediction]]:
        if texts[0] == "poison":
            raise ValueError("bad text")
        return original(texts)

    clf.prepare = prepare  # type: ignore[method-assign]
    async with MicroBatcher(clf, max_batch_size=1, max_wait_ms=0, max_queue_messages=100) as batcher:
        with pytest.raises(ValueError, match="bad text"):
            await batcher.classify(["poison"])
        assert len(await batcher.classify(["fine"])) == 1


async def test_the_gil_switch_interval_is_shortened_while_running_and_restored_on_stop() -> None:
    before = sys.getswitchinterval()
    batcher = MicroBatcher(RecordingClassifier(), max_batch_size=8, max_wait_ms=0, max_queue_messages=10,
                           gil_switch_interval_ms=0.5)
    async with batcher:
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    assert sys.getswitchinterval() == before


async def test_a_zero_gil_switch_interval_leaves_the_interpreter_setting_alone() -> None:
    before = sys.getswitchinterval()
    async with _batcher(RecordingClassifier()):
        assert sys.getswitchinterval() == before


async def _until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_a_forward_pass_past_the_stall_bound_marks_the_classifier_down_until_it_returns() -> None:
    deps = Dependencies()
    clf = RecordingClassifier()
    clf.gate.clear()  # the model hangs until the gate opens
    batcher = MicroBatcher(clf, max_batch_size=8, max_wait_ms=1, max_queue_messages=100,
                           stall_after_s=0.2, dependencies=deps)
    async with batcher:
        pending = asyncio.create_task(batcher.classify(["good", "bad"]))
        await asyncio.sleep(0.1)
        assert deps.reasons() == []  # still inside the bound
        await _until(lambda: bool(deps.reasons()))
        [reason] = deps.reasons()
        assert reason.startswith("classifier unreachable: a batch of 2 texts has run for") and "hung" in reason
        clf.gate.set()
        assert len(await pending) == 2
        await _until(lambda: deps.reasons() == [])


async def test_without_a_stall_bound_a_slow_model_is_never_reported() -> None:
    deps = Dependencies()
    clf = RecordingClassifier()
    clf.gate.clear()
    async with MicroBatcher(clf, max_batch_size=8, max_wait_ms=1, max_queue_messages=100,
                            dependencies=deps) as batcher:
        pending = asyncio.create_task(batcher.classify(["good"]))
        await asyncio.sleep(0.3)
        assert deps.reasons() == []
        clf.gate.set()
        await pending
