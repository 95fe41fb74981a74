from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from monitor.novelty.index import NoveltyIndex
from monitor.novelty.minhash import jaccard
from tests.integration.streams import reference

STORY = "Acme shares plunge after fraud probe widens"
OTHER = "Acme beats estimates and raises full-year guidance"


def index(**kw: object) -> NoveltyIndex:
    params: dict[str, object] = {"window_s": 3600, "max_entries": 100}
    params.update(kw)
    return NoveltyIndex(**params)  # type: ignore[arg-type]


def test_retweets_reissues_and_copies_repeat_the_first_story() -> None:
    ix = index()
    assert ix.decide("s", STORY, 0, ("ACME",)) is None
    for n, copy in enumerate([f"RT @jane: {STORY}", f"UPDATE 1-{STORY}", f"{STORY} https://t.co/x - Reuters",
                              f"{STORY}, sources say"]):
        assert ix.decide(f"c{n}", copy, 60 * n, ("ACME",)) == "s"


def test_a_different_story_is_new() -> None:
    ix = index()
    ix.decide("s", STORY, 0, ("ACME",))
    assert ix.decide("o", OTHER, 10, ("ACME",)) is None
    assert ix.decide("o2", "Acme shares rise after upbeat trading update", 20, ("ACME",)) is None


def test_one_template_filled_in_the_other_direction_is_a_story_of_its_own() -> None:
    # found by review: 0.71 similar, so the lawsuit story folded into the buyback one and never counted as negative
    ix = index()
    up = "Apple shares are trading higher by 3% on Monday after the company announced a buyback"
    assert ix.decide("up", up, 0, ("AAPL",)) is None
    assert ix.decide("down", up.replace("higher", "lower").replace("buyback", "lawsuit"), 60, ("AAPL",)) is None
    reworded = "Apple shares are trading higher by 3% Monday after the company announced a buyback plan"
    assert ix.decide("again", reworded, 120, ("AAPL",)) == "up"  # the same way round still folds


def test_the_same_message_id_always_gets_the_same_decision() -> None:
    ix = index()
    ix.decide("s", STORY, 0, ("ACME",))
    assert ix.decide("c", f"RT @x: {STORY}", 5, ("ACME",)) == "s"
    assert ix.decide("c", f"RT @x: {STORY}", 5, ("ACME",)) == "s"
    assert ix.decide("s", STORY, 0, ("ACME",)) is None


def test_a_redelivered_story_is_never_a_repeat_of_itself_even_when_its_decision_was_forgotten() -> None:
    ix = index(max_entries=3)
    ix.decide("s", STORY, 0, ("ACME",))
    for n in range(3):  # push "s" out of the decision memory, keep its story in the ring
        ix.decide(f"x{n}", f"unrelated note number {n} about nothing", 1, ())
    ix._decisions.pop("s", None)
    assert ix.decide("s", STORY, 0, ("ACME",)) is None


def test_copies_outside_the_window_are_new_stories() -> None:
    ix = index(window_s=600)
    ix.decide("s", STORY, 0, ("ACME",))
    assert ix.decide("late", f"RT @x: {STORY}", 601, ("ACME",)) is None


def test_the_same_text_about_other_tickers_is_another_story() -> None:
    ix = index()
    ix.decide("a", "Shares plunge after the fraud probe widens", 0, ("ACME",))
    assert ix.decide("b", "Shares plunge after the fraud probe widens", 1, ("XYZ",)) is None
    assert ix.decide("c", "Shares plunge after the fraud probe widens", 2, ("XYZ", "ACME")) == "a"
    assert ix.decide("d", "Shares plunge after the fraud probe widens", 3, ()) is None


def test_very_short_messages_are_never_folded() -> None:
    ix = index()
    assert ix.decide("a", "sell $TSLA now", 0, ("TSLA",)) is None
    assert ix.decide("b", "sell $TSLA now", 1, ("TSLA",)) is None


def test_memory_is_bounded_and_the_oldest_story_is_forgotten_first() -> None:
    ix = index(max_entries=5)
    ix.decide("s", STORY, 0, ("ACME",))
    for n in range(5):
        ix.decide(f"n{n}", f"completely different headline {n} {'x' * n} about widgets", n, ())
    assert len(ix) == 5 and len(ix._decisions) == 5
    assert len(ix._bands) <= 5 * 16
    assert ix.decide("copy", f"RT @x: {STORY}", 10, ("ACME",)) is None


def _evicted_in_window() -> float:
    return REGISTRY.get_sample_value("finsent_novelty_evicted_in_window_total") or 0.0


def test_a_story_forgotten_inside_its_window_is_counted() -> None:
    ix = index(window_s=600, max_entries=2)
    before = _evicted_in_window()
    ix.decide("s", STORY, 0, ("ACME",))
    ix.decide("n1", "completely different headline about widgets", 10, ())
    ix.decide("n2", "another unrelated note about gadgets", 20, ())  # evicts "s" at 20 s, window 600 s
    assert _evicted_in_window() == before + 1
    assert ix.decide("copy", f"RT @x: {STORY}", 30, ("ACME",)) is None  # the copy counts again


def test_a_story_forgotten_after_its_window_is_not_counted() -> None:
    ix = index(window_s=600, max_entries=1)
    before = _evicted_in_window()
    ix.decide("s", STORY, 0, ("ACME",))
    ix.decide("n1", "completely different headline about widgets", 601, ())
    assert _evicted_in_window() == before


WORDS = st.sampled_from(["acme", "shares", "plunge", "after", "fraud", "probe", "beats", "profit", "bank", "rise"])


@given(st.lists(st.lists(WORDS, min_size=4, max_size=10).map(" ".join), min_size=1, max_size=30))
def test_decisions_are_deterministic_and_point_to_earlier_stories(texts: list[str]) -> None:
    a, b = index(), index()
    decided = [a.decide(f"m{n}", t, n, ("ACME",)) for n, t in enumerate(texts)]
    assert decided == [b.decide(f"m{n}", t, n, ("ACME",)) for n, t in enumerate(texts)]
    stories = {f"m{n}" for n, d in enumerate(decided) if d is None}
    for n, story in enumerate(decided):
        assert story is None or (story in stories and int(story[1:]) < n)
    assert [a.decide(f"m{n}", t, n, ("ACME",)) for n, t in enumerate(texts)] == decided


@given(st.sets(st.integers(0, 2**32 - 1), max_size=40), st.sets(st.integers(0, 2**32 - 1), max_size=40))
def test_jaccard_of_complete_hash_sets_is_exact(a: set[int], b: set[int]) -> None:
    got = jaccard(np.array(sorted(a), dtype=np.uint32), np.array(sorted(b), dtype=np.uint32))
    assert got == pytest.approx(len(a & b) / len(a | b) if a | b else 0.0)


def test_similar_wording_of_distinct_messages_is_not_folded_by_estimate_noise() -> None:
    ix = index(max_entries=2000)
    base = "ACME to hold annual meeting on Tuesday"
    folded = [ix.decide(f"m{n}", f"{base} ref {reference(str(n))}", n, ("ACME",)) for n in range(600)]
    assert folded == [None] * 600  # true similarity ~0.35 (a MinHash estimate would pass 0.6 now and then)


def test_short_comments_written_independently_stay_separate_but_their_copies_fold() -> None:
    """Found by review: at 0.6 similarity five of eight users' short takes ("$XYZ is a total scam", "... scam
    imo") folded into the first, so a pile-on of opinions counted once."""
    ix = index()
    assert ix.decide("a", "$XYZ is a total scam", 0, ("XYZ",)) is None
    assert ix.decide("b", "$XYZ is a total scam imo", 10, ("XYZ",)) is None
    assert ix.decide("c", "RT @bob: $XYZ is a total scam imo", 20, ("XYZ",)) == "b"
    assert ix.decide("d", "$XYZ is a total scam!!", 30, ("XYZ",)) == "a"  # the same words: a copy
