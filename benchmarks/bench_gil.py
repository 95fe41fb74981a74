"""The classifier alone vs next to a busy Python thread, at several GIL switch intervals, in ONE run.

    python benchmarks/bench_gil.py                 # bundled model, demo texts, 3 interleaved rounds

Why: the engine runs detection (pure Python) on the event-loop thread while the inference thread
runs the model. The inference thread takes the GIL back after every op; a thread holding it gives it
up only every ``sys.getswitchinterval()`` (5 ms by default), so each op may wait that long. This
measures what that costs and what ``batching.gil_switch_interval_ms`` buys. The busy thread is a
stand-in for detection (it never sleeps, so it is the worst case).
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_pipeline import DEMO_STREAM, _text, classifier_alone, warm_up
from monitor.classify import build_classifier
from monitor.config import REPO_ROOT, load_settings
from monitor.logging import configure_logging
from monitor.types import Classifier


def _spin(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(1000):
            x += i * i


def rate(classifier: Classifier, texts: Sequence[str], batch: int, switch_ms: float | None) -> float:
    """msg/s alone (``switch_ms`` None) or next to a spinning Python thread at that switch interval."""
    saved = sys.getswitchinterval()
    stop = threading.Event()
    spinner = threading.Thread(target=_spin, args=(stop,), daemon=True)
    try:
        if switch_ms is not None:
            sys.setswitchinterval(switch_ms / 1000)
            spinner.start()
        return classifier_alone(classifier, texts, batch)
    finally:
        stop.set()
        if spinner.is_alive():
            spinner.join()
        sys.setswitchinterval(saved)


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--texts", type=int, default=1024, help="demo-stream texts per measurement")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; best and median reported")
    p.add_argument("--switch-ms", default="5,1,0.5", help="comma-separated switch intervals to try")
    args = p.parse_args(list(argv))
    configure_logging("ERROR", "console")
    settings = load_settings(REPO_ROOT / "configs" / "default.toml")
    classifier = build_classifier(settings.classifier)
    lines = DEMO_STREAM.read_text(encoding="utf-8").splitlines()
    texts = [t for line in lines if (t := _text(line))][: args.texts]
    batch = settings.batching.max_batch_size
    warm_up(classifier, texts, batch)
    variants: list[float | None] = [None, *(float(s) for s in args.switch_ms.split(","))]
    results: dict[float | None, list[float]] = {v: [] for v in variants}
    for n in range(args.rounds):
        for v in variants:
            results[v].append(rate(classifier, texts, batch, v))
        print(f"round {n + 1}/{args.rounds} done", flush=True)
    print(f"\n{len(texts)} texts, batch {batch}, {classifier.name}")
    print("| variant | msg/s (best) | msg/s (median) | vs alone (best) |\n|---|---:|---:|---:|")
    alone = max(results[None])
    for v, got in results.items():
        label = "alone" if v is None else f"next to a busy Python thread, switch interval {v:g} ms"
        print(f"| {label} | {max(got):,.0f} | {sorted(got)[len(got) // 2]:,.0f} | {max(got) / alone:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
