"""The pure parts of RedisWindowStore: key names, evidence members and the script's KEYS/ARGV."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.types import Sentiment
from monitor.windows.buckets import EvidenceItem, content_digest
from monitor.windows.redis import (
    KeySpace,
    RedisWindowStore,
    build_apply_call,
    decode_evidence,
    encode_evidence,
)
from tests.contract.messages import T0, classified

IDS = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=12)
EVIDENCE = st.builds(
    EvidenceItem,
    message_id=st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=12),
    source=st.sampled_from(["news", "comment"]),
    text=st.text(max_size=40),
    score=st.floats(min_value=-1, max_value=0, exclude_max=True),
    event_time_s=st.integers(min_value=0, max_value=2**40),
    url=st.none() | st.text(max_size=20),
)


@given(ev=EVIDENCE)
def test_evidence_member_round_trips_every_field(ev: EvidenceItem) -> None:
    assert decode_evidence(encode_evidence(ev)) == ev


@given(ev=EVIDENCE)
def test_evidence_member_bytes_are_those_of_the_asdict_encoding(ev: EvidenceItem) -> None:
    # members already stored in Redis must keep matching (ZADD dedup, tie-break order)
    import dataclasses
    import json

    legacy = json.dumps(dataclasses.asdict(ev), separators=(",", ":"), ensure_ascii=True)
    assert encode_evidence(ev) == f"{ev.message_id}\x00{legacy}"


@given(a=IDS, b=IDS)
def test_evidence_members_with_equal_scores_sort_bytewise_like_their_message_ids(a: str, b: str) -> None:
    def member(message_id: str) -> bytes:
        return encode_evidence(EvidenceItem(message_id, "news", "same text", -0.5, T0)).encode()

    # Redis orders equal-score members by memcmp of their bytes
    assert (member(a) < member(b)) == (a < b)


def test_keys_share_the_prefix_hash_tag() -> None:
    keys = KeySpace("bt")

    names = [keys.active, keys.seen("m1"), keys.bucket("ticker:X", 60), keys.evidence("all", 0)]

    assert [*names, keys.index("all")] == [
        "{bt}:active", "{bt}:seen:m1", "{bt}:b:ticker:X:60", "{bt}:ev:all:0", "{bt}:idx:all",
    ]  # fmt: skip


@pytest.mark.parametrize("prefix", ["", "a{b", "a}b"])
def test_prefix_that_would_break_the_hash_tag_is_rejected(prefix: str) -> None:
    with pytest.raises(ValueError, match=r"windows\.key_prefix"):
        KeySpace(prefix)


def test_apply_call_lists_every_touched_key_and_references_shared_slots_once() -> None:
    items = [
        classified("m1", at_s=T0, score=-0.5, tickers=["TSLA"]),
        classified("m2", at_s=T0 + 1, sentiment=Sentiment.POSITIVE, score=0.25),
    ]

    keys, args = build_apply_call(items, KeySpace("p"), bucket_s=60, retention_s=3600, top_n=2)

    windows = ["all", "topic:earnings", "ticker:TSLA", "topic_ticker:earnings|TSLA"]
    assert keys == [
        "{p}:active", "{p}:seen:m1", "{p}:seen:m2",
        *[k for w in windows for k in (f"{{p}}:b:{w}:{T0}", f"{{p}}:ev:{w}:{T0}")],
        *[f"{{p}}:idx:{w}" for w in windows],
        "{p}:gen",
    ]  # fmt: skip
    head, slots, per_message = args[:5], args[5:17], args[17:]
    assert head == ["3600", "2", "2", "4", "4"]
    assert slots == [x for n, w in enumerate(windows) for x in (str(T0), w, str(n + 1))]
    member = per_message[2]
    assert per_message[:2] == ["neg", "-0.5"]
    assert per_message[3:9] == [content_digest(items[0].message), "4", "0", "1", "2", "3"]
    assert decode_evidence(member).message_id == "m1"
    assert per_message[9:] == ["pos", "0.25", "", content_digest(items[1].message), "2", "0", "1"]


def test_apply_call_sends_scores_as_exact_repr_strings() -> None:
    score = -0.1234567890123456789

    _, args = build_apply_call([classified("m", at_s=T0, score=score)], KeySpace("p"), bucket_s=60,
                               retention_s=60, top_n=0)  # fmt: skip

    field, sent, member = args[5 + 3 * 2 :][:3]  # after the head and two slots (all, topic)
    assert (field, float(sent), member) == ("neg", score, "")


def test_a_repeat_is_sent_as_a_rep_count_without_evidence() -> None:
    _, args = build_apply_call([classified("rt", at_s=T0, score=-0.9, repeat_of="story")], KeySpace("p"),
                               bucket_s=60, retention_s=60, top_n=5)  # fmt: skip

    field, _, member = args[5 + 3 * 2 :][:3]
    assert (field, member) == ("rep", "")


@pytest.mark.parametrize("score", [math.nan, math.inf, -math.inf])
def test_non_finite_score_is_refused_before_anything_is_sent(score: float) -> None:
    items = [classified("ok", at_s=T0), classified("bad", at_s=T0, score=score)]

    with pytest.raises(ValueError, match=r"'bad'.*not finite"):
        build_apply_call(items, KeySpace("p"), bucket_s=60, retention_s=60, top_n=1)


async def test_apply_before_start_raises_instead_of_connecting_lazily() -> None:
    store = RedisWindowStore("redis://127.0.0.1:1/0", key_prefix="p", bucket_s=60, retention_s=60,
                             top_negative_per_bucket=1)  # fmt: skip

    with pytest.raises(RuntimeError, match="not started"):
        await store.apply([])
