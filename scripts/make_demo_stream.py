"""Build the bundled demo stream (data/demo_stream.jsonl) and its labelled incidents (data/demo_incidents.csv).

Deterministic (seeded). Background traffic is real financial headlines from the held-out split of
../shared/datasets/twitter-financial-news-sentiment (MIT), spread over four days with a daily rhythm,
plus retail comments composed from phrase parts. Three labelled incidents are injected as bursts of
negative news and comments about one ticker.

Novelty (monitor/novelty) counts near-copies of one story once, so every composed comment and
headline is drawn until it is a story of its own (``Distinct``, up to 200 draws: an incident whose
phrase space runs out gets copies, as real ones do); on top of that each incident has
explicit copies (``RT @user: ...`` retweets and ``UPDATE 1-`` reissues of an earlier headline), which
the monitor folds into their story. Usage: python scripts/make_demo_stream.py [--dataset PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.novelty.index import NoveltyIndex

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = ROOT.parent / "shared" / "datasets" / "twitter-financial-news-sentiment" / "sent_valid.csv"
START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
DAYS = 4
CASHTAG = re.compile(r"\$([A-Z]{1,5})\b")

OPENERS = ["", "", "honestly", "ok so", "fwiw", "heads up:", "quick note:", "not gonna lie,", "well,", "hmm,",
           "today:", "update:", "again,", "just saying,", "fyi", "so", "btw", "real talk:"]
NEUTRAL_COMMENTS = [
    "anyone holding ${t} into next week?",
    "${t} volume looks normal today",
    "watching ${t} at the open",
    "what is the consensus on ${t} this quarter?",
    "added a small position in ${t}, long term hold",
    "${t} chart looks like it is consolidating",
    "${t} dividend date is coming up, do not forget",
    "${t} holding steady, nothing new",
    "${t} earnings call is next month",
    "${t} trading sideways this morning",
    "${t} options volume about average",
    "${t} analyst day scheduled for spring",
    "rebalancing, trimmed ${t} a bit",
    "${t} still in my watchlist",
]
NEUTRAL_TAILS = ["", "any thoughts?", "will check later", "nothing to report", "same as last week",
                 "waiting for the next report", "no change in my plan", "just an observation", "meh",
                 "curious what others think", "quiet session so far", "see you at the close"]
POSITIVE_COMMENTS = [
    "${t} looking strong, great quarter",
    "${t} breaking out, bullish",
    "love the new ${t} product line, buying more",
    "${t} beat estimates again, impressive",
    "${t} margins keep improving",
    "${t} upgrade today, nice move",
    "${t} record high, congrats longs",
]
POSITIVE_TAILS = ["", "very happy holder", "up nicely this week", "strong buy for me", "nice",
                  "adding on dips", "long and strong", "great management", "future looks bright"]
NEGATIVE_COMMENTS = [
    "${t} is getting crushed today, selling everything",
    "${t} this is a disaster, bag holders everywhere",
    "get out of ${t} now, it is collapsing",
    "${t} management lied to us, terrible",
    "${t} down again, worst stock I own",
    "${t} panic selling, no bottom in sight",
    "${t} in free fall, stop losses everywhere",
    "${t} tanking hard, awful news",
    "${t} bleeding out, cut my losses",
    "${t} dumping nonstop, scary",
]
NEGATIVE_TAILS = ["", "sold my shares at the low", "my calls are worthless", "down 40 percent on my position",
                  "stop loss triggered", "averaging down is not working", "lost a fortune", "never again",
                  "what a mess", "furious right now", "horrible quarter", "this is ugly", "I am out",
                  "lawsuit incoming", "dumped it all at the open", "taking the loss"]
HANDLES = ["marketwatcher", "tradingdesk", "fin_news_now", "stockalerts", "wallstjane", "bullbear", "quantkid",
           "dailyticker", "newsflash_fin", "valueinvestor"]
COPY_SHARE = 0.2
"""Share of incident news that are retweets / reissues of an earlier incident headline (folded as repeats)."""
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
            "{c} loses major airline order as safety review widens",
            "{c} CEO under pressure as grounding costs mount",
            "{c} bonds slide as rating agencies warn on safety crisis",
            "Airlines demand compensation from {c} over grounded jets",
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
            "{c} gross margin disappoints, stock slumps",
            "{c} sheds billions in market value on weak outlook",
            "Chip stocks fall as {c} forecast rattles investors",
            "{c} warns of inventory glut, shares fall",
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
            "{c} fined by regulators over mortgage abuses, stock slides",
            "{c} CEO grilled by lawmakers over fake accounts",
            "{c} cuts profit outlook, shares tumble",
            "{c} downgraded as legal costs mount",
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


DETAILS = ["", "", "in early trading", "in heavy volume", "analysts say", "sources say", "report says",
           "wiping out billions in value", "to a multi-year low", "as investors flee", "before the bell",
           "after the close", "as the sell-off deepens", "amid market jitters", "despite reassurances"]


class Distinct:
    """Draws composed texts until the monitor's novelty index sees a story of its own (not a copy)."""

    def __init__(self) -> None:
        self.index = NoveltyIndex(window_s=7 * 86_400, max_entries=50_000)

    def draw(self, rng: random.Random, mid: str, ts: datetime, tickers: list[str], compose: object) -> str:
        assert callable(compose)
        text = ""
        for attempt in range(200):
            text = str(compose())
            key = f"{mid}#{attempt}"
            if self.index.decide(key, text, int(ts.timestamp()), tuple(tickers)) is None:
                return text
        return text  # the phrase space is exhausted: keep the last draw (it will be folded)


def comment(rng: random.Random, pool: list[str], tails: list[str], t: str) -> str:
    head = f"{rng.choice(OPENERS)} {rng.choice(pool).replace('{t}', t)}".strip()
    tail = rng.choice(tails)
    return f"{head}, {tail}" if tail else head


def headline(rng: random.Random, templates: list[str], company: str) -> str:
    detail = rng.choice(DETAILS)
    text = rng.choice(templates).format(c=company)
    return f"{text}, {detail}" if detail else text


def copy_of(rng: random.Random, text: str) -> str:
    if rng.random() < 0.5:
        return f"RT @{rng.choice(HANDLES)}: {text}"
    return f"UPDATE {rng.randint(1, 3)}-{text}"


def build(dataset: Path, seed: int = 7) -> tuple[list[dict[str, object]], list[dict[str, str]]]:
    rng = random.Random(seed)
    with dataset.open(encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    out: list[dict[str, object]] = []
    distinct = Distinct()
    for day in range(DAYS):
        for i in range(700):
            text = rng.choice(texts)
            ts = sample_time(rng, day)
            out.append(message(f"news-{day}-{i}", "news", text, ts, sorted(set(CASHTAG.findall(text))),
                               f"https://news.example.com/{day}/{i}"))
        for i in range(250):
            t = rng.choice([*BACKGROUND_TICKERS, "AAPL", "TSLA", "MSFT", "AMZN", "JPM", "XOM"])
            pool, tails = rng.choices([(NEUTRAL_COMMENTS, NEUTRAL_TAILS), (POSITIVE_COMMENTS, POSITIVE_TAILS),
                                       (NEGATIVE_COMMENTS, NEGATIVE_TAILS)], weights=[6, 3, 1])[0]
            ts, mid = sample_time(rng, day), f"comment-{day}-{i}"
            text = distinct.draw(rng, mid, ts, [t], lambda p=pool, s=tails, t=t: comment(rng, p, s, t))
            out.append(message(mid, "comment", text, ts, [t], None))
    incidents: list[dict[str, str]] = []
    for n, inc in enumerate(INCIDENTS):
        start = START + timedelta(days=int(inc["day"]), hours=int(inc["hour"]))  # type: ignore[call-overload]
        span = int(inc["minutes"])  # type: ignore[call-overload]
        t, c = str(inc["ticker"]), str(inc["company"])
        stories: list[str] = []
        for i in range(int(inc["news"])):  # type: ignore[call-overload]
            ts = start + timedelta(seconds=rng.randrange(span * 60))
            mid = f"incident{n}-news-{i}"
            if stories and rng.random() < COPY_SHARE:
                text = copy_of(rng, rng.choice(stories))
            else:
                templates = inc["headlines"]
                text = distinct.draw(rng, mid, ts, [t],
                                     lambda h=templates, c=c, t=t: f"${t} {headline(rng, h, c)}")  # type: ignore[misc]
                stories.append(text)
            out.append(message(mid, "news", text, ts, [t], f"https://news.example.com/incident/{n}/{i}"))
        for i in range(int(inc["comments"])):  # type: ignore[call-overload]
            ts = start + timedelta(seconds=rng.randrange(span * 60))
            mid = f"incident{n}-comment-{i}"
            text = distinct.draw(rng, mid, ts, [t], lambda t=t: comment(rng, NEGATIVE_COMMENTS, NEGATIVE_TAILS, t))
            out.append(message(mid, "comment", text, ts, [t], None))
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
