"""Dynamic micro-batching in front of the classifier.

Callers submit small groups of texts (one source poll, one partition, one HTTP request) and await
their predictions; a single worker coalesces pending requests until ``max_batch_size`` texts are
waiting or ``max_wait_ms`` has passed since the oldest one arrived, then runs ONE classifier call
off the event loop. The request queue is bounded (``max_queue_messages``) so a slow model pushes
back on the source instead of growing memory. Length bucketing (sort + pad per sub-batch) happens
inside the classifier, where the tokenizer knows real lengths.

A classifier that can ``prepare`` (tokenize) apart from its forward pass gets a two-stage pipeline:
batch i+1 is collected and tokenized in a second thread while batch i's forward pass runs, and the
forward passes still run one at a time, in order.

The inference thread takes the GIL back after every model op, so while the event loop runs Python
(detection) each op may wait a whole GIL switch interval (5 ms by default): next to a busy Python
thread the classifier ran 3x slower (benchmarks/RESULTS.md). The batcher shortens the interval while
it runs (``gil_switch_interval_ms``) and restores it when it stops.

A forward pass that runs past ``stall_after_s`` (``classifier.batch_timeout_s``) makes the daemon not
ready (the ``classifier`` dependency, on ``/readyz`` and ``finsent_dependency_up``) until it returns: a
model in the inference thread cannot be interrupted, so a supervisor has to see it. A worker process is
also killed and respawned at that point (engine/inference_process.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol, runtime_checkable

import structlog

from monitor import metrics
from monitor.engine.inference_process import InferenceWorkerError
from monitor.lifecycle import Service
from monitor.retry import DEPENDENCIES, Dependencies
from monitor.types import Classifier, Prediction

log = structlog.get_logger(__name__)
DRAIN_TIMEOUT_S = 30.0
OUTSTANDING_BATCHES = 2
"""Batches handed to the inference executor at once: the next one waits in its queue while one runs,
so the model never idles while the event loop is busy (detection) between two batches."""


@dataclass(slots=True)
class _Request:
    texts: Sequence[str]
    future: asyncio.Future[list[Prediction]]
    enqueued_at: float = field(default_factory=time.monotonic)
    alone: bool = False
    """Never merged with other requests (poison isolation's one-text retries and its canary)."""


@runtime_checkable
class PreparingClassifier(Protocol):
    """A classifier whose CPU-side preparation (tokenization) can run apart from its forward pass."""

    def prepare(self, texts: Sequence[str]) -> Callable[[], list[Prediction]]: ...


class MicroBatcher(Service):
    """Coalesces concurrent ``classify`` calls into model batches; one inference thread."""

    def __init__(
        self,
        classifier: Classifier,
        *,
        max_batch_size: int,
        max_wait_ms: int,
        max_queue_messages: int,
        gil_switch_interval_ms: float = 0.0,
        stall_after_s: float | None = None,
        dependencies: Dependencies | None = None,
    ) -> None:
        self.classifier = classifier
        self.stall_after_s = stall_after_s
        """A forward pass running longer marks the ``classifier`` dependency down (None = never)."""
        self._deps = dependencies or DEPENDENCIES
        self._busy_since: float | None = None
        """Monotonic start of the forward pass running now (set in the inference thread)."""
        self._busy_texts = 0
        self._stalled = False
        self._watchdog: asyncio.Task[None] | None = None
        self.gil_switch_interval_ms = gil_switch_interval_ms
        """While started: ``sys.setswitchinterval`` in ms (0 = leave the interpreter's)."""
        self._saved_switch_interval_s: float | None = None
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._capacity = asyncio.Semaphore(max_queue_messages)
        self._reserving = asyncio.Lock()
        """One request reserves its capacity at a time. Unit by unit side by side, requests needing more than the
        bound together each held part of it and waited for the rest: the model never ran again (a review's replay
        with max_queue_messages = 100 stalled at 320 of 4,233 messages, silently)."""
        self._max_queue_messages = max_queue_messages
        self._worker: asyncio.Task[None] | None = None
        self._next: _Request | None = None
        """A request taken from the queue that starts the next batch (an ``alone`` one met while collecting)."""
        self._executor: ThreadPoolExecutor | None = None
        self._preparer: ThreadPoolExecutor | None = None

    async def _start(self) -> None:
        if self.gil_switch_interval_ms > 0:
            self._saved_switch_interval_s = sys.getswitchinterval()
            sys.setswitchinterval(self.gil_switch_interval_ms / 1000)
        if isinstance(self.classifier, Service):  # an inference worker process (engine/inference_process.py)
            await self.classifier.start()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        if isinstance(self.classifier, PreparingClassifier):
            self._preparer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokenize")
        self._worker = asyncio.create_task(self._run(), name="micro-batcher")
        if self.stall_after_s is not None:
            self._watchdog = asyncio.create_task(self._watch(self.stall_after_s), name="inference-watchdog")

    async def _stop(self) -> None:
        # Drain: let queued requests finish (bounded), then stop the worker.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self._queue.join()
        for task in (self._worker, self._watchdog):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._mark_stalled(False, 0.0, 0)
        for executor in (self._executor, self._preparer):
            if executor is not None:
                executor.shutdown(wait=True)
        if isinstance(self.classifier, Service):
            await self.classifier.stop()
        if self._saved_switch_interval_s is not None:
            sys.setswitchinterval(self._saved_switch_interval_s)
            self._saved_switch_interval_s = None

    async def classify_alone(self, texts: Sequence[str]) -> list[Prediction]:
        """``classify`` in a forward pass of its own: a text retried to find which one breaks the model
        (engine/poison.py) must not share a pass with another request's poison text. Merged, a good
        message was dead-lettered with it, and a failed canary stopped the daemon as if the model broke."""
        return await self.classify(texts, alone=True)

    async def classify(self, texts: Sequence[str], *, alone: bool = False) -> list[Prediction]:
        """Predictions for ``texts`` in order. Waits (backpressure) while the queue is full."""
        if not texts:
            return []
        if not self.started:
            raise RuntimeError("MicroBatcher.classify() called before start()")
        # Reserve capacity per text; a request larger than the bound reserves the whole bound.
        need = min(len(texts), self._max_queue_messages)
        held = 0
        try:
            async with self._reserving:
                while held < need:
                    await self._capacity.acquire()
                    held += 1
            future: asyncio.Future[list[Prediction]] = asyncio.get_running_loop().create_future()
            await self._queue.put(_Request(texts, future, alone=alone))
            return await future
        finally:  # also what a cancelled reservation held
            for _ in range(held):
                self._capacity.release()

    async def _collect(self) -> list[_Request]:
        first, self._next = self._next or await self._queue.get(), None
        if first.alone:
            return [first]
        batch, size = [first], len(first.texts)
        deadline = first.enqueued_at + self.max_wait_s
        while size < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 and self._queue.empty():
                break
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                async with asyncio.timeout(max(remaining, 0.0)):
                    nxt = await self._queue.get()
            except TimeoutError:
                break
            if nxt.alone:  # it goes next, in a pass of its own
                self._next = nxt
                break
            batch.append(nxt)
            size += len(nxt.texts)
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        running: collections.deque[asyncio.Task[None]] = collections.deque()
        try:
            while True:
                batch = await self._collect()
                texts = [t for req in batch for t in req.texts]
                prepared = None
                if self._preparer is not None and isinstance(self.classifier, PreparingClassifier):
                    prepared = loop.run_in_executor(self._preparer, self.classifier.prepare, texts)
                while len(running) >= OUTSTANDING_BATCHES:
                    await running.popleft()  # the inference executor has one worker: batches run in order
                running.append(asyncio.create_task(self._infer(batch, texts, prepared)))
        finally:
            for task in running:
                if not task.done():
                    task.cancel()

    def _timed(self, forward: Callable[[], list[Prediction]], texts: int) -> list[Prediction]:
        """In the inference thread: the forward pass, with its start visible to the watchdog."""
        self._busy_since, self._busy_texts = time.monotonic(), texts
        try:
            return forward()
        finally:
            self._busy_since = None

    def running_pass(self) -> str | None:
        """The forward pass running now, in words (None: none): what a stop that is overdue waits on. A hung model
        was never named there, since it counts as down only after ``stall_after_s`` (found by review)."""
        since = self._busy_since
        if since is None:
            return None
        return f"classifier: a forward pass of {self._busy_texts} texts running for {time.monotonic() - since:.0f} s"

    async def _watch(self, stall_after_s: float) -> None:
        """Marks the classifier down while one forward pass outruns ``stall_after_s``, up once it returns."""
        while True:
            await asyncio.sleep(min(1.0, stall_after_s / 4))
            since = self._busy_since
            running_s = 0.0 if since is None else time.monotonic() - since
            self._mark_stalled(running_s > stall_after_s, running_s, self._busy_texts)

    def _mark_stalled(self, stalled: bool, running_s: float, texts: int) -> None:
        if stalled and not self._stalled:
            log.error("inference_stalled", running_s=round(running_s, 1), texts=texts)
            self._deps.down("classifier", f"a batch of {texts} texts has run for {running_s:.0f} s (hung model?)")
        elif not stalled and self._stalled:
            log.info("inference_resumed")
            self._deps.up("classifier")
        self._stalled = stalled

    async def _infer(
        self, batch: list[_Request], texts: list[str], prepared: asyncio.Future[Callable[[], list[Prediction]]] | None
    ) -> None:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            forward = await prepared if prepared is not None else partial(self.classifier.predict, texts)
            preds = await loop.run_in_executor(self._executor, self._timed, forward, len(texts))
        except Exception as exc:  # a model failure fails the requests, never the worker
            if isinstance(exc, InferenceWorkerError):  # its own words say it all: a dead worker failing each
                # single-text retry fast gave 71 tracebacks before the one-line fatal error (found by review)
                log.error("inference_failed", texts=len(texts), error=str(exc))
            else:
                log.exception("inference_failed", texts=len(texts))
            for req in batch:
                if not req.future.done():
                    req.future.set_exception(exc)
            return
        finally:
            for _ in batch:
                self._queue.task_done()
        metrics.INFERENCE_SECONDS.observe(time.monotonic() - started)
        metrics.BATCH_SIZE.observe(len(texts))
        offset = 0
        for req in batch:
            n = len(req.texts)
            if not req.future.done():
                req.future.set_result(preds[offset : offset + n])
            offset += n
