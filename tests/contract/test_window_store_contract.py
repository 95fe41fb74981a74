"""The ``WindowStore`` contract: every backend (memory, Redis) must pass this one suite.

Stores are built through ``build_window_store`` from ``WindowSettings``, exactly as the daemon does.
Each test gets its own key prefix, so Redis-backed cases share one server without interfering.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import WindowSettings
from monitor.metrics import prometheus_client_value
from monitor.types import ClassifiedMessage, Sentiment
from monitor.windows.base import Applied, WindowStore
from monitor.windows.buckets import ALL_KEY, BucketStats, content_digest
from monitor.windows.factory import build_window_store
from tests.contract.messages import T0, classified, fold, reference_evidence

BUCKET_S = 60
TOP_N = 3
FAR_END_S = T0 + 10 * 24 * 3600
REDIS = pytest.param("redis", marks=pytest.mark.integration)
REDIS_CLUSTER = pytest.param("redis-cluster", marks=pytest.mark.integration)
STORE_KINDS = ["memory", REDIS, REDIS_CLUSTER]
DURABLE_KINDS = [REDIS, REDIS_CLUSTER]
"""Backends whose state outlives the store object (the restart case only makes sense for these)."""


def window_settings(kind: str, request: pytest.FixtureRequest) -> WindowSettings:
    """Settings for ``kind`` with a fresh key prefix; only Redis kinds start the session redis-server."""
    return WindowSettings(
        store_url="memory://" if kind == "memory" else request.getfixturevalue(
            "redis_cluster_url" if kind == "redis-cluster" else "redis_url"),
        key_prefix=f"contract-{uuid.uuid4().hex}",
        bucket_s=BUCKET_S,
        retention_s=3600,
        top_negative_per_bucket=TOP_N,
    )


@pytest.fixture(params=STORE_KINDS)
def store_settings(request: pytest.FixtureRequest) -> WindowSettings:
    return window_settings(request.param, request)


@pytest.fixture
async def store(store_settings: WindowSettings) -> AsyncIterator[WindowStore]:
    async with build_window_store(store_settings) as started:
        yield started


def assert_same_stats(actual: Sequence[BucketStats], expected: Sequence[BucketStats]) -> None:
    """Counts exactly; score sums to float tolerance (Redis sums in long double, in another order)."""
    assert [(s.key, s.start_s, s.negative, s.neutral, s.positive, s.repeats) for s in actual] == [
        (s.key, s.start_s, s.negative, s.neutral, s.positive, s.repeats) for s in expected
    ]
    assert [s.score_sum for s in actual] == pytest.approx(
        [s.score_sum for s in expected], rel=1e-9, abs=1e-12
    )


async def test_counts_and_score_sum_are_aggregated_per_sentiment_in_one_bucket(store: WindowStore) -> None:
    await store.apply(
        [
            classified("n1", at_s=T0 + 1, sentiment=Sentiment.NEGATIVE, score=-0.5),
            classified("n2", at_s=T0 + 59, sentiment=Sentiment.NEGATIVE, score=-0.25),
            classified("u1", at_s=T0 + 10, sentiment=Sentiment.NEUTRAL, score=0.125),
            classified("p1", at_s=T0 + 20, sentiment=Sentiment.POSITIVE, score=0.75),
        ]
    )

    got = await store.buckets(ALL_KEY, T0, T0 + BUCKET_S)

    assert_same_stats(got, [BucketStats(ALL_KEY, T0, negative=2, neutral=1, positive=1, score_sum=0.125)])


async def test_messages_in_different_buckets_are_returned_oldest_first(store: WindowStore) -> None:
    await store.apply([classified("late", at_s=T0 + BUCKET_S + 5), classified("early", at_s=T0 + 5)])

    got = await store.buckets(ALL_KEY, T0, FAR_END_S)

    assert [(s.start_s, s.volume) for s in got] == [(T0, 1), (T0 + BUCKET_S, 1)]


async def test_message_counts_under_all_topic_ticker_and_topic_ticker_keys(store: WindowStore) -> None:
    await store.apply([classified("m", at_s=T0, topic="mna", tickers=["tsla", "AAPL"])])

    keys = await store.active_keys(T0)

    expected = [
        "all", "ticker:AAPL", "ticker:TSLA", "topic:mna", "topic_ticker:mna|AAPL", "topic_ticker:mna|TSLA",
    ]  # fmt: skip
    assert keys == expected
    for key in expected:
        assert [(s.key, s.volume) for s in await store.buckets(key, T0, FAR_END_S)] == [(key, 1)]


def check_at_next_write(store: WindowStore) -> None:
    """A Redis store refreshes ``finsent_window_keys`` with its marker check (at most every 30 s): make it due."""
    epoch = getattr(store, "epoch", None)
    if epoch is not None:
        epoch.check_every_s = 0.0


async def test_window_keys_gauge_reports_the_keys_with_buckets_and_drops_those_past_retention(
    store: WindowStore,
) -> None:
    check_at_next_write(store)
    await store.apply([classified("m", at_s=T0, topic="mna", tickers=["TSLA", "AAPL"])])
    assert prometheus_client_value("finsent_window_keys") == 6  # all, 2 tickers, the topic, 2 topic+ticker

    await store.apply([classified("later", at_s=T0 + 2 * 3600, topic="other")])  # past retention_s (1 h)
    assert prometheus_client_value("finsent_window_keys") == 2  # all, topic:other


async def test_redelivered_message_in_the_same_batch_is_counted_once_and_is_not_a_conflict(
    store: WindowStore,
) -> None:
    message = classified("dup", at_s=T0, tickers=["TSLA"])

    applied = await store.apply([message, message, classified("other", at_s=T0)])

    assert applied == Applied(fresh=2, conflicts=())
    assert [s.volume for s in await store.buckets(ALL_KEY, T0, FAR_END_S)] == [2]
    assert [s.volume for s in await store.buckets("ticker:TSLA", T0, FAR_END_S)] == [1]


async def test_redelivered_message_in_a_later_batch_is_counted_once_and_is_not_a_conflict(
    store: WindowStore,
) -> None:
    message = classified("dup", at_s=T0, score=-0.5)
    await store.apply([message])

    applied = await store.apply([message, classified("new", at_s=T0, score=-0.25)])

    assert applied == Applied(fresh=1, conflicts=())
    assert_same_stats(
        await store.buckets(ALL_KEY, T0, FAR_END_S), [BucketStats(ALL_KEY, T0, negative=2, score_sum=-0.75)]
    )
    assert [e.message_id for e in await store.top_negative(ALL_KEY, T0, FAR_END_S, 10)] == ["dup", "new"]


async def test_same_id_with_other_text_in_a_later_batch_is_a_conflict_and_the_first_counts_stay(
    store: WindowStore,
) -> None:
    original = classified("wire-1", at_s=T0, score=-0.5, tickers=["TSLA"], text="Bank fails")
    corrected = classified("wire-1", at_s=T0, sentiment=Sentiment.POSITIVE, score=0.75, tickers=["AAPL"],
                           text="Bank does not fail (corrected)")  # fmt: skip
    await store.apply([original])

    applied = await store.apply([classified("other", at_s=T0, score=-0.25), corrected])

    assert applied == Applied(fresh=1, conflicts=(1,))
    assert_same_stats(
        await store.buckets(ALL_KEY, T0, FAR_END_S), [BucketStats(ALL_KEY, T0, negative=2, score_sum=-0.75)]
    )
    assert await store.buckets("ticker:AAPL", T0, FAR_END_S) == []
    [evidence, _] = await store.top_negative(ALL_KEY, T0, FAR_END_S, 10)
    assert (evidence.message_id, evidence.text) == ("wire-1", "Bank fails")
    # the conflict did not replace what the id is known by: the original is still a plain redelivery
    assert await store.apply([original, corrected]) == Applied(fresh=0, conflicts=(1,))


async def test_same_id_with_other_text_in_the_same_batch_is_a_conflict_and_the_first_one_counts(
    store: WindowStore,
) -> None:
    first = classified("wire-1", at_s=T0, score=-0.5, text="Bank fails")
    second = classified("wire-1", at_s=T0, score=-0.9, text="Bank fails, CEO resigns")

    applied = await store.apply([first, classified("other", at_s=T0, score=-0.25), second, first, second])

    assert applied == Applied(fresh=2, conflicts=(2, 4))
    assert_same_stats(
        await store.buckets(ALL_KEY, T0, FAR_END_S), [BucketStats(ALL_KEY, T0, negative=2, score_sum=-0.75)]
    )
    assert await store.seen(["wire-1"]) == {"wire-1"}


async def test_same_id_and_text_with_other_event_time_is_a_conflict(store: WindowStore) -> None:
    await store.apply([classified("m", at_s=T0, text="same words")])

    applied = await store.apply([classified("m", at_s=T0 + 1, text="same words")])

    assert applied == Applied(fresh=0, conflicts=(0,))
    assert [(s.start_s, s.volume) for s in await store.buckets(ALL_KEY, 0, FAR_END_S)] == [(T0, 1)]


async def test_digests_give_the_content_digest_of_each_applied_id_and_nothing_for_the_others(
    store: WindowStore,
) -> None:
    first = classified("m1", at_s=T0, text="Bank fails")
    await store.apply([first, classified("m2", at_s=T0, text="Bank fails again")])
    await store.apply([classified("m1", at_s=T0, text="Bank does not fail")])  # a conflict leaves the marker

    assert await store.digests(["m1", "unknown", "m1"]) == {"m1": content_digest(first.message)}


async def test_same_content_with_other_classification_is_a_redelivery_not_a_conflict(store: WindowStore) -> None:
    # the digest is of the message, not of the model's output: a redelivery reclassified by a new model
    await store.apply([classified("m", at_s=T0, score=-0.5, text="same words")])

    applied = await store.apply([classified("m", at_s=T0, sentiment=Sentiment.POSITIVE, score=0.5,
                                            text="same words", repeat_of="story")])  # fmt: skip

    assert applied == Applied(fresh=0, conflicts=())


async def test_seen_names_the_ids_already_counted(store: WindowStore) -> None:
    await store.apply([classified("a", at_s=T0), classified("rt", at_s=T0)])
    assert await store.seen(["a", "never", "rt", "a"]) == {"a", "rt"}
    assert await store.seen([]) == set()
    many = [f"id-{i}" for i in range(1_500)]  # past one read chunk
    await store.apply([classified(mid, at_s=T0) for mid in many[::2]])
    assert await store.seen(many) == set(many[::2])


async def test_repeats_of_a_story_count_as_repeats_not_as_stories(store: WindowStore) -> None:
    await store.apply([
        classified("story", at_s=T0 + 1, score=-0.5, tickers=["TSLA"]),
        classified("rt1", at_s=T0 + 2, score=-0.5, tickers=["TSLA"], repeat_of="story"),
        classified("rt2", at_s=T0 + 3, sentiment=Sentiment.NEUTRAL, tickers=["TSLA"], repeat_of="story"),
    ])

    got = await store.buckets("ticker:TSLA", T0, T0 + BUCKET_S)

    assert_same_stats(got, [BucketStats("ticker:TSLA", T0, negative=1, score_sum=-0.5, repeats=2)])
    assert got[0].volume == 1 and got[0].messages == 3


async def test_a_bucket_with_only_repeats_has_no_volume_and_no_evidence(store: WindowStore) -> None:
    await store.apply([classified("rt", at_s=T0 + 1, score=-0.9, repeat_of="older-story")])

    got = await store.buckets(ALL_KEY, T0, T0 + BUCKET_S)

    assert_same_stats(got, [BucketStats(ALL_KEY, T0, repeats=1)])
    assert got[0].volume == 0
    assert await store.top_negative(ALL_KEY, T0, T0 + BUCKET_S, 10) == []


async def test_evidence_holds_stories_only(store: WindowStore) -> None:
    await store.apply([
        classified("story", at_s=T0 + 1, score=-0.5),
        classified("copy", at_s=T0 + 2, score=-0.9, repeat_of="story"),
        classified("other", at_s=T0 + 3, score=-0.25),
    ])

    got = await store.top_negative(ALL_KEY, T0, T0 + BUCKET_S, 10)

    assert [e.message_id for e in got] == ["story", "other"]


async def test_redelivered_repeat_is_counted_once(store: WindowStore) -> None:
    first = await store.apply([classified("rt", at_s=T0 + 1, repeat_of="story")])
    again = await store.apply([classified("rt", at_s=T0 + 1, repeat_of="story")])

    got = await store.buckets(ALL_KEY, T0, T0 + BUCKET_S)

    assert (first, again) == (Applied(1, ()), Applied(0, ()))
    assert_same_stats(got, [BucketStats(ALL_KEY, T0, repeats=1)])


async def test_empty_batch_returns_zero_and_creates_nothing(store: WindowStore) -> None:
    assert await store.apply([]) == Applied(fresh=0, conflicts=())
    assert await store.active_keys(0) == []
    assert await store.buckets(ALL_KEY, 0, FAR_END_S) == []


async def test_bucket_range_includes_its_start_and_excludes_its_end(store: WindowStore) -> None:
    starts = [T0, T0 + BUCKET_S, T0 + 2 * BUCKET_S]
    await store.apply([classified(f"m{s}", at_s=s) for s in starts])

    got = await store.buckets(ALL_KEY, T0 + BUCKET_S, T0 + 2 * BUCKET_S)

    assert [s.start_s for s in got] == [T0 + BUCKET_S]
    assert await store.buckets(ALL_KEY, T0 + 1, T0 + BUCKET_S) == []


async def test_buckets_many_reads_each_key_like_buckets(store: WindowStore) -> None:
    await store.apply([
        classified("a", at_s=T0 + 1, score=-0.5, topic="mna", tickers=["TSLA"]),
        classified("b", at_s=T0 + BUCKET_S + 2, sentiment=Sentiment.POSITIVE, score=0.25, tickers=["TSLA"]),
        classified("c", at_s=T0 + 2 * BUCKET_S, topic="macro", repeat_of="a"),
    ])
    keys = [*await store.active_keys(0), "ticker:NEVER"]

    got = await store.buckets_many(keys, T0, T0 + 2 * BUCKET_S)

    assert list(got) == keys
    for key in keys:
        assert_same_stats(got[key], await store.buckets(key, T0, T0 + 2 * BUCKET_S))
    assert [s.start_s for s in got[ALL_KEY]] == [T0, T0 + BUCKET_S]
    assert got["ticker:NEVER"] == [] and got["topic:macro"] == []


async def test_buckets_many_with_no_keys_an_empty_range_or_an_empty_store_reads_nothing(
    store: WindowStore,
) -> None:
    assert await store.buckets_many([ALL_KEY, "topic:mna"], 0, FAR_END_S) == {ALL_KEY: [], "topic:mna": []}
    await store.apply([classified("m", at_s=T0)])

    assert await store.buckets_many([], 0, FAR_END_S) == {}
    assert await store.buckets_many([ALL_KEY], T0 + 1, T0 + BUCKET_S) == {ALL_KEY: []}
    assert await store.buckets_many([ALL_KEY], T0, T0) == {ALL_KEY: []}
    assert await store.buckets_many([ALL_KEY], T0 + BUCKET_S, T0) == {ALL_KEY: []}


async def test_buckets_many_lists_a_repeated_key_once(store: WindowStore) -> None:
    await store.apply([classified("m", at_s=T0)])

    got = await store.buckets_many([ALL_KEY, ALL_KEY], 0, FAR_END_S)

    assert list(got) == [ALL_KEY] and [s.volume for s in got[ALL_KEY]] == [1]


async def test_buckets_many_reads_hundreds_of_keys(store: WindowStore) -> None:
    tickers = [f"T{n:03d}" for n in range(300)]
    await store.apply(
        [classified(f"m{n}", at_s=T0 + (n % 3) * BUCKET_S, tickers=[t]) for n, t in enumerate(tickers)]
    )
    keys = [f"ticker:{t}" for t in tickers]

    got = await store.buckets_many(keys, T0, FAR_END_S)

    assert [[(s.start_s, s.volume) for s in got[k]] for k in keys] == [
        [(T0 + (n % 3) * BUCKET_S, 1)] for n in range(300)
    ]


async def test_active_keys_lists_only_keys_with_a_bucket_at_or_after_since(store: WindowStore) -> None:
    await store.apply(
        [
            classified("old", at_s=T0, topic="macro"),
            classified("new", at_s=T0 + 2 * BUCKET_S, topic="earnings"),
        ]
    )

    assert await store.active_keys(T0 + 2 * BUCKET_S) == ["all", "topic:earnings"]
    assert await store.active_keys(T0 + 2 * BUCKET_S + 1) == []
    assert await store.active_keys(T0) == ["all", "topic:earnings", "topic:macro"]


async def test_active_keys_with_an_upper_bound_skip_keys_that_only_have_later_buckets(store: WindowStore) -> None:
    await store.apply(
        [
            classified("old", at_s=T0, topic="macro"),
            classified("new", at_s=T0 + 2 * BUCKET_S, topic="earnings"),
        ]
    )

    assert await store.active_keys(T0, T0 + 2 * BUCKET_S) == ["all", "topic:macro"]
    assert await store.active_keys(T0 + BUCKET_S, T0 + 2 * BUCKET_S) == []
    assert await store.active_keys(T0, T0 + 2 * BUCKET_S + 1) == ["all", "topic:earnings", "topic:macro"]


async def test_top_negative_is_most_negative_first_and_honours_the_limit(store: WindowStore) -> None:
    scores = {"a": -0.2, "b": -0.9, "c": -0.5}
    await store.apply([classified(i, at_s=T0 + n, score=s) for n, (i, s) in enumerate(scores.items())])

    assert [e.message_id for e in await store.top_negative(ALL_KEY, T0, FAR_END_S, 2)] == ["b", "c"]
    assert await store.top_negative(ALL_KEY, T0, FAR_END_S, 0) == []


async def test_top_negative_keeps_only_negative_scores(store: WindowStore) -> None:
    await store.apply(
        [
            classified("neg", at_s=T0, score=-0.1),
            classified("zero", at_s=T0, sentiment=Sentiment.NEGATIVE, score=0.0),
            classified("pos", at_s=T0, sentiment=Sentiment.POSITIVE, score=0.4),
        ]
    )

    assert [e.message_id for e in await store.top_negative(ALL_KEY, T0, FAR_END_S, 10)] == ["neg"]


async def test_top_negative_returns_the_evidence_item_as_written(store: WindowStore) -> None:
    message = classified("ev", at_s=T0 + 7, score=-0.123456789012345, text='Profit "warning" — ünïcode\n')
    await store.apply([message])

    (item,) = await store.top_negative(ALL_KEY, T0, FAR_END_S, 1)

    assert (item.message_id, item.source, item.text, item.score, item.event_time_s, item.url) == (
        "ev", "news", 'Profit "warning" — ünïcode\n', -0.123456789012345, T0 + 7, "https://news.example/ev",
    )  # fmt: skip


async def test_top_negative_keeps_the_n_most_negative_per_bucket_over_a_range(store: WindowStore) -> None:
    first = [classified(f"a{n}", at_s=T0, score=-n / 10) for n in range(1, 6)]
    second = [classified(f"b{n}", at_s=T0 + BUCKET_S, score=-n / 100) for n in range(1, 6)]
    await store.apply(first + second)

    got = await store.top_negative(ALL_KEY, T0, FAR_END_S, 100)

    assert [e.message_id for e in got] == ["a5", "a4", "a3", "b5", "b4", "b3"]


async def test_top_negative_breaks_score_ties_by_message_id(store: WindowStore) -> None:
    await store.apply([classified(i, at_s=T0, score=-0.5) for i in ["d", "b", "e", "a", "c"]])

    got = await store.top_negative(ALL_KEY, T0, FAR_END_S, 100)

    assert [e.message_id for e in got] == ["a", "b", "c"]


async def test_buckets_older_than_retention_behind_the_newest_bucket_are_dropped(
    store: WindowStore, store_settings: WindowSettings
) -> None:
    retention_s = store_settings.retention_s
    await store.apply([classified("old", at_s=T0, topic="macro", tickers=["OLD"])])
    await store.apply([classified("kept", at_s=T0 + retention_s, topic="macro")])
    # exactly retention_s behind the newest bucket is still inside the window
    assert [s.start_s for s in await store.buckets("topic:macro", 0, FAR_END_S)] == [T0, T0 + retention_s]
    assert "ticker:OLD" in await store.active_keys(0)

    await store.apply([classified("newest", at_s=T0 + retention_s + BUCKET_S, topic="earnings")])

    assert await store.buckets("ticker:OLD", 0, FAR_END_S) == []
    assert await store.buckets_many(["ticker:OLD"], 0, FAR_END_S) == {"ticker:OLD": []}
    assert await store.top_negative("ticker:OLD", 0, FAR_END_S, 10) == []
    assert [s.start_s for s in await store.buckets("topic:macro", 0, FAR_END_S)] == [T0 + retention_s]
    assert "ticker:OLD" not in await store.active_keys(0)


@pytest.mark.parametrize("kind", DURABLE_KINDS)
async def test_aggregates_dedup_and_conflicts_survive_a_new_store_instance(
    kind: str, request: pytest.FixtureRequest
) -> None:
    config = window_settings(kind, request)
    message = classified("m1", at_s=T0, score=-0.5, tickers=["TSLA"])
    async with build_window_store(config) as first:
        await first.apply([message])

    async with build_window_store(config) as second:
        applied = await second.apply([message, classified("m2", at_s=T0, score=-0.25)])
        clash = await second.apply([classified("m1", at_s=T0, score=-0.5, text="other words")])
        got = await second.buckets("ticker:TSLA", T0, FAR_END_S)
        evidence = await second.top_negative(ALL_KEY, T0, FAR_END_S, 10)

    assert (applied, clash) == (Applied(1, ()), Applied(0, (0,)))
    assert_same_stats(got, [BucketStats("ticker:TSLA", T0, negative=1, score_sum=-0.5)])
    assert [e.message_id for e in evidence] == ["m1", "m2"]


# --- property: any delivery order, duplication and batching folds like the distinct messages -------

SCORES = st.one_of(
    st.sampled_from([-1.0, -0.5, -0.25, 0.0, 0.25, 1.0]),
    st.floats(min_value=-1.0, max_value=1.0, allow_nan=False, allow_subnormal=False),
)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[ClassifiedMessage], list[list[ClassifiedMessage]]]:
    """Distinct messages, and batches delivering each at least once, with duplicates, in any order."""
    count = draw(st.integers(min_value=1, max_value=25))
    messages = [
        classified(
            f"m{n}",
            at_s=T0 + draw(st.integers(min_value=0, max_value=4 * BUCKET_S - 1)),
            sentiment=draw(st.sampled_from(list(Sentiment))),
            score=draw(SCORES),
            topic=draw(st.sampled_from(["earnings", "macro"])),
            tickers=draw(st.lists(st.sampled_from(["TSLA", "AAPL", "msft"]), max_size=2)),
            repeat_of=draw(st.sampled_from([None, None, "m0"])) if n else None,
        )
        for n in range(count)
    ]
    repeats = draw(st.lists(st.sampled_from(messages), max_size=15))
    stream = draw(st.permutations(messages + repeats))
    cuts = sorted(draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=6)))
    bounds = [0, *cuts, len(stream)]
    return messages, [stream[a:b] for a, b in itertools.pairwise(bounds)]


async def applied_view(
    config: WindowSettings, batches: list[list[ClassifiedMessage]]
) -> tuple[int, dict[str, list[BucketStats]], dict[str, list[str]]]:
    async with build_window_store(config) as store:
        applied = [await store.apply(batch) for batch in batches]
        assert [a.conflicts for a in applied] == [() for _ in batches]  # every repeat is the same message
        fresh = sum(a.fresh for a in applied)
        keys = await store.active_keys(0)
        stats = {k: await store.buckets(k, 0, FAR_END_S) for k in keys}
        assert await store.buckets_many(keys, 0, FAR_END_S) == stats
        evidence = {k: [e.message_id for e in await store.top_negative(k, 0, FAR_END_S, 1000)] for k in keys}
    return fresh, stats, evidence


@pytest.mark.parametrize("kind", STORE_KINDS)
@settings(max_examples=75, deadline=None)
@given(case=deliveries())
def test_any_delivery_of_messages_folds_like_the_distinct_messages_once(
    kind: str,
    request: pytest.FixtureRequest,
    case: tuple[list[ClassifiedMessage], list[list[ClassifiedMessage]]],
) -> None:
    messages, batches = case
    config = window_settings(kind, request)

    fresh, stats, evidence = asyncio.run(applied_view(config, batches))

    expected = fold(messages, BUCKET_S)
    expected_keys = sorted({key for key, _ in expected})
    assert fresh == len(messages)
    assert sorted(stats) == expected_keys
    for key in expected_keys:
        assert_same_stats(stats[key], [expected[slot] for slot in sorted(expected) if slot[0] == key])
    kept = reference_evidence(messages, BUCKET_S, TOP_N)
    for key in expected_keys:
        items = [e for (k, _), evs in kept.items() if k == key for e in evs]
        assert evidence[key] == [e.message_id for e in sorted(items, key=lambda e: (e.score, e.message_id))]
