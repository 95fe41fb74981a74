"""The classifier in a worker process: its own interpreter, so its forward pass never waits for the GIL.

In one process the inference thread takes the GIL back after every model op, so whenever the event
loop runs Python (parsing, novelty, window writes, detection) the model waits: next to a busy Python
thread the classifier ran at 42% of its alone rate even with a 0.5 ms switch interval
(benchmarks/RESULTS.md, "GIL"). In a child process the model and the engine each get a core of their
own; a batch crosses the process boundary as a list of strings one way and a list of ``Prediction``
the other (a few kB each way, against a forward pass of 100+ ms per batch).

Lifecycle: ``start()`` spawns the worker and loads the model there (a load error is raised here, as
the same one-line ``ModelLoadError`` an in-process load gives); ``stop()`` lets the running batch end
and shuts the worker down. A worker that dies (killed, out of memory, a crash in native code), or hangs
past ``classifier.batch_timeout_s`` and is killed for it, is respawned once per call and the call
retried; if the new one dies or hangs too the call fails, and the pipeline's per-message retry
dead-letters the text that kills it (monitor/engine/pipeline.py).
The worker ignores SIGINT/SIGTERM: stopping is the parent's decision, after the in-flight batch.
If the parent itself dies without stopping it (kill -9, the OOM killer), the worker exits at once rather
than linger as an orphan holding the model's memory: a supervisor restarting the daemon would otherwise
leak one model per restart.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import structlog

from monitor import metrics
from monitor.classify import build_classifier
from monitor.classify.cpu_features import available_cpus
from monitor.config import ClassifierSettings
from monitor.fatal import named
from monitor.lifecycle import Service
from monitor.types import Classifier, Prediction

log = structlog.get_logger(__name__)

LOAD_TIMEOUT_S = 600.0
"""Longest a worker may take to load the model (hub downloads are not allowed at run time, so this
only covers a cold disk cache and the precision probe)."""

WARM_UP_TEXTS = ["Shares of $ACME fell 5% after the company cut its outlook", "Fed holds rates"] * 4

ClassifierFactory = Callable[[ClassifierSettings], Classifier]

_worker_classifier: Classifier | None = None
"""The model, in the worker process only."""


class InferenceWorkerError(RuntimeError):
    """The inference worker process died, or hung past ``classifier.batch_timeout_s``, twice in one call."""


def _exit_with_parent() -> None:
    """In the worker: exit as soon as the parent process is gone (its sentinel becomes ready). A pool
    worker otherwise waits forever on a call queue that it holds both ends of."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        multiprocessing.connection.wait([sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


Fingerprint = tuple[tuple[str, str], ...]
"""The labels (sentiment, topic) a worker's model gives ``WARM_UP_TEXTS``: a respawned worker must give the same."""


def _load_in_worker(
    factory: ClassifierFactory, settings: dict[str, Any], log_level: str, log_format: str
) -> tuple[str, Fingerprint]:
    """Worker initialisation: quiet signals, exit with the parent, logging like the parent's, then the
    model. Returns its name and its fingerprint."""
    global _worker_classifier
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with_parent()
    from monitor.logging import configure_logging

    configure_logging(log_level, log_format)
    _worker_classifier = factory(ClassifierSettings.model_validate(settings))
    warm = _worker_classifier.predict(WARM_UP_TEXTS)  # first-call kernel set-up here, not on the first batch
    return _worker_classifier.name, tuple((p.sentiment.value, p.topic) for p in warm)


def _predict_in_worker(texts: list[str]) -> list[Prediction]:
    if _worker_classifier is None:
        raise InferenceWorkerError("inference worker has no model (not initialised)")
    try:
        return _worker_classifier.predict(texts)
    except Exception as exc:
        # only its text crosses back: an error the parent could not unpickle (a custom __init__) was reported as
        # the worker dying twice (two respawns, the real error lost), one the worker could not pickle as a
        # TypeError about pickling (found by review)
        raise RuntimeError(named(exc)[:2000]) from None


class ProcessClassifier(Service):
    """A ``Classifier`` whose model lives in one spawned worker process (see module docstring)."""

    def __init__(
        self, settings: ClassifierSettings, *, log_level: str = "INFO", log_format: str = "json",
        factory: ClassifierFactory = build_classifier,
    ) -> None:
        self.settings = settings
        self.factory = factory
        """Builds the model in the worker (a module-level function: it is pickled to the worker)."""
        self._log = (log_level, log_format)
        self.name = f"{settings.kind}:{settings.model_path or 'default'} (worker process)"
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        """Serialises respawns (they happen on the inference thread, stop on the event loop)."""
        self._closed = False
        self._spawn_failed: BaseException | None = None
        """Why the last respawn failed: later calls fail at once instead of each waiting out a load."""
        self._spawning: ProcessPoolExecutor | None = None
        """The pool whose worker is loading the model now (``abort`` kills it)."""
        self._fingerprint: Fingerprint | None = None
        """The first worker's (``Fingerprint``): a respawn reloads the model from disk, and a directory changed
        since start (a retrain or a partial copy into it) swapped the model mid-run without a word (a review
        saw every text become neutral after one worker death)."""
        self.busy_s = 0.0
        """Wall time spent inside ``predict`` (worker computing plus the hand-over), for benchmarks."""

    async def _start(self) -> None:
        self._closed = False
        self._spawn_failed = None
        self._fingerprint = None
        try:
            await asyncio.to_thread(self._spawn)
        except asyncio.CancelledError:
            # a stop while the model loads: the load thread cannot be cancelled, and the exit waited for it (a
            # SIGTERM at start took 15 s, a slow load until the hard-exit backstop; found by review)
            self.abort()
            raise

    async def _stop(self) -> None:
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)

    def abort(self) -> None:
        """The stop is overdue: kill the worker (a forward pass stuck on one batch cannot be asked to end) and
        start no other, so the inference thread returns now. Before, each hung batch was killed only at
        ``batch_timeout_s`` and a new worker was loaded for its retry, keeping the daemon alive for about
        twice ``batch_timeout_s`` after SIGTERM (found by review)."""
        with self._lock:
            self._closed = True
            pools = (self._pool, self._spawning)
        for pool in pools:
            if pool is not None:
                _kill_workers(pool)

    def _spawn(self) -> None:
        """A fresh worker with the model loaded; raises the worker's load error."""
        if self._closed:
            raise InferenceWorkerError("the daemon is stopping: no new inference worker")
        pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        self._spawning = pool  # abort() kills a load in progress too
        try:
            loaded = pool.submit(_load_in_worker, self.factory, self.settings.model_dump(), *self._log)
            name, fingerprint = loaded.result(timeout=LOAD_TIMEOUT_S)
            if self._fingerprint is not None and fingerprint != self._fingerprint:
                raise InferenceWorkerError(
                    f"the respawned inference worker's model labels its warm-up texts {fingerprint} where the "
                    f"first gave {self._fingerprint}: the model at classifier.model_path changed since start -- "
                    "restart the daemon to use it (or put the model it started with back)")
            self._fingerprint = fingerprint
        except BaseException as exc:
            _kill_workers(pool)  # a load that hung (a wedged device, a stuck mount) leaves a live worker behind
            self._spawn_failed = exc
            raise
        finally:
            self._spawning = None
        with self._lock:
            old, self._pool = self._pool, (None if self._closed else pool)
        for unused in (old, None if self._pool is pool else pool):
            if unused is not None:
                unused.shutdown(wait=False, cancel_futures=True)
        self.name = f"{name} (worker process)"
        log.info("inference_worker_started", classifier=name)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Blocking: run on the batcher's inference thread, like an in-process ``predict``."""
        batch = list(texts)
        timeout_s = self.settings.batch_timeout_s
        if self._spawn_failed is not None:  # fail fast: every call would wait out another load timeout
            raise InferenceWorkerError(f"the inference worker could not be restarted ({self._spawn_failed!r}) -- "
                                       "the model is unusable in this process; restart the daemon")
        for attempt in (1, 2):
            pool = self._pool
            if pool is None:
                raise InferenceWorkerError("inference worker is not running (ProcessClassifier not started)")
            started = time.perf_counter()
            try:
                return pool.submit(_predict_in_worker, batch).result(timeout=timeout_s)
            except BrokenProcessPool:
                if self._closed:  # killed by the stop itself: no death to page on
                    raise InferenceWorkerError("the inference worker was stopped with the daemon") from None
                log.error("inference_worker_died", texts=len(batch), attempt=attempt)
                metrics.INFERENCE_WORKER_DEATHS.inc()
            except TimeoutError:
                log.error("inference_worker_hung", texts=len(batch), attempt=attempt, timeout_s=timeout_s)
                metrics.INFERENCE_WORKER_TIMEOUTS.inc()
                _kill_workers(pool)
            finally:
                self.busy_s += time.perf_counter() - started
            if self._closed:
                raise InferenceWorkerError("the inference worker was stopped with the daemon")
            if self._pool is pool:  # a live worker for the retry, or for the next call after a second loss
                self._spawn()
        raise InferenceWorkerError(f"inference worker died or hung twice on a batch of {len(batch)} texts")


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """SIGKILL a pool's worker processes: a hung forward pass cannot be asked to stop."""
    for process in list((pool._processes or {}).values()):  # the pool offers no public handle on them
        process.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def engine_classifier(settings: ClassifierSettings, *, log_level: str, log_format: str) -> Classifier:
    """The daemon's classifier: in a worker process when ``classifier.worker`` says so (``auto``: a
    transformer on a host with two or more usable cores), else in this process."""
    if use_worker_process(settings):
        return ProcessClassifier(settings, log_level=log_level, log_format=log_format)
    return build_classifier(settings)


def use_worker_process(settings: ClassifierSettings) -> bool:
    if settings.worker != "auto":
        return settings.worker == "process"
    return settings.kind == "transformer" and available_cpus() >= 2
