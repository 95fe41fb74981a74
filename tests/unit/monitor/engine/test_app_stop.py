"""A stop request is bounded by ``shutdown_timeout_s``: a part whose stop never returns is cut short, every
later part still closes, and the run ends with one ShutdownIncompleteError instead of hanging."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs

from monitor.config import load_settings
from monitor.engine.app import MonitorApp
from monitor.fatal import ShutdownIncompleteError
from monitor.lifecycle import Service
from monitor.retry import DEPENDENCIES
from monitor.types import SourceRecord
from monitor.windows.memory import MemoryWindowStore
from tests.fakes import RecordingClassifier, msg


class EndlessSource(Service):
    """A live source with nothing to read; its stop hangs (a broker that never answers the final commit)
    unless ``stop_hangs`` is off."""

    def __init__(self, stop_hangs: bool) -> None:
        self.stop_hangs = stop_hangs
        self.stop_entered = False

    async def batches(self, max_records: int, timeout_ms: int) -> AsyncIterator[list[SourceRecord]]:
        while True:
            await asyncio.sleep(timeout_ms / 1000)
            yield []

    async def commit(self, records: object) -> None:
        return None

    async def _stop(self) -> None:
        self.stop_entered = True
        if self.stop_hangs:
            await asyncio.Event().wait()


class ClosingStore(MemoryWindowStore):
    """Started before the source, so stopped after it: records that it still got its turn."""

    closed = False

    async def _stop(self) -> None:
        self.closed = True
        await super()._stop()


def _app(source: EndlessSource, store: ClosingStore, timeout_s: float) -> MonitorApp:
    settings = load_settings(classifier={"kind": "lexicon"}, http={"enabled": False}, alerts={"sinks": []},
                             shutdown_timeout_s=timeout_s)
    return MonitorApp(settings, classifier=RecordingClassifier(), source=source, store=store)  # type: ignore[arg-type]


async def _stop_after(app: MonitorApp, delay_s: float) -> None:
    await asyncio.sleep(delay_s)
    app.request_stop()


async def test_a_stop_step_that_never_returns_is_cut_at_shutdown_timeout_and_later_parts_still_close() -> None:
    source, store = EndlessSource(stop_hangs=True), ClosingStore(60, 3600)
    app = _app(source, store, timeout_s=0.5)
    stopper = asyncio.create_task(_stop_after(app, 0.2))
    started = time.monotonic()
    try:
        with pytest.raises(ShutdownIncompleteError, match=r"shutdown_timeout_s = 0.5.*read again at the next start"):
            async with asyncio.timeout(10):
                await app.run()
    finally:
        DEPENDENCIES.clear()
    await stopper
    assert source.stop_entered and store.closed
    assert time.monotonic() - started < 0.2 + 0.5 + 2.0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_stop_that_finishes_in_time_ends_the_run_normally() -> None:
    source, store = EndlessSource(stop_hangs=False), ClosingStore(60, 3600)
    app = _app(source, store, timeout_s=0.5)
    stopper = asyncio.create_task(_stop_after(app, 0.2))
    async with asyncio.timeout(10):
        stats = await app.run()
    await stopper
    assert stats.read == 0 and store.closed
    await asyncio.sleep(0.6)  # the deadline was disarmed: nothing is cancelled after the run
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


class OneMessageSource(EndlessSource):
    """A live source that delivers a few messages, then nothing."""

    async def batches(self, max_records: int, timeout_ms: int) -> AsyncIterator[list[SourceRecord]]:
        yield [SourceRecord(msg(f"m{n}", "shares fall", 1_700_000_000 + n), n) for n in range(5)]
        async for empty in super().batches(max_records, timeout_ms):
            yield empty


async def test_a_stop_overdue_on_a_hung_forward_pass_names_it() -> None:
    """Found by review: the overdue stop said waiting_on=[] and "a stop step that did not return" while the model
    hung: it counts as down only after batch_timeout_s (120 s), later than the stop deadline."""
    classifier = RecordingClassifier()
    classifier.gate.clear()  # the forward pass hangs until the test lets it go
    settings = load_settings(classifier={"kind": "lexicon"}, http={"enabled": False}, alerts={"sinks": []},
                             shutdown_timeout_s=0.5)
    app = MonitorApp(settings, classifier=classifier, source=OneMessageSource(stop_hangs=False),  # type: ignore[arg-type]
                     store=ClosingStore(60, 3600))
    stopper = asyncio.create_task(_stop_after(app, 0.3))  # the 5 messages are in the forward pass by then
    try:
        with capture_logs() as logs, pytest.raises(ShutdownIncompleteError, match="forward pass of 5 texts running"):
            async with asyncio.timeout(10):
                await app.run()
    finally:
        classifier.gate.set()
        DEPENDENCIES.clear()
    await stopper
    [overdue] = [e for e in logs if e["event"] == "shutdown_overdue"]
    assert any("forward pass of 5 texts" in w for w in overdue["waiting_on"])


class WaitingStore(ClosingStore):
    """A store whose start waits for a Redis that refuses writes (full, read-only, unable to persist)."""

    async def _start(self) -> None:
        await asyncio.Event().wait()


async def test_a_stop_while_a_part_waits_to_start_ends_the_run_at_once_not_at_the_deadline() -> None:
    source, store = EndlessSource(stop_hangs=False), WaitingStore(60, 3600)
    app = _app(source, store, timeout_s=30.0)
    stopper = asyncio.create_task(_stop_after(app, 0.2))
    started = time.monotonic()
    async with asyncio.timeout(10):
        stats = await app.run()
    await stopper
    assert stats.read == 0 and not source.stop_entered, "the source never started"
    assert time.monotonic() - started < 5.0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]


async def test_a_scheduled_job_cancelled_by_the_stop_ends_quietly_and_any_other_cancellation_propagates() -> None:
    """Found by review: apscheduler logged the idle sweep cancelled at shutdown as an ERROR with a traceback."""
    import asyncio

    app = _app(EndlessSource(stop_hangs=False), ClosingStore(60, 3600), 5.0)

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await app._stopping_quietly(cancelled())
    app.request_stop()
    await app._stopping_quietly(cancelled())
