"""Write the SYNTHETIC sparse-density fixture: tests/fixtures/sparse_stream.jsonl + sparse_incidents.csv.

Not derived from any dataset: every message is a template filled with a made-up ticker. It reproduces
the *shape* of real flow that the dense demo does not: a few messages per ticker per hour at most
(most tickers a handful a day), a daily rhythm (quiet nights, busy US hours), weekends at a third,
a two-day collection gap (no data at all, for any key), and three injected negative incidents:

- ``ticker:KLMN``: sudden, 9 negative messages within 40 minutes on a ticker with ~3 messages a day;
- ``ticker:QRST``: slow-building, ~1.5 negative messages an hour for 10 hours;
- ``ticker:WXYZ``: sudden, on the first morning after the gap (a gap must not hide it or fake one).

Deterministic (seeded). Usage: python scripts/make_sparse_fixture.py [--out DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # a Monday
DAYS = 24
GAP = (START + timedelta(days=13), START + timedelta(days=15))
TICKERS = {  # messages per day on an ordinary weekday
    "ABCD": 30.0, "EFGH": 12.0, "IJKL": 8.0, "KLMN": 3.0, "MNOP": 6.0, "QRST": 4.0, "UVWX": 2.0,
    "WXYZ": 3.0, "BCDE": 1.5, "FGHI": 1.0, "JKLM": 5.0, "NOPQ": 2.5, "RSTU": 0.7, "VWXY": 1.2,
}
NEGATIVE = ["${t} shares slump after weak guidance", "${t} misses estimates", "${t} downgraded by analysts",
            "${t} plunges on probe report", "${t} cuts its outlook", "${t} faces a lawsuit over disclosures",
            "${t} warns on margins", "${t} tumbles as sales fall", "${t} recall widens, stock drops",
            "selling my ${t}, this looks like a disaster"]
NEUTRAL = ["${t} to hold annual meeting next month", "anyone watching ${t} today?", "${t} volume looks normal",
           "what is the consensus on ${t}?", "${t} files quarterly report", "${t} names a new board member"]
POSITIVE = ["${t} beats estimates, raises outlook", "${t} upgraded to buy", "${t} rallies on new product",
            "bullish on ${t} into the close"]
DETAILS = ["in early trade", "says a wire report", "ahead of the open", "traders note", "per a filing",
           "after the bell", "on heavy volume", "a newsletter says", "analysts say", "amid a sector move",
           "according to a blog", "chat rooms buzz", "midday update", "a desk note adds"]
"""Every message is a template plus a detail, so the injected stories are distinct stories (the window
store counts near-duplicates once, monitor/novelty) and the background is not one repeated line."""
NEG_SHARE, POS_SHARE = 0.12, 0.25
INCIDENTS = [  # key, start, duration, negatives, description
    ("KLMN", START + timedelta(days=9, hours=15, minutes=10), timedelta(minutes=40), 9, "sudden negative story"),
    ("QRST", START + timedelta(days=11, hours=11), timedelta(hours=10), 15, "slow-building negative story"),
    ("WXYZ", START + timedelta(days=16, hours=14, minutes=20), timedelta(hours=1), 8, "story right after the gap"),
]


def hourly_factor(t: datetime) -> float:
    """Daily rhythm peaking in US trading hours (mean ~1 over a weekday); weekends at a third."""
    hour = t.hour + t.minute / 60
    shape = 0.25 + 1.6 * math.exp(-((hour - 17.0) / 4.0) ** 2)
    return shape / 1.05 * (0.33 if t.weekday() >= 5 else 1.0)


def _message(n: int, ticker: str, t: datetime, templates: list[str], rnd: random.Random) -> dict[str, object]:
    return {"id": f"sparse-{n}", "source": rnd.choice(["news", "comment"]),
            "text": f"{rnd.choice(templates).replace('${t}', f'${ticker}')} {rnd.choice(DETAILS)}",
            "published_at": t.isoformat().replace("+00:00", "Z"), "tickers": [ticker],
            "url": f"https://example.invalid/{n}"}


def background(rnd: random.Random) -> list[tuple[datetime, str, list[str]]]:
    out = []
    step = timedelta(minutes=5)
    t = START
    while t < START + timedelta(days=DAYS):
        if not GAP[0] <= t < GAP[1]:
            for ticker, per_day in TICKERS.items():
                lam = per_day / 288 * hourly_factor(t)
                for _ in range(_poisson(lam, rnd)):
                    u = rnd.random()
                    kind = NEGATIVE if u < NEG_SHARE else POSITIVE if u < NEG_SHARE + POS_SHARE else NEUTRAL
                    out.append((t + timedelta(seconds=rnd.randrange(300)), ticker, kind))
        t += step
    return out


def _poisson(lam: float, rnd: random.Random) -> int:
    k, p, threshold = 0, 1.0, math.exp(-lam)
    while True:
        p *= rnd.random()
        if p < threshold:
            return k
        k += 1


def build(out_dir: Path, seed: int = 11) -> tuple[Path, Path]:
    rnd = random.Random(seed)
    events = background(rnd)
    for ticker, start, duration, negatives, _ in INCIDENTS:
        for _ in range(negatives):
            events.append((start + timedelta(seconds=rnd.randrange(int(duration.total_seconds()))), ticker,
                           NEGATIVE))
    events.sort(key=lambda e: e[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    stream, labels = out_dir / "sparse_stream.jsonl", out_dir / "sparse_incidents.csv"
    with stream.open("w", encoding="utf-8") as fh:
        for n, (t, ticker, templates) in enumerate(events):
            fh.write(json.dumps(_message(n, ticker, t, templates, rnd)) + "\n")
    with labels.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["key", "start", "end", "description"])
        for ticker, start, duration, _, description in INCIDENTS:
            end = start + max(duration, timedelta(hours=2))
            writer.writerow([f"ticker:{ticker}", _iso(start), _iso(end), description])
    return stream, labels


def _iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures")
    stream, labels = build(p.parse_args().out)
    print(f"wrote {stream} ({sum(1 for _ in stream.open())} messages) and {labels}")


if __name__ == "__main__":
    main()
