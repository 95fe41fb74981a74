"""End to end: a naive one-message-at-a-time loop vs the real ``Pipeline`` -- same input, same parts.

    python benchmarks/bench_pipeline.py                       # demo stream; memory + Redis; both classifiers
    python benchmarks/bench_pipeline.py --messages 8460 --naive-transformer-messages 1000
    python benchmarks/bench_pipeline.py --stores memory --classifiers lexicon

Input: ``data/demo_stream.jsonl`` (4,233 lines: 4,230 messages + 3 invalid ones that are dead-lettered),
limited or cycled to ``--messages`` lines (each repetition gets new ids and is shifted later in event
time, so nothing is a duplicate or late). Both modes read it with
``FileReplaySource`` at full speed, use the same classifier instance, the same store class (a fresh,
empty store per run) and the same ``AlertEngine`` (``alerts.sinks = []``, so delivery is not measured):

(a) naive: for each message -- watermark check, entity linking + novelty (the same ``Enricher``),
    ``classifier.predict([text])``, ``store.apply([one])``, ``source.commit([record])``, then detection
    for any bucket that closed. No batching, no overlap. The windows of (a) and (b) must hold the same
    messages (the "in windows" column checks it).
(b) ours: ``MonitorApp`` with the settings of ``configs/default.toml`` (micro-batching, classification
    overlapped with the store write of the previous batch) and the same classifier/store injected.

Latency is per message, from the moment the source hands the message over to the moment its source
commit returns (durable in the window store). (a) has no queue, so its latency is the pure service time
of one message. (b) is measured while the source is a backlog: a message's latency is that of its
source batch (read -> classified -> applied -> committed), *including* waiting behind up to
``max_in_flight_batches`` earlier batches -- the latency a saturated daemon has, not an idle one.
It is timed per record (the commit that acknowledges it, whichever list that is), and the run fails
unless every record read got exactly one latency.
Throughput counts from the first read to the end of the pipeline's final detection pass; service
start/stop (Redis connect, thread pool) is outside both. The "detection share" column is the part of the
wall time spent in ``AlertEngine.evaluate``. Default runtime: ~4.5 minutes on 2 busy shared CPU cores,
most of it alert detection against Redis; ``--stores memory`` or ``--no-detection`` is much quicker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alerts.engine import AlertEngine
from alerts.factory import build_alerting
from benchmarks.stats import percentile
from consumers.deadletter import FileDeadLetter
from consumers.replay import FileReplaySource
from monitor.classify import build_classifier
from monitor.config import REPO_ROOT, Settings, load_settings
from monitor.engine.app import MonitorApp
from monitor.engine.enrich import build_enricher
from monitor.engine.inference_process import ProcessClassifier, engine_classifier, use_worker_process
from monitor.engine.watermark import Watermark
from monitor.lifecycle import Service
from monitor.logging import configure_logging
from monitor.types import ClassifiedMessage, Classifier, SourceRecord
from monitor.windows.base import WindowStore
from monitor.windows.buckets import ALL_KEY
from monitor.windows.factory import build_window_store

DEMO_STREAM = REPO_ROOT / "data" / "demo_stream.jsonl"
FAR_FUTURE_S = 2**40


@dataclass(slots=True)
class Result:
    classifier: str
    store: str
    mode: str
    messages: int
    seconds: float
    latencies_ms: list[float]
    applied: int
    invalid: int
    late: int
    notifications: int
    windowed: tuple[int, int]
    """(messages, negative messages) in the store's buckets afterwards."""
    detect_s: float
    """Wall time spent in ``AlertEngine.evaluate`` (detection at bucket close)."""
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def pct(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def write_input(path: Path, count: int, source: Path = DEMO_STREAM) -> Path:
    """The first ``count`` lines of ``source`` cycled (0 = the file once). Repetition r gets ids
    ``<id>#r`` and event times shifted by r whole days past the stream's span (same time-of-day
    pattern, never late). Lines that are not valid messages are copied as they are (dead letters)."""
    lines = [line for line in source.read_bytes().split(b"\n") if line.strip()]
    parsed: list[tuple[dict[str, Any], datetime] | None] = []
    for line in lines:
        try:
            obj = json.loads(line)
            parsed.append((obj, datetime.fromisoformat(obj["published_at"].replace("Z", "+00:00"))))
        except (ValueError, KeyError, TypeError, AttributeError):
            parsed.append(None)
    times = [p[1] for p in parsed if p is not None]
    period = timedelta(days=(max(times) - min(times)).days + 1)
    with path.open("wb") as out:
        for n in range(count or len(lines)):
            rep, line, item = n // len(lines), lines[n % len(lines)], parsed[n % len(lines)]
            if rep and item is not None:
                obj = {
                    **item[0],
                    "id": f"{item[0]['id']}#{rep}",
                    "published_at": (item[1] + rep * period).isoformat().replace("+00:00", "Z"),
                }
                line = json.dumps(obj, ensure_ascii=False).encode()
            out.write(line + b"\n")
    return path


class TimedEvaluator:
    """The pipeline's evaluator, timed (the same wrapping the backtest runner uses to record)."""

    def __init__(self, inner: AlertEngine) -> None:
        self.inner = inner
        self.seconds = 0.0

    async def evaluate(self, now_s: int) -> Sequence[object]:
        began = time.perf_counter()
        try:
            return await self.inner.evaluate(now_s)
        finally:
            self.seconds += time.perf_counter() - began


class TimedSource(Service):
    """Wraps a source: notes when each record is handed over and when its commit returns.

    Keyed per record, not per batch: the pipeline commits a new list (the records its event-time jump
    guard lets through), so a batch's list is never the one committed. Each pending entry keeps its
    record alive, so an ``id`` cannot be reused while it waits."""

    def __init__(self, inner: FileReplaySource) -> None:
        self.inner = inner
        self.first_read_at: float | None = None
        self.handed = 0
        self.latencies_ms: list[float] = []
        self._handed_at: dict[int, tuple[SourceRecord, float]] = {}

    async def _start(self) -> None:
        await self.inner.start()

    async def _stop(self) -> None:
        await self.inner.stop()

    async def batches(self, max_records: int, timeout_ms: int) -> AsyncIterator[list[SourceRecord]]:
        self.first_read_at = time.perf_counter()
        async for records in self.inner.batches(max_records, timeout_ms):
            handed = time.perf_counter()
            self.handed += len(records)
            self._handed_at.update((id(rec), (rec, handed)) for rec in records)
            yield records

    async def commit(self, records: Sequence[SourceRecord]) -> None:
        await self.inner.commit(records)
        done = time.perf_counter()
        for rec in records:
            entry = self._handed_at.pop(id(rec), None)
            if entry is not None and entry[0] is rec:
                self.latencies_ms.append((done - entry[1]) * 1000)

    def check_complete(self, read: int) -> None:
        """Fail loudly unless every record read got exactly one latency: a silent gap would print 0.00 ms."""
        if not (len(self.latencies_ms) == self.handed == read) or self._handed_at:
            raise RuntimeError(
                f"latency bookkeeping broken: {len(self.latencies_ms)} latencies for {self.handed} records "
                f"handed over ({read} read by the pipeline), {len(self._handed_at)} never committed"
            )


def settings_for(store_url: str, prefix: str, workdir: Path, input_path: Path) -> Settings:
    """configs/default.toml with the bench's input, store and a private namespace; no sinks, no HTTP."""
    return load_settings(
        REPO_ROOT / "configs" / "default.toml",
        source={
            "replay_paths": [str(input_path)],
            "replay_speed": 0.0,
            "dead_letter_path": str(workdir / f"dead-{prefix}.jsonl"),
        },
        windows={"store_url": store_url, "key_prefix": prefix},
        alerts={"sinks": []},
        http={"enabled": False},
    )


def replay_source(settings: Settings, dead_letter: FileDeadLetter) -> FileReplaySource:
    s = settings.source
    return FileReplaySource(
        s.replay_paths, dead_letter, max_message_bytes=s.max_message_bytes, max_text_chars=s.max_text_chars
    )


async def windowed_messages(store: WindowStore) -> tuple[int, int]:
    """(messages, negative ones) in the ``all`` key: cross-checks that (a) and (b) did the same work."""
    buckets = await store.buckets(ALL_KEY, 0, FAR_FUTURE_S)
    return sum(b.volume for b in buckets), sum(b.negative for b in buckets)


async def run_naive(settings: Settings, classifier: Classifier, labels: tuple[str, str], detect: bool) -> Result:
    store = build_window_store(settings.windows)
    dead_letter = FileDeadLetter(settings.source.dead_letter_path)
    alerting = TimedEvaluator(build_alerting(settings, store))
    source = replay_source(settings, dead_letter)
    watermark = Watermark(store.bucket_s, settings.windows.allowed_lateness_s)
    enricher = build_enricher(settings)
    latencies_ms: list[float] = []
    read = applied = late = notifications = 0
    async with dead_letter, store, alerting.inner, source:
        began = time.perf_counter()
        async for records in source.batches(1, 0):
            for rec in records:
                handed = time.perf_counter()
                read += 1
                if watermark.observe(int(rec.message.event_time.timestamp()), rec.lane):
                    [linked], repeats = enricher.process([rec]) if enricher else ([rec], {})
                    pred = classifier.predict([linked.message.text])[0]
                    repeat_of = repeats.get(linked.message.id)
                    applied += (await store.apply([ClassifiedMessage(linked.message, pred, repeat_of)])).fresh
                else:
                    late += 1
                await source.commit([rec])
                latencies_ms.append((time.perf_counter() - handed) * 1000)
                for boundary in watermark.newly_closed():
                    notifications += len(await alerting.evaluate(boundary)) if detect else 0
        if watermark.max_event_s is not None:  # close every bucket at the end, as replay does
            watermark.advance_to(watermark.max_event_s + watermark.allowed_lateness_s + store.bucket_s)
            for boundary in watermark.newly_closed():
                notifications += len(await alerting.evaluate(boundary)) if detect else 0
        seconds = time.perf_counter() - began
        windowed = await windowed_messages(store)
    return Result(
        *labels,
        "(a) naive per-message",
        read,
        seconds,
        latencies_ms,
        applied,
        source.dead_count,
        late,
        notifications,
        windowed,
        alerting.seconds,
    )


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


async def run_ours(settings: Settings, classifier: Classifier, labels: tuple[str, str], detect: bool) -> Result:
    store = build_window_store(settings.windows)
    dead_letter = FileDeadLetter(settings.source.dead_letter_path)
    source = TimedSource(replay_source(settings, dead_letter))
    app = MonitorApp(settings, classifier=classifier, source=source, store=store)
    evaluator = TimedEvaluator(app.alerting)
    app.pipeline.evaluator = evaluator if detect else None
    finished_at: list[float] = []

    async def note_finish() -> None:
        await app.pipeline.finished.wait()
        finished_at.append(time.perf_counter())

    hist = "finsent_batch_processing_seconds"
    sum_before, count_before = metric(f"{hist}_sum"), metric(f"{hist}_count")
    async with dead_letter:
        watcher = asyncio.create_task(note_finish())
        stats = await app.run()
        await watcher
        # the app stopped the store: reopen it (same object) to count what it holds
        async with store:
            windowed = await windowed_messages(store)
    assert source.first_read_at is not None
    source.check_complete(stats.read)
    batches = metric(f"{hist}_count") - count_before
    mean_ms = 1000 * (metric(f"{hist}_sum") - sum_before) / max(batches, 1)
    result = Result(
        *labels,
        "(b) ours: Pipeline + MicroBatcher",
        stats.read,
        finished_at[0] - source.first_read_at,
        source.latencies_ms,
        stats.applied,
        source.inner.dead_count,
        stats.late,
        stats.notifications,
        windowed,
        evaluator.seconds,
    )
    result.notes.append(
        f"{stats.batches} batches, mean {stats.read / max(stats.batches, 1):.1f} msgs/batch; "
        f"{hist} mean {mean_ms:.1f} ms/batch (ours, timed here: mean "
        f"{sum(source.latencies_ms) / max(len(source.latencies_ms), 1):.1f} ms/message)"
    )
    return result


@contextmanager
def stores(wanted: Sequence[str], workdir: Path) -> Iterator[list[tuple[str, str]]]:
    """(name, store_url) pairs; starts a throwaway redis-server if Redis is wanted and installed."""
    urls = [("memory", "memory://")] if "memory" in wanted else []
    if "redis" not in wanted:
        yield urls
        return
    if shutil.which("redis-server") is None:
        print(
            "!! redis-server not found on PATH: skipping store = redis, running memory only "
            "(install it: apt-get install -y redis-server)"
        )
        yield urls
        return
    from tests.servers import redis_server

    with redis_server(workdir) as url:
        yield [*urls, ("redis", url)]


def warm_up(classifier: Classifier, texts: Sequence[str], batch_size: int) -> None:
    for text in texts[:8]:
        classifier.predict([text])
    classifier.predict(list(texts[:batch_size]))


def classifier_alone(classifier: Classifier, texts: Sequence[str], batch_size: int) -> float:
    """Messages/s of the classifier by itself on the same texts in the pipeline's batch size: the
    ceiling the whole engine is measured against (target: engine >= 80% of it)."""
    started = time.perf_counter()
    for i in range(0, len(texts), batch_size):
        classifier.predict(list(texts[i : i + batch_size]))
    return len(texts) / (time.perf_counter() - started)


def print_ratios(results: Sequence[Result], alone: dict[str, list[float]],
                 pairs: dict[tuple[str, str], list[float]]) -> None:
    """Best engine over best alone; with ``--repeat``, also the median of each run's engine rate over the
    alone rate measured just before it (robust to a lucky or unlucky sample on a shared host)."""
    print("\n| classifier | store | engine msg/s (b) | classifier alone msg/s | engine / classifier alone "
          "| median of per-run ratios |")
    print("|---|---|---:|---:|---:|---|")
    for r in results:
        if r.mode.startswith("(b)") and alone.get(r.classifier):
            best = max(alone[r.classifier])
            ratios = sorted(pairs.get((r.classifier, r.store), []))
            paired = (f"{statistics.median(ratios):.0%} of {len(ratios)} ({', '.join(f'{x:.0%}' for x in ratios)})"
                      if len(ratios) > 1 else "-")
            print(f"| {r.classifier} | {r.store} | {r.rate:,.0f} | {best:,.0f} | {r.rate / best:.0%} | {paired} |")


def print_table(results: Sequence[Result]) -> None:
    print(
        "\n| classifier | store | variant | messages | messages/s | p50 latency | p99 latency "
        "| speed-up vs (a) | detection share | applied / invalid / late / alerts | in windows (negative) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    base: dict[tuple[str, str], float] = {}
    for r in results:
        key = (r.classifier, r.store)
        base.setdefault(key, r.rate)
        print(
            f"| {r.classifier} | {r.store} | {r.mode} | {r.messages:,} | {r.rate:,.0f} | "
            f"{r.pct(0.5):.2f} ms | {r.pct(0.99):.2f} ms | {r.rate / base[key]:.1f}x | "
            f"{r.detect_s / r.seconds:.0%} | {r.applied:,} / {r.invalid} / {r.late} / {r.notifications} | "
            f"{r.windowed[0]:,} ({r.windowed[1]:,}) |"
        )
    for r in results:
        for note in r.notes:
            print(f"{r.classifier}/{r.store} {r.mode}: {note}")


async def main_async(args: argparse.Namespace) -> int:
    results: list[Result] = []
    alone: dict[str, list[float]] = {}
    pairs: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        full = write_input(workdir / "input.jsonl", args.messages, args.input)
        total = sum(1 for line in full.read_bytes().split(b"\n") if line.strip())
        all_texts = [text for line in full.read_text(encoding="utf-8").splitlines() if (text := _text(line))]
        texts = all_texts[:64]
        with stores(args.stores.split(","), workdir) as urls:
            for kind in args.classifiers.split(","):
                base = load_settings(REPO_ROOT / "configs" / "default.toml")
                clf_settings = base.classifier.model_copy(update={"kind": kind})
                classifier = build_classifier(clf_settings)
                warm_up(classifier, texts, base.batching.max_batch_size)
                naive_count = total
                if kind == "transformer" and args.naive_transformer_messages:
                    naive_count = min(total, args.naive_transformer_messages)
                naive_input = (
                    full
                    if naive_count == total
                    else write_input(workdir / f"input-{naive_count}.jsonl", naive_count, args.input)
                )
                for store_name, url in urls:
                    labels = (kind, store_name)
                    for run in range(args.repeat):
                        prefix = f"bench-{kind}-{store_name}-{run}"
                        naive = await run_naive(
                            settings_for(url, f"{prefix}-naive", workdir, naive_input),
                            classifier,
                            labels,
                            args.detection,
                        )
                        alone.setdefault(kind, []).append(
                            classifier_alone(classifier, all_texts, base.batching.max_batch_size)
                        )
                        engine_settings = clf_settings.model_copy(update={"worker": args.worker})
                        worker = (
                            engine_classifier(engine_settings, log_level="WARNING", log_format="console")
                            if use_worker_process(engine_settings) else None
                        )
                        worker_alone = 0.0
                        if isinstance(worker, ProcessClassifier):
                            await worker.start()  # the engine's batcher finds it started and stops it
                            worker_alone = classifier_alone(worker, all_texts, base.batching.max_batch_size)
                            worker.busy_s = 0.0
                        ours = await run_ours(
                            settings_for(url, f"{prefix}-ours", workdir, full),
                            worker or classifier,
                            labels,
                            args.detection,
                        )
                        if isinstance(worker, ProcessClassifier):
                            ours.notes.append(
                                f"model in a worker process: alone there {worker_alone:,.0f} msgs/s just before; "
                                f"busy {worker.busy_s / ours.seconds:.0%} of the engine's wall time"
                            )
                        if naive_count != total:
                            naive.notes.append(
                                f"limited to the first {naive_count:,} input lines "
                                "(--naive-transformer-messages) to keep the run short"
                            )
                        pairs.setdefault(labels, []).append(ours.rate / alone[kind][-1])
                        print(
                            f"{kind}/{store_name} run {run + 1}: naive {naive.rate:,.0f} msgs/s, "
                            f"ours {ours.rate:,.0f} msgs/s, classifier alone {alone[kind][-1]:,.0f} msgs/s",
                            flush=True,
                        )
                        results.extend([naive, ours])
    if args.repeat > 1:  # best of N per (classifier, store, mode): the slow runs measure the neighbours
        best: dict[tuple[str, str, str], Result] = {}
        for r in results:
            key = (r.classifier, r.store, r.mode)
            if key not in best or r.rate > best[key].rate:
                best[key] = r
        results = list(best.values())
    print_table(results)
    print_ratios(results, alone, pairs)
    return 0


def _text(line: str) -> str | None:
    try:
        text = json.loads(line).get("text")
    except (ValueError, AttributeError):
        return None
    return text if isinstance(text, str) and text.strip() else None


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--messages",
        type=int,
        default=0,
        help="input lines to replay (cycling the stream if larger); 0 = the file once",
    )
    p.add_argument(
        "--naive-transformer-messages",
        type=int,
        default=500,
        help="limit of the slow naive transformer run (first N lines); 0 = no limit",
    )
    p.add_argument("--stores", default="memory,redis", help="comma-separated: memory,redis")
    p.add_argument("--classifiers", default="transformer,lexicon", help="comma-separated: transformer,lexicon")
    p.add_argument(
        "--worker", choices=("auto", "thread", "process"), default="auto",
        help="where the engine runs the model (classifier.worker; auto = what the daemon picks here); "
        "'classifier alone' is always measured in this process",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per variant; the fastest is reported")
    p.add_argument(
        "--no-detection",
        dest="detection",
        action="store_false",
        help="no alert evaluation in either mode (isolates classify + store + commit)",
    )
    p.add_argument("--input", type=Path, default=DEMO_STREAM, help="JSONL stream to replay")
    args = p.parse_args(list(argv))
    if args.messages < 0 or args.naive_transformer_messages < 0 or args.repeat < 1:
        p.error("--messages and --naive-transformer-messages must be >= 0, --repeat >= 1")
    configure_logging("ERROR", "console")  # alert_fired / dead letters are expected here
    print(
        f"{args.messages or 'all':} lines of {args.input.name}, stores {args.stores}, "
        f"classifiers {args.classifiers}, batching = configs/default.toml, alert sinks off, "
        f"detection {'on' if args.detection else 'OFF'}"
    )
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
