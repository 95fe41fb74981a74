"""Run one replay per parameter set, classifying each distinct text only once across the sweep."""

from __future__ import annotations

import itertools
import sys
from bisect import bisect_left, insort
from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from alerts.detectors import Signal
from alerts.model import AlertStatus, Notification
from monitor.config import DETECTION_ONLY_SETTINGS, InputError, Settings
from monitor.engine.pipeline import Evaluator, PipelineStats
from monitor.progress import bar_wanted, run_with_progress
from monitor.replay import count_lines
from monitor.types import ClassifiedMessage, Classifier, Prediction, Sentiment
from monitor.windows.base import Applied
from monitor.windows.buckets import dimension_keys
from monitor.windows.memory import MemoryWindowStore

BACKTEST_RETENTION_S = 20 * 365 * 86_400


class CachedClassifier:
    """Memoizes predictions by text (bounded LRU): a sweep re-runs windows and detection, not the model."""

    def __init__(self, inner: Classifier, max_entries: int = 500_000) -> None:
        self.inner = inner
        self.name = f"cached({inner.name})"
        self.max_entries = max_entries
        self._cache: OrderedDict[str, Prediction] = OrderedDict()

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, pred in zip(missing, self.inner.predict(missing), strict=True):
                self._cache[text] = pred
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)
        return [self._cache[t] for t in texts]


class RecordingEvaluator:
    """Delegates to the alert engine and keeps every notification it produced."""

    def __init__(self, inner: Evaluator) -> None:
        self.inner = inner
        self.notifications: list[Notification] = []

    async def evaluate(self, now_s: int) -> Sequence[object]:
        notes = await self.inner.evaluate(now_s)
        self.notifications.extend(n for n in notes if isinstance(n, Notification))
        return notes


class NegativesRecorder(MemoryWindowStore):
    """The backtest's window store, also noting when each negative message on a traced key arrived.

    Why: "delay from the first negative message" was read back from the buckets' kept evidence, which holds
    the *most* negative messages of a bucket, not the earliest, and skipped the bucket the incident starts in.
    """

    def __init__(self, *args: Any, trace_keys: Collection[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.negative_times_s: dict[str, list[int]] = {k: [] for k in trace_keys}

    async def apply(self, items: Sequence[ClassifiedMessage]) -> Applied:
        if self.negative_times_s:
            seen = await self.seen([i.message.id for i in items])
            for item in items:
                if item.message.id in seen:  # the store counts only the first item of an id (no conflict either)
                    continue
                seen.add(item.message.id)
                # a folded repeat (a retweet of an older story) is no negative story: the windows count it as a
                # repeat and never show it as evidence (it made "first negative" earlier; found by review)
                if item.prediction.sentiment is Sentiment.NEGATIVE and item.repeat_of is None:
                    at_s = int(item.message.event_time.timestamp())
                    for key in dimension_keys(item.prediction.topic, item.message.tickers):
                        if key in self.negative_times_s:
                            insort(self.negative_times_s[key], at_s)
        return await super().apply(items)

    def first_negative_s(self, key: str, start_s: int, end_s: int) -> int | None:
        """When the first negative message on ``key`` inside ``[start_s, end_s]`` arrived (None: none did)."""
        times = self.negative_times_s.get(key, [])
        at = bisect_left(times, start_s)
        return times[at] if at < len(times) and times[at] <= end_s else None


@dataclass(slots=True)
class RunResult:
    params: dict[str, float]
    notifications: list[Notification]
    store: NegativesRecorder
    stats: PipelineStats
    traces: dict[str, list[Signal]] = field(default_factory=dict)
    """Every signal computed for the traced keys (the incident keys), in event-time order."""

    @property
    def firing(self) -> list[Notification]:
        return [n for n in self.notifications if n.status is AlertStatus.FIRING]


def parse_sweep(specs: Sequence[str]) -> list[dict[str, float]]:
    """``["z_threshold=2.5,3", "min_volume=10,20"]`` → the cartesian product of settings updates."""
    axes: list[tuple[str, list[float]]] = []
    for spec in specs:
        name, _, values = spec.partition("=")
        if not name or not values:
            raise InputError(f"--sweep {spec!r}: expected NAME=V1,V2,... (e.g. z_threshold=2.5,3,4)")
        name = name.strip()
        if name in (a[0] for a in axes):  # the last one won silently: 2 and 3 of z_threshold=2,3 were never run
            raise InputError(f"--sweep {spec!r}: {name} is swept twice -- give its values once "
                             f"(--sweep {name}=V1,V2,...)")
        try:
            axes.append((name, [float(v) for v in values.split(",")]))
        except ValueError:
            raise InputError(f"--sweep {spec!r}: every value must be a number (e.g. {name}=2.5,3,4)") from None
    if not axes:
        return [{}]
    names = [a[0] for a in axes]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(a[1] for a in axes))]





class ContradictoryCombination(InputError):
    """A sweep combination whose settings contradict each other (``min_baseline_buckets`` above
    ``baseline_buckets``): a sweep crossing the two skips it rather than refusing the whole grid."""


def _config_with(detection: str) -> str:
    """Where a bundled config uses ``detection`` (the hint named production.toml to a user already passing it,
    and for the per-bucket detection, which production.toml does not use; found by review)."""
    if detection == "multiscale":
        return "e.g. --config configs/production.toml"
    return "e.g. --config configs/default.toml, or set alerts.detection = 'both'"


def settings_with(settings: Settings, params: dict[str, float]) -> Settings:
    update: dict[str, Any] = {}
    for name, value in params.items():
        if name not in type(settings.alerts).model_fields:
            raise InputError(f"--sweep {name}: not an [alerts] setting")
        reader = next((d for d, names in DETECTION_ONLY_SETTINGS.items() if name in names), None)
        if reader is not None and settings.alerts.detection not in (reader, "both"):
            raise InputError(f"--sweep {name}: only alerts.detection = {reader!r} reads it, and this config uses "
                             f"{settings.alerts.detection!r} -- sweep a setting of that detection, or pass a config "
                             f"with detection = {reader!r} ({_config_with(reader)})")
        current = getattr(settings.alerts, name)
        if isinstance(current, int) and not isinstance(current, bool):
            if value != int(value):
                raise InputError(f"--sweep {name}={value:g}: {name} is a whole number -- sweep whole values "
                                 f"(e.g. {name}={int(value)},{int(value) + 1})")
            value = int(value)
        update[name] = value
    try:  # model_copy skips validation: z_threshold=-1 ran
        alerts = type(settings.alerts).model_validate({**settings.alerts.model_dump(exclude_unset=True), **update})
    except ValidationError as exc:
        first = exc.errors()[0]
        if all(not error["loc"] for error in exc.errors()):  # the model validator: settings that disagree
            raise ContradictoryCombination("--sweep " + first["msg"].removeprefix("Value error, ")) from None
        raise InputError(f"--sweep {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return settings.model_copy(update={"alerts": alerts})


async def run_once(settings: Settings, classifier: Classifier, params: dict[str, float], *,
                   trace_keys: Collection[str] = (), progress: bool = False) -> RunResult:
    from monitor.engine.app import MonitorApp

    tuned = settings_with(settings, params)
    # a backtest keeps its whole history: the baselines and the plots need it (memory is bounded by
    # the input, which the user chose)
    store = NegativesRecorder(
        tuned.windows.bucket_s, max(tuned.windows.retention_s, BACKTEST_RETENTION_S),
        tuned.windows.top_negative_per_bucket, trace_keys=trace_keys,
    )
    app = MonitorApp(tuned, classifier=classifier, store=store, history=True)
    recorder = RecordingEvaluator(app.alerting)
    app.pipeline.evaluator = recorder
    traces: dict[str, list[Signal]] = {k: [] for k in trace_keys}
    if traces:
        def observe(sig: Signal) -> None:
            if sig.key in traces:
                traces[sig.key].append(sig)
        app.alerting.signal_observer = observe
    total = count_lines(tuned.source.replay_paths) if progress else None
    bar = tqdm(total=total, unit="msg", disable=not bar_wanted(progress), file=sys.stderr, leave=False,
               desc=", ".join(f"{k}={v:g}" for k, v in params.items()) or "backtest")

    stats = await run_with_progress(app.run, lambda: app.pipeline.stats.read, bar, 0.5)
    return RunResult(params, recorder.notifications, store, stats, traces)
