"""Pure window math: bucket alignment, dimension keys, and the BucketStats monoid."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.types import Sentiment
from monitor.windows.buckets import (
    ALL_KEY,
    BucketStats,
    bucket_start_s,
    content_digest,
    dimension_keys,
    evidence_of,
    increments,
    to_datetime,
)
from tests.contract.messages import T0, classified

EPOCHS = st.integers(min_value=0, max_value=4_102_444_800)  # 1970 .. 2100
BUCKET_SIZES = st.integers(min_value=1, max_value=7 * 24 * 3600)
TICKERS = st.lists(st.text(alphabet="abcXYZ.", max_size=4), max_size=6)


def stats(counts: tuple[int, int, int], score_sum: float) -> BucketStats:
    return BucketStats("k", 0, negative=counts[0], neutral=counts[1], positive=counts[2], score_sum=score_sum)


STATS = st.builds(
    stats,
    st.tuples(*[st.integers(min_value=0, max_value=10**6)] * 3),
    st.integers(min_value=-(10**6), max_value=10**6).map(lambda n: n / 64),  # exact binary fractions
)


@given(epoch_s=EPOCHS, bucket_s=BUCKET_SIZES)
def test_bucket_start_is_aligned_and_contains_the_event(epoch_s: int, bucket_s: int) -> None:
    start = bucket_start_s(to_datetime(epoch_s), bucket_s)

    assert start % bucket_s == 0
    assert start <= epoch_s < start + bucket_s


@given(epoch_s=EPOCHS, offset_us=st.integers(min_value=0, max_value=999_999), bucket_s=BUCKET_SIZES)
def test_sub_second_event_times_fall_in_the_bucket_of_their_whole_second(
    epoch_s: int, offset_us: int, bucket_s: int
) -> None:
    event = datetime.fromtimestamp(epoch_s, tz=UTC).replace(microsecond=offset_us)

    assert bucket_start_s(event, bucket_s) == bucket_start_s(to_datetime(epoch_s), bucket_s)


@given(topic=st.text(min_size=1, max_size=8), tickers=TICKERS)
def test_dimension_keys_are_unique_and_cover_all_topic_and_each_distinct_ticker(
    topic: str, tickers: list[str]
) -> None:
    keys = dimension_keys(topic, tickers)
    distinct = {t.upper() for t in tickers if t}

    assert len(keys) == len(set(keys)) == 2 + 2 * len(distinct)
    assert keys[:2] == [ALL_KEY, f"topic:{topic}"]
    assert {f"ticker:{t}" for t in distinct} <= set(keys)


@given(tickers=TICKERS)
def test_dimension_keys_ignore_ticker_case_order_and_repeats(tickers: list[str]) -> None:
    shuffled = [t.lower() for t in reversed(tickers)] + tickers

    assert dimension_keys("t", shuffled) == dimension_keys("t", tickers)


@given(a=STATS, b=STATS, c=STATS)
def test_merge_is_associative_and_commutative(a: BucketStats, b: BucketStats, c: BucketStats) -> None:
    assert a.merge(b).merge(c) == a.merge(b.merge(c))
    assert a.merge(b) == b.merge(a)


@given(a=STATS, b=STATS)
def test_merged_volume_is_the_sum_of_volumes(a: BucketStats, b: BucketStats) -> None:
    assert a.merge(b).volume == a.volume + b.volume


def test_empty_bucket_has_zero_share_and_mean_instead_of_dividing_by_zero() -> None:
    empty = BucketStats("k", 0)

    assert (empty.volume, empty.neg_share, empty.mean_score) == (0, 0.0, 0.0)


def test_neg_share_and_mean_score_are_per_message() -> None:
    bucket = BucketStats("k", 0, negative=1, neutral=2, positive=1, score_sum=-1.0)

    assert (bucket.neg_share, bucket.mean_score) == (0.25, -0.25)


@pytest.mark.parametrize("sentiment", list(Sentiment))
def test_increment_counts_one_message_under_its_sentiment(sentiment: Sentiment) -> None:
    item = classified("m", at_s=T0 + 61, sentiment=sentiment, score=0.5, tickers=["TSLA"])

    incs = increments(item, 60)

    assert [(i.key, i.start_s) for i in incs] == [(k, T0 + 60) for k in dimension_keys("earnings", ["TSLA"])]
    as_stats = incs[0].as_stats()
    assert (as_stats.volume, as_stats.score_sum) == (1, 0.5)
    assert {
        Sentiment.NEGATIVE: as_stats.negative,
        Sentiment.NEUTRAL: as_stats.neutral,
        Sentiment.POSITIVE: as_stats.positive,
    }[sentiment] == 1


def test_a_repeat_increments_only_the_repeat_count() -> None:
    item = classified("rt", at_s=T0, sentiment=Sentiment.NEGATIVE, score=-0.5, repeat_of="story")

    stats = [i.as_stats() for i in increments(item, 60)]

    assert all((s.volume, s.repeats, s.score_sum, s.messages) == (0, 1, 0.0, 1) for s in stats)


def test_merge_adds_repeats() -> None:
    a = BucketStats("k", 0, negative=1, repeats=2)
    assert a.merge(BucketStats("k", 0, repeats=3)).repeats == 5


def test_evidence_of_keeps_id_source_text_score_time_and_url() -> None:
    ev = evidence_of(classified("m", at_s=T0 + 3, score=-0.5, text="bad news"))

    assert (ev.message_id, ev.source, ev.text, ev.score, ev.event_time_s, ev.url) == (
        "m", "news", "bad news", -0.5, T0 + 3, "https://news.example/m",
    )  # fmt: skip


def test_content_digest_is_a_versioned_16_hex_of_event_time_and_text_only() -> None:
    base = classified("m", at_s=T0, text="Profit warning")

    digest = content_digest(base.message)

    assert digest.startswith("d1:") and len(digest) == 19 and set(digest[3:]) <= set("0123456789abcdef")
    # other id, score, tickers, url: the same content
    assert content_digest(classified("other", at_s=T0, text="Profit warning", score=-0.1,
                                     tickers=["TSLA"]).message) == digest  # fmt: skip
    assert content_digest(classified("m", at_s=T0, text="Profit warning (corrected)").message) != digest
    assert content_digest(classified("m", at_s=T0 + 1, text="Profit warning").message) != digest


def test_content_digest_bytes_stay_those_stored_in_redis_markers() -> None:
    # markers already in Redis hold this digest: changing what is digested needs a new version prefix, or
    # every redelivery within the retention turns into a conflict
    message = classified("m", at_s=T0, text="Profit \"warning\" — ünïcode").message
    payload = f"{message.event_time.isoformat()}\x00{message.text}".encode()

    assert content_digest(message) == "d1:" + hashlib.blake2b(payload, digest_size=8).hexdigest()
