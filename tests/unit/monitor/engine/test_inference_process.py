"""The inference worker process: same predictions as in process, survives a killed worker, clear errors.

These spawn a real Python worker (the lexicon model, so each start costs an interpreter, not a model).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from monitor import metrics
from monitor.classify import ModelLoadError, build_classifier
from monitor.config import ClassifierSettings
from monitor.engine.batching import MicroBatcher
from monitor.engine.inference_process import (
    InferenceWorkerError,
    ProcessClassifier,
    engine_classifier,
    use_worker_process,
)
from monitor.types import Classifier, Prediction, Sentiment
from tests.processes import child_pids, gone, wait_gone

TEXTS = ["Shares plunge after fraud probe", "Record profit, dividend raised", "Fed meets on Tuesday"]
LEXICON = ClassifierSettings(kind="lexicon", worker="process")


class _Poisoned:
    """The lexicon, except that a text containing POISON kills the process (a native crash)."""

    name = "poisoned-lexicon"

    def __init__(self, inner: Classifier) -> None:
        self.inner = inner

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if any("POISON" in t for t in texts):
            os._exit(3)
        return self.inner.predict(texts)


def poisoned_lexicon(settings: ClassifierSettings) -> Classifier:
    return _Poisoned(build_classifier(settings))


class _Hanging(_Poisoned):
    """The lexicon, except that a text containing HANG never returns (a deadlocked native call)."""

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if any("HANG" in t for t in texts):
            time.sleep(3600)
        return self.inner.predict(texts)


def hanging_lexicon(settings: ClassifierSettings) -> Classifier:
    return _Hanging(build_classifier(settings))


class _Odd(Exception):
    """An error pickle can write in the worker but not rebuild in the parent (``__init__`` takes two)."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"model failed with code {code}: {detail}")


class _Failing(_Poisoned):
    """The lexicon, except that a text containing ODD raises ``_Odd``."""

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if any("ODD" in t for t in texts):
            raise _Odd(7, "bad tensor")
        return self.inner.predict(texts)


def failing_lexicon(settings: ClassifierSettings) -> Classifier:
    return _Failing(build_classifier(settings))


class _Flipped(_Poisoned):
    """A different model: everything neutral (what a directory with a broken tokenizer gave)."""

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        return [replace(p, sentiment=Sentiment.NEUTRAL, score=0.0) for p in self.inner.predict(texts)]


def model_on_disk(settings: ClassifierSettings) -> Classifier:
    """The lexicon, or ``_Flipped`` once the file named by ``model_path`` says "flipped" (a model replaced on disk)."""
    flipped = Path(settings.model_path or "").read_text() == "flipped"
    inner = build_classifier(settings.model_copy(update={"model_path": None}))
    return _Flipped(inner) if flipped else inner


def _worker_pid(clf: ProcessClassifier) -> int:
    pool = clf._pool
    assert pool is not None and pool._processes
    return next(iter(pool._processes))


async def test_worker_predictions_equal_the_in_process_classifier() -> None:
    async with ProcessClassifier(LEXICON) as clf:
        assert clf.predict(TEXTS) == build_classifier(LEXICON).predict(TEXTS)
        assert clf.name.endswith("(worker process)")


async def test_a_killed_worker_is_respawned_counted_and_the_call_still_answers() -> None:
    deaths = metrics.INFERENCE_WORKER_DEATHS._value.get()
    async with ProcessClassifier(LEXICON) as clf:
        first = _worker_pid(clf)
        os.kill(first, signal.SIGKILL)
        assert clf.predict(TEXTS) == build_classifier(LEXICON).predict(TEXTS)
        assert _worker_pid(clf) != first
    assert metrics.INFERENCE_WORKER_DEATHS._value.get() == deaths + 1


async def test_a_text_that_kills_the_worker_twice_fails_its_call_and_the_next_call_answers() -> None:
    async with ProcessClassifier(LEXICON, factory=poisoned_lexicon) as clf:
        with pytest.raises(InferenceWorkerError, match="died or hung twice"):
            clf.predict(["fine", "POISON pill"])
        assert clf.predict(TEXTS) == build_classifier(LEXICON).predict(TEXTS)


_PARENT = """
import asyncio, time
from monitor.config import ClassifierSettings
from monitor.engine.inference_process import ProcessClassifier

async def main():
    clf = ProcessClassifier(ClassifierSettings(kind="lexicon", worker="process"))
    await clf.start()
    print("WORKER", next(iter(clf._pool._processes)), flush=True)
    time.sleep(120)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_the_worker_exits_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    root = str(Path(__file__).resolve().parents[4])
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "PYTHONPATH": root},
    )
    try:
        assert parent.stdout is not None
        worker = next(int(line.split()[1]) for line in parent.stdout if line.startswith("WORKER "))
        assert not gone(worker)
        parent.kill()
        parent.wait(timeout=10)
        assert not wait_gone([worker], 15), f"worker {worker} outlived its SIGKILLed parent"
    finally:
        parent.kill()


async def test_a_batch_that_hangs_the_worker_is_killed_twice_then_fails_and_the_next_call_answers() -> None:
    timeouts = metrics.INFERENCE_WORKER_TIMEOUTS._value.get()
    settings = LEXICON.model_copy(update={"batch_timeout_s": 0.5})
    async with ProcessClassifier(settings, factory=hanging_lexicon) as clf:
        hung = _worker_pid(clf)
        started = time.monotonic()
        with pytest.raises(InferenceWorkerError, match="died or hung twice"):
            clf.predict(["fine", "HANG forever"])
        assert time.monotonic() - started < 30  # two timeouts and a respawn, not an hour
        assert not wait_gone([hung], 10), "the hung worker must be killed"
        assert clf.predict(TEXTS) == build_classifier(LEXICON).predict(TEXTS)
    assert metrics.INFERENCE_WORKER_TIMEOUTS._value.get() == timeouts + 2


async def test_an_overdue_stop_kills_a_hung_worker_at_once_and_loads_no_other() -> None:
    """Found by review: the hung batch was killed only at batch_timeout_s and a new worker loaded for its retry,
    keeping the daemon alive for about twice batch_timeout_s after SIGTERM."""
    settings = LEXICON.model_copy(update={"batch_timeout_s": 600.0})
    async with ProcessClassifier(settings, factory=hanging_lexicon) as clf:
        hung = _worker_pid(clf)
        call = asyncio.create_task(asyncio.to_thread(clf.predict, ["HANG forever"]))
        await asyncio.sleep(1.0)
        started = time.monotonic()
        clf.abort()
        with pytest.raises(InferenceWorkerError, match="stopped with the daemon"):
            await asyncio.wait_for(call, 30)
        assert time.monotonic() - started < 10
        assert not wait_gone([hung], 10), "the hung worker must be killed"
        assert clf._pool is None or not clf._pool._processes, "no new worker"


async def test_a_model_error_that_cannot_cross_back_keeps_its_words_and_the_worker() -> None:
    # found by review: the parent could not unpickle it, so it read as the worker dying twice (two respawns)
    deaths = metrics.INFERENCE_WORKER_DEATHS._value.get()
    async with ProcessClassifier(LEXICON, factory=failing_lexicon) as clf:
        worker = _worker_pid(clf)
        with pytest.raises(RuntimeError, match="_Odd: model failed with code 7: bad tensor"):
            clf.predict(["ODD one"])
        assert _worker_pid(clf) == worker
    assert metrics.INFERENCE_WORKER_DEATHS._value.get() == deaths


async def test_a_worker_killed_by_the_stop_is_not_counted_as_a_death() -> None:
    deaths = metrics.INFERENCE_WORKER_DEATHS._value.get()
    settings = LEXICON.model_copy(update={"batch_timeout_s": 600.0})
    async with ProcessClassifier(settings, factory=hanging_lexicon) as clf:
        call = asyncio.create_task(asyncio.to_thread(clf.predict, ["HANG forever"]))
        await asyncio.sleep(1.0)
        clf.abort()
        with pytest.raises(InferenceWorkerError, match="stopped with the daemon"):
            await asyncio.wait_for(call, 30)
    assert metrics.INFERENCE_WORKER_DEATHS._value.get() == deaths


async def test_a_respawn_that_loads_another_model_than_at_start_is_refused(tmp_path: Path) -> None:
    # found by review: a worker death reloaded a model changed on disk since start, silently
    marker = tmp_path / "model"
    marker.write_text("as at start")
    async with ProcessClassifier(LEXICON.model_copy(update={"model_path": str(marker)}), factory=model_on_disk) as clf:
        expected = clf.predict(TEXTS)
        marker.write_text("flipped")
        os.kill(_worker_pid(clf), signal.SIGKILL)
        with pytest.raises(InferenceWorkerError, match="changed since start"):
            clf.predict(TEXTS)
        with pytest.raises(InferenceWorkerError, match="changed since start"):
            clf.predict(TEXTS)  # every later call fails at once, naming why
    assert expected == build_classifier(LEXICON).predict(TEXTS)


async def test_predict_outside_start_stop_fails_with_a_clear_error() -> None:
    clf = ProcessClassifier(LEXICON)
    with pytest.raises(InferenceWorkerError, match="not started"):
        clf.predict(TEXTS)
    async with clf:
        pass
    with pytest.raises(InferenceWorkerError, match="not started"):
        clf.predict(TEXTS)


async def test_a_model_that_cannot_load_fails_start_with_the_load_error(tmp_path: object) -> None:
    settings = ClassifierSettings(model_path=str(tmp_path), worker="process", num_threads=1)
    with pytest.raises(ModelLoadError):
        await ProcessClassifier(settings).start()


async def test_the_batcher_starts_and_stops_a_worker_classifier() -> None:
    clf = ProcessClassifier(LEXICON)
    async with MicroBatcher(clf, max_batch_size=8, max_wait_ms=1, max_queue_messages=100) as batcher:
        assert clf.started
        assert await batcher.classify(TEXTS) == build_classifier(LEXICON).predict(TEXTS)
    assert not clf.started


@pytest.mark.parametrize(
    ("kind", "worker", "cores", "expected"),
    [
        ("transformer", "auto", 2, True),
        ("transformer", "auto", 1, False),
        ("lexicon", "auto", 8, False),
        ("lexicon", "process", 1, True),
        ("transformer", "thread", 8, False),
    ],
)
def test_auto_puts_a_transformer_in_a_worker_only_with_two_cores(
    monkeypatch: pytest.MonkeyPatch, kind: str, worker: str, cores: int, expected: bool
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    settings = ClassifierSettings(kind=kind, worker=worker)  # type: ignore[arg-type]
    assert use_worker_process(settings) is expected
    built = engine_classifier(settings, log_level="INFO", log_format="json") if kind == "lexicon" else None
    if built is not None:
        assert isinstance(built, ProcessClassifier) is expected


async def test_a_text_that_kills_the_worker_alone_in_its_batch_is_dead_lettered_and_the_stream_goes_on() -> None:
    """The real worker, a native crash on one text, and that text alone in its batch (a quiet stream):
    the canary tells it from a broken model, so it is dead-lettered and the next message is counted."""
    from monitor.engine.pipeline import Pipeline
    from monitor.windows.memory import MemoryWindowStore
    from tests.fakes import CollectingDeadLetter, ListSource, msg

    store, dead = MemoryWindowStore(bucket_s=60, retention_s=10**6), CollectingDeadLetter()
    source = ListSource([[msg("p", "POISON pill", 100)], [msg("b", "Shares plunge after fraud probe", 101)]])
    async with ProcessClassifier(LEXICON, factory=poisoned_lexicon) as clf, \
            MicroBatcher(clf, max_batch_size=16, max_wait_ms=1, max_queue_messages=100) as batcher:
        pipe = Pipeline(source, batcher, store, dead, None, allowed_lateness_s=0, max_batch_size=16,
                        max_wait_ms=1, max_in_flight_batches=2)
        await pipe.run()
    assert [(d[1], "died or hung twice" in d[2]) for d in dead.items] == [("classifier_error", True)]
    assert source.committed == [[0], [1]] and pipe.stats.applied == 1


def _resource_tracker(pid: int) -> bool:
    """multiprocessing's resource tracker: started with the first spawned worker, it lives as long as we do."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # exited between the listing and this read (the killed worker): wait_gone sees it gone
        return False


def hanging_on_load(settings: ClassifierSettings) -> Classifier:
    time.sleep(3600)  # a wedged device or a stuck mount while the model loads
    raise AssertionError("unreachable")


async def test_a_worker_that_hangs_while_loading_is_killed_not_left_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.engine.inference_process.LOAD_TIMEOUT_S", 2.0)
    before = set(child_pids(os.getpid()))
    with pytest.raises(TimeoutError):
        await ProcessClassifier(LEXICON, factory=hanging_on_load).start()
    leftover = [pid for pid in child_pids(os.getpid()) if pid not in before and not _resource_tracker(pid)]
    assert not wait_gone(leftover, 10), f"the hung worker(s) {leftover} must be killed"


async def test_a_stop_while_the_model_loads_kills_the_load_at_once() -> None:
    # found by review: the load thread could not be cancelled, so a SIGTERM at start waited for the whole load
    before = set(child_pids(os.getpid()))
    starting = asyncio.create_task(ProcessClassifier(LEXICON, factory=hanging_on_load).start())
    await asyncio.sleep(2.0)  # the worker is up and loading
    started = time.monotonic()
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    await asyncio.sleep(0)
    leftover = [pid for pid in child_pids(os.getpid()) if pid not in before and not _resource_tracker(pid)]
    assert not wait_gone(leftover, 10), f"the loading worker(s) {leftover} must be killed"
    assert time.monotonic() - started < 5


def loads_once(settings: ClassifierSettings) -> Classifier:
    """Loads the first time; every later load fails (the device is gone). POISON kills the worker."""
    marker = Path(os.environ["FINSENT_TEST_LOAD_MARKER"])
    if marker.exists():
        raise ModelLoadError("the device is gone")
    marker.touch()
    return _Poisoned(build_classifier(settings))


async def test_after_a_failed_respawn_every_call_fails_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each call used to spawn again and wait out another load (up to LOAD_TIMEOUT_S each, per text when
    isolating a batch): hours before the daemon gave up."""
    monkeypatch.setenv("FINSENT_TEST_LOAD_MARKER", str(tmp_path / "loaded"))
    async with ProcessClassifier(LEXICON, factory=loads_once) as clf:
        with pytest.raises(ModelLoadError, match="device is gone"):
            clf.predict(["POISON kills the worker"])
        with pytest.raises(InferenceWorkerError, match=r"could not be restarted.*device is gone"):
            clf.predict(TEXTS)
