"""Build the bundled demo stream (data/demo_stream.jsonl) and its labelled incidents (data/demo_incidents.csv).

Deterministic (seeded). Background traffic is real financial headlines from the held-out split of
../shared/datasets/twitter-financial-news-sentiment (MIT), spread over four days with a daily rhythm,
plus templated retail comments. Three labelled incidents are injected as bursts of negative news and
comments about one ticker. Usage: python scripts/make_demo_stream.py [--dataset PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = ROOT.parent / "shared" / "datasets" / "twitter-financial-news-sentiment" / "sent_valid.csv"
START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
DAYS = 4
CASHTAG = re.compile(r"\$([A-Z]{1,5})\b")

NEUTRAL_COMMENTS = [
    "anyone holding ${t} into next week?",
    "${t} volume looks normal today",
    "watching ${t} at the open",
    "what is the consensus on ${t} this quarter?",
    "added a small position in ${t}, long term hold",
    "${t} chart looks like it is consolidating",
    "${t} dividend date is coming up, do not forget",
    "${t} holding steady, nothing new",
]
POSITIVE_COMMENTS = [
    "${t} looking strong, great quarter",
    "${t} breaking out, bullish",
    "love the new ${t} product line, buying more",
    "${t} beat estimates again, impressive",
]
NEGATIVE_COMMENTS = [
    "${t} is getting crushed today, selling everything",
    "${t} this is a disaster, bag holders everywhere",
    "get out of ${t} now, it is collapsing",
    "${t} management lied to us, terrible",
    "${t} down again, worst stock I own",
    "${t} panic selling, no bottom in sight",
]
INCIDENTS = [
    {
        "ticker": "BA", "company": "Boeing", "day": 1, "hour": 14, "minutes": 70, "news": 70, "comments": 90,
        "headlines": [
            "{c} shares plunge after regulator grounds 737 MAX fleet over safety defect",
            "{c} faces federal probe after mid-air panel blowout",
            "{c} stock tumbles as airlines cancel orders after grounding",
            "{c} slumps to two-year low as safety crisis deepens",
            "Analysts downgrade {c} on grounding, warn of multi-billion charge",
            "{c} suspends deliveries, shares sink in heavy selling",
        ],
    },
    {
        "ticker": "NVDA", "company": "Nvidia", "day": 2, "hour": 21, "minutes": 60, "news": 60, "comments": 80,
        "headlines": [
            "{c} cuts revenue guidance, shares sink in after-hours trading",
            "{c} misses data-center estimates, stock drops sharply",
            "{c} warns of export restrictions hitting sales, shares tumble",
            "{c} shares slide as chip demand outlook disappoints investors",
            "Brokers slash {c} price targets after weak forecast",
        ],
    },
    {
        "ticker": "WFC", "company": "Wells Fargo", "day": 3, "hour": 15, "minutes": 80, "news": 55, "comments": 75,
        "headlines": [
            "{c} hit with record fine over fraudulent accounts, shares fall",
            "{c} under investigation for money laundering failures",
            "{c} shares drop as regulators cap asset growth again",
            "{c} faces class-action lawsuit over fake accounts scandal",
            "{c} loses ground after losses on commercial real estate loans",
        ],
    },
]
BACKGROUND_TICKERS = ["BA", "NVDA", "WFC"]
MALFORMED_AFTER = {
    500: '{"id": "broken-1", "source": "news", "text": "truncated record',
    1500: '{"id": "broken-2", "source": "news", "published_at": "2026-11-03T10:00:00Z"}',
    2500: '{"id": "broken-3", "source": "comment", "text": "when?", "published_at": "next tuesday"}',
}


def rhythm_weight(minute_of_day: int) -> float:
    """Relative message rate by UTC time of day: busy during US market hours, quiet overnight."""
    hour = minute_of_day / 60
    if 13.5 <= hour < 20:
        return 3.0
    if 11 <= hour < 13.5 or 20 <= hour < 23:
        return 1.5
    return 0.4


def sample_time(rng: random.Random, day: int) -> datetime:
    minutes = list(range(24 * 60))
    minute = rng.choices(minutes, weights=[rhythm_weight(m) for m in minutes])[0]
    return START + timedelta(days=day, minutes=minute, seconds=rng.randrange(60))


def message(mid: str, source: str, text: str, ts: datetime, tickers: list[str], url: str | None) -> dict[str, object]:
    return {
        "id": mid,
        "source": source,
        "text": text,
        "published_at": ts.isoformat().replace("+00:00", "Z"),
        "tickers": tickers,
        "lang": "en",
        "url": url,
        "meta": {"demo": True},
    }


def build(dataset: Path, seed: int = 7) -> tuple[list[dict[str, object]], list[dict[str, str]]]:
    rng = random.Random(seed)
    with dataset.open(encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    out: list[dict[str, object]] = []
    for day in range(DAYS):
        for i in range(700):
            text = rng.choice(texts)
            ts = sample_time(rng, day)
            out.append(message(f"news-{day}-{i}", "news", text, ts, sorted(set(CASHTAG.findall(text))),
                               f"https://news.example.com/{day}/{i}"))
        for i in range(250):
            t = rng.choice([*BACKGROUND_TICKERS, "AAPL", "TSLA", "MSFT", "AMZN", "JPM", "XOM"])
            pool = rng.choices([NEUTRAL_COMMENTS, POSITIVE_COMMENTS, NEGATIVE_COMMENTS], weights=[6, 3, 1])[0]
            out.append(message(f"comment-{day}-{i}", "comment", rng.choice(pool).replace("{t}", t),
                               sample_time(rng, day), [t], None))
    incidents: list[dict[str, str]] = []
    for n, inc in enumerate(INCIDENTS):
        start = START + timedelta(days=int(inc["day"]), hours=int(inc["hour"]))  # type: ignore[call-overload]
        span = int(inc["minutes"])  # type: ignore[call-overload]
        t, c = str(inc["ticker"]), str(inc["company"])
        for i in range(int(inc["news"])):  # type: ignore[call-overload]
            ts = start + timedelta(seconds=rng.randrange(span * 60))
            text = rng.choice(inc["headlines"]).format(c=c)  # type: ignore[union-attr]
            out.append(message(f"incident{n}-news-{i}", "news", f"${t} {text}", ts, [t],
                               f"https://news.example.com/incident/{n}/{i}"))
        for i in range(int(inc["comments"])):  # type: ignore[call-overload]
            ts = start + timedelta(seconds=rng.randrange(span * 60))
            text = rng.choice(NEGATIVE_COMMENTS).replace("{t}", t)
            out.append(message(f"incident{n}-comment-{i}", "comment", text, ts, [t], None))
        incidents.append({
            "key": f"ticker:{t}",
            "start": start.isoformat().replace("+00:00", "Z"),
            "end": (start + timedelta(minutes=span)).isoformat().replace("+00:00", "Z"),
            "description": f"{c} negative news surge",
        })
    out.sort(key=lambda m: (str(m["published_at"]), str(m["id"])))
    return out, incidents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "data")
    args = parser.parse_args()
    stream, incidents = build(args.dataset)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with (args.out_dir / "demo_stream.jsonl").open("w", encoding="utf-8") as fh:
        for n, m in enumerate(stream):
            fh.write(json.dumps(m, ensure_ascii=False) + "\n")
            if n in MALFORMED_AFTER:  # a realistic feed has garbage: it must be dead-lettered, not crash
                fh.write(MALFORMED_AFTER[n] + "\n")
    with (args.out_dir / "demo_incidents.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["key", "start", "end", "description"])
        writer.writeheader()
        writer.writerows(incidents)
    print(f"wrote {len(stream)} messages and {len(incidents)} incidents to {args.out_dir}")


if __name__ == "__main__":
    main()
