"""Through the whole daemon (replay source, lexicon classifier, memory store): retweets and reissues
of one story count once, and a company named without a ticker lands on its ticker's windows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import Settings, load_settings
from monitor.engine.app import MonitorApp
from monitor.windows.buckets import bucket_start_s

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)
BUCKET_S = 600
STORY = "$ACME shares plunge after fraud probe widens, analysts warn"
COPIES = [
    f"RT @wallstjane: {STORY}",
    f"RT @tradingdesk: RT @wallstjane: {STORY}",
    f"UPDATE 1-{STORY}",
    f"UPDATE 2-{STORY}",
    f"REFILE-UPDATE 2-{STORY}",
    f"{STORY} - Reuters",
    f"{STORY} https://t.co/AbC123",
    f"@acme_watch {STORY}",
    STORY.upper(),
]


def _message(mid: str, text: str, minute: int, tickers: list[str]) -> dict[str, object]:
    ts = (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z")
    return {"id": mid, "source": "news", "text": text, "published_at": ts, "tickers": tickers}


def _settings(tmp_path: Path, lines: list[dict[str, object]], **windows: object) -> Settings:
    path = tmp_path / "stream.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in lines))
    watchlist = tmp_path / "universe.toml"  # the user's universe: ACME and Boeing
    watchlist.write_text('[[company]]\nticker = "ACME"\nnames = ["Acme Corp"]\n\n'
                         '[[company]]\nticker = "BA"\nnames = ["Boeing"]\n')
    return load_settings(
        classifier={"kind": "lexicon"},
        source={"replay_paths": [path], "dead_letter_path": tmp_path / "dead.jsonl", "watchlist_path": str(watchlist)},
        windows={"store_url": "memory://", "bucket_s": BUCKET_S, **windows},
        alerts={"sinks": []},
        http={"enabled": False},
    )


def _stream() -> list[dict[str, object]]:
    lines = [_message("story", STORY, 1, ["ACME"])]
    # copies arrive over the next minutes, some without payload tickers (the cashtag links them)
    lines += [_message(f"copy-{n}", text, 2 + n // 2, ["ACME"] if n % 2 else []) for n, text in enumerate(COPIES)]
    lines.append(_message("boeing", "Boeing shares tumble after regulators ground the fleet", 3, []))
    lines.append(_message("other", "ACME misses revenue estimates as demand slumps", 4, ["ACME"]))
    return lines


async def test_ten_copies_of_one_negative_story_count_as_one_story_and_nine_repeats(tmp_path: Path) -> None:
    app = MonitorApp(_settings(tmp_path, _stream()))
    stats = await app.run()

    start = bucket_start_s(T0, BUCKET_S)
    [bucket] = await app.store.buckets("ticker:ACME", start, start + BUCKET_S)
    evidence = await app.store.top_negative("ticker:ACME", start, start + BUCKET_S, 20)
    assert (bucket.negative, bucket.repeats, bucket.volume) == (2, 9, 2)  # the story + one distinct story
    assert sorted(e.message_id for e in evidence) == ["other", "story"]
    assert stats.repeats == 9 and stats.applied == len(_stream())


async def test_a_company_named_without_a_ticker_lands_on_its_ticker(tmp_path: Path) -> None:
    app = MonitorApp(_settings(tmp_path, _stream()))
    await app.run()

    start = bucket_start_s(T0, BUCKET_S)
    [bucket] = await app.store.buckets("ticker:BA", start, start + BUCKET_S)
    [evidence] = await app.store.top_negative("ticker:BA", start, start + BUCKET_S, 5)
    assert (bucket.negative, bucket.repeats) == (1, 0)
    assert evidence.message_id == "boeing"


async def test_with_novelty_off_every_copy_counts_as_a_story(tmp_path: Path) -> None:
    app = MonitorApp(_settings(tmp_path, _stream(), novelty_window_s=0))
    await app.run()

    start = bucket_start_s(T0, BUCKET_S)
    [bucket] = await app.store.buckets("ticker:ACME", start, start + BUCKET_S)
    assert (bucket.negative, bucket.repeats) == (11, 0)
