"""Detection on real history: ``monitor backtest`` over the dev set, scored and timed.

    python benchmarks/bench_detection.py                          # bundled model, configs/production.toml
    python benchmarks/bench_detection.py --classifier lexicon     # the fast keyword baseline
    python benchmarks/bench_detection.py --messages 60000         # the first 60k messages only (timing)
    FINSENT_DEV_SET=/path/to/stocknet-tweets python benchmarks/bench_detection.py

Dev set: ``stocknet.jsonl`` (88k real tweets about 87 US large caps, 2014-2016, in the message schema)
and ``dev_incidents.csv`` (7 labelled negative incidents) from ``$FINSENT_DEV_SET`` (default
``../shared/datasets/stocknet-tweets`` next to the repository). Prints recall, firing notifications per
day over the whole stream, median detection delay from the incident start and from its first negative
message, and the wall time of replay + classification + detection + scoring (the report and plots are
written to ``--out`` but not timed). Targets (issue 9): recall >= 6/7, <= 1 firing notification a day,
median delay <= 2 h; the data is real and noisy, so the numbers say how the shipped settings behave on
real flow, not a pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.backtest.command import run_backtest, ticker_mapping
from monitor.backtest.scoring import Incident, Scores, load_incidents
from monitor.config import REPO_ROOT, Settings, load_settings
from monitor.logging import configure_logging
from monitor.replay import isolated_settings

DEFAULT_DEV_SET = REPO_ROOT.parent / "shared" / "datasets" / "stocknet-tweets"


def _minutes(value: float | None) -> str:
    return "-" if value is None else f"{value / 60:.0f} min"


def _input(dev: Path, messages: int | None, tmp: Path) -> Path:
    stream = dev / "stocknet.jsonl"
    if messages is None:
        return stream
    head = tmp / "head.jsonl"
    with stream.open(encoding="utf-8") as src, head.open("w", encoding="utf-8") as dst:
        dst.writelines(islice(src, messages))
    return head


def incidents_for(path: Path, settings: Settings) -> list[Incident]:
    """The incidents exactly as ``monitor backtest`` loads them: keys through the run's entity linking
    (``ticker:FB`` is scored against META's windows) and naive times in ``source.naive_time_zone`` -- else the
    benchmark scores a different answer key than the command it stands for."""
    return load_incidents(path, ticker_mapping(settings), ZoneInfo(settings.source.naive_time_zone))


def run(args: argparse.Namespace, dev: Path, tmp: Path) -> tuple[Scores, float, int]:
    settings = load_settings(args.config)
    settings = settings.model_copy(update={
        "classifier": settings.classifier.model_copy(update={"kind": args.classifier}),
        "log": settings.log.model_copy(update={"level": "ERROR"}),
    })
    configure_logging("ERROR", settings.log.format)
    stream = _input(dev, args.messages, tmp)
    isolated = isolated_settings(settings, sinks=[], dead_letter_path=tmp / "dead-letter.jsonl",
                                 replay_paths=[stream])
    incidents = incidents_for(dev / "dev_incidents.csv", isolated)
    started = time.perf_counter()
    [(result, scores)] = asyncio.run(run_backtest(isolated, incidents, [], early_s=0, late_s=3600,
                                                  progress=not args.no_progress))
    return scores, time.perf_counter() - started, result.stats.read


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=REPO_ROOT / "configs" / "production.toml")
    p.add_argument("--classifier", choices=["transformer", "lexicon"], default="transformer")
    p.add_argument("--messages", type=int, default=None, help="only the first N messages (timing runs)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    dev = Path(os.environ.get("FINSENT_DEV_SET", DEFAULT_DEV_SET))
    if not (dev / "stocknet.jsonl").is_file() or not (dev / "dev_incidents.csv").is_file():
        print(f"dev set not found: {dev} needs stocknet.jsonl and dev_incidents.csv (set FINSENT_DEV_SET)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        s, wall_s, read = run(args, dev, Path(tmp))
    print(f"dev set: {read} messages over {s.span_s / 86_400:.0f} days, {s.incidents} incidents, "
          f"{args.config.name}, classifier {args.classifier}")
    print(f"recall {s.detected}/{s.incidents} ({s.recall:.2f}), firing notifications {s.alerts} = "
          f"{s.alerts_per_day:.2f}/day over the whole stream, false alarms {s.false_alarms} "
          f"({s.false_alarms_per_day:.2f}/day), precision {s.precision:.2f}")
    print(f"median delay from incident start {_minutes(s.lead_time_median_s)}, from first negative message "
          f"{_minutes(s.from_first_negative_median_s)}; per incident (min): "
          + ", ".join("missed" if v is None else f"{v / 60:.0f}" for v in s.lead_times_s))
    print(f"wall time {wall_s:.0f} s ({read / wall_s:.0f} msg/s: replay + classification + detection + scoring)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
