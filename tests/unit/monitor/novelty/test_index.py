from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from monitor.entities.linker import EntityLinker
from monitor.entities.watchlist import Company
from monitor.novelty.index import NoveltyIndex, company_cashtags, other_cashtags, same_companies
from monitor.novelty.minhash import jaccard
from monitor.novelty.text import normalise
from monitor.types import Sentiment
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
    for n, copy in enumerate([f"RT @jane: {STORY}", f"UPDATE 1-{STORY}", f"{STORY} https://t.co/x - Reuters"]):
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


def test_a_message_classified_the_other_way_never_repeats_the_story() -> None:
    """Found by review: "Boeing shares gain ... investors cheer ..." then "... decline ... investors weigh ..." (0.64
    similar, "decline" on no word list) folded the negative story into the positive one: ticker:BA negative 0."""
    ix = index()
    up = "Acme shares trade in line with estimates for the period as the quarter was good overall"
    down = "Acme shares trade in line with estimates for the period as the quarter was bad overall"
    assert ix.decide("up", up, 0, ("ACME",), Sentiment.POSITIVE) is None
    assert ix.decide("down", down, 60, ("ACME",), Sentiment.NEGATIVE) is None
    assert ix.decide("rt", f"RT @x: {down}", 90, ("ACME",), Sentiment.NEGATIVE) == "down"
    assert ix.decide("calm", f"RT @y: {up}", 120, ("ACME",), Sentiment.NEUTRAL) == "up"  # neutral folds either way
    assert ix.decide("unlabelled", f"RT @z: {up}", 150, ("ACME",)) == "up"


@pytest.mark.parametrize(("up", "down"), [
    ("Boeing shares gain in early trading as investors cheer delivery numbers for the quarter",
     "Boeing shares decline in early trading as investors weigh delivery numbers for the quarter"),
    ("Boeing shares advance 3% in premarket trading after analyst day presentation",
     "Boeing shares slip 3% in premarket trading after analyst day presentation"),
    ("Boeing stock spikes 6% in afternoon trading on heavy volume, options activity",
     "Boeing stock plummets 6% in afternoon trading on heavy volume, options activity"),
])
def test_one_template_with_other_movement_words_the_other_way_is_a_story_of_its_own(up: str, down: str) -> None:
    """Found by review: the direction lists lacked decline, slip, plummets, advance, spikes..., so these folded."""
    ix = index()
    assert ix.decide("up", up, 0, ("BA",)) is None
    assert ix.decide("down", down, 60, ("BA",)) is None


def test_two_companies_stories_that_share_a_third_ticker_stay_two_stories() -> None:
    """Found by review: (AAPL, SPY) then (MSFT, SPY) with one template folded on SPY: ticker:MSFT negative 0."""
    ix = index()
    text = "shares plunge 9% after CEO abruptly resigns amid accounting probe $SPY"
    assert ix.decide("aapl", f"Apple {text}", 0, ("AAPL", "SPY")) is None
    assert ix.decide("msft", f"Microsoft {text}", 60, ("MSFT", "SPY")) is None
    supplier = "shares plunge 12% after guidance cut on weak server demand, Nvidia supplier checks soft"
    assert ix.decide("dell", f"Dell {supplier}", 0, ("DELL", "NVDA")) is None
    assert ix.decide("hp", f"HP {supplier}", 60, ("HPQ", "NVDA")) is None
    assert ix.decide("rt", f"RT @x: Apple {text}", 90, ("AAPL", "SPY")) == "aapl"
    assert ix.decide("etf", f"Apple {text} $QQQ", 120, ("AAPL", "QQQ")) == "aapl"  # index funds aside: Apple's
    assert ix.decide("adds", f"Dell {supplier} $HPE", 150, ("DELL", "NVDA", "HPE")) == "dell"  # a copy adding one


@pytest.mark.parametrize(("story", "message", "same"), [
    ({"AAPL"}, {"AAPL"}, True),
    (set(), set(), True),
    ({"AAPL", "SPY"}, {"MSFT", "SPY"}, False),
    ({"DELL", "NVDA"}, {"HPQ", "NVDA"}, False),
    ({"AAPL"}, {"AAPL", "MSFT"}, True),
    ({"AAPL", "MSFT"}, {"AAPL"}, True),
    ({"AAPL", "SPY"}, {"AAPL", "QQQ"}, True),
    ({"SPY"}, {"SPY", "QQQ"}, True),
    ({"SPY"}, {"QQQ"}, False),
    ({"AAPL", "SPY"}, {"SPY"}, False),
    ({"AAPL"}, set(), False),
])
def test_same_companies_looks_past_broad_market_tickers_and_takes_a_copy_that_adds_one(
    story: set[str], message: set[str], same: bool
) -> None:
    assert same_companies(frozenset(story), frozenset(message)) is same


def test_different_unlinked_cashtags_in_one_template_stay_separate_stories() -> None:
    """Found by review: $ACME, $ZETA and $QRVO off the watchlist link no ticker, and normalising made each cashtag a
    plain word, so three companies' stories folded into one on the ``all`` key (negative 1, repeats 2)."""
    ix = index()
    template = "shares plunge 40% after auditor resigns and company delays annual filing"
    assert [ix.decide(tag, f"${tag} {template}", n, ()) for n, tag in enumerate(["ACME", "ZETA", "QRVO"])] == [
        None, None, None]
    assert ix.decide("rt", f"RT @x: $ZETA {template}", 10, ()) == "ZETA"
    assert ix.decide("more", f"$ACME {template} $SPY", 20, ()) == "ACME"  # shares a company: a copy that adds one


def test_copies_of_a_chinese_or_japanese_story_fold() -> None:
    """Found by review: a clause without spaces was one word, fewer than ``min_tokens``, so 6 copies of a Chinese
    retweet counted as 6 stories."""
    ix = index()
    story = "特斯拉股价暴跌8%\uff0c因上海工厂停产三周\uff0c交付量预计大幅下降"
    assert ix.decide("s", story, 0, ("TSLA",)) is None
    assert [ix.decide(f"rt{n}", f"RT @user{n}: {story} https://t.co/abc{n}", 10 + n, ("TSLA",)) for n in range(5)] == [
        "s"] * 5
    assert ix.decide("other", "特斯拉发布新款车型\uff0c预计明年交付\uff0c售价低于市场预期", 20, ("TSLA",)) is None
    japanese = "トヨタ自動車の株価が急落、大規模リコールで"
    assert ix.decide("j", japanese, 30, ("TM",)) is None
    assert ix.decide("jrt", f"RT @u: {japanese}", 40, ("TM",)) == "j"


def test_copies_disguised_with_cyrillic_look_alike_letters_fold() -> None:
    """Found by review: with ~30% of a/e/o/c/p/y swapped for Cyrillic ones (rendering the same), 5 copies counted
    as 4 stories."""
    story = "$BA Boeing whistleblower says 737 MAX wiring defects were hidden from FAA inspectors, sell now"
    cyrillic = str.maketrans("aeocpy", "\u0430\u0435\u043e\u0441\u0440\u0443")
    ix = index()
    assert ix.decide("s", story, 0, ("BA",)) is None
    words = ["Boeing", "whistleblower", "says", "wiring", "defects", "were", "hidden", "from", "inspectors", "sell"]
    for n in range(5):  # a different third of the words disguised in each copy
        disguised = " ".join(w.translate(cyrillic) if w in words[n::3] else w for w in story.split(" "))
        assert ix.decide(f"c{n}", disguised, 10 + n, ("BA",)) == "s"
        assert disguised != story and normalise(disguised) == normalise(story)


def test_whether_a_short_comment_folds_does_not_depend_on_arrival_order() -> None:
    """Found by review: "$BA is a total scam" then "... scam. Get out now" folded (the threshold used only the
    incoming message's length), the other way round they did not."""
    pairs = [("$BA is a total scam", "$BA is a total scam. Get out now"), (STORY, f"{STORY}, sources say")]
    for first, second in [*pairs, *((b, a) for a, b in pairs)]:  # a 7-word headline is short too: 0.76 is no copy
        ix = index()
        assert ix.decide("a", first, 0, ("BA",)) is None
        assert ix.decide("b", second, 60, ("BA",)) is None
        assert ix.decide("rt", f"RT @x: {first}", 90, ("BA",)) == "a"
        assert ix.decide("rt2", f"RT @y: {second}", 90, ("BA",)) == "b"


def test_a_copy_tagged_with_another_symbol_of_the_company_or_only_an_index_fund_folds() -> None:
    """Found by the regression review: cashtags compared as written, so "... $GOOGL" then its retweet "... $GOOG"
    (both linked to GOOGL), "$META ..." then "$FB ...", and "... $AAPL" then "... $SPY" were two stories."""
    linker = EntityLinker([Company("GOOGL", ("Alphabet",), symbols=("GOOG",)), Company("META", ("Meta",),
                                                                                      symbols=("FB",))])
    ix = index(company_ticker=linker.company_ticker)
    alphabet = "Alphabet shares jump 6% after cloud revenue tops estimates"
    assert ix.decide("googl", f"{alphabet} $GOOGL", 0, ("GOOGL",)) is None
    assert ix.decide("goog", f"RT @trader: {alphabet} $GOOG", 10, ("GOOGL",)) == "googl"
    meta = "Meta shares slump 8% as ad growth slows sharply, capex guidance raised"
    assert ix.decide("meta", f"$META {meta}", 20, ("META",)) is None
    assert ix.decide("fb", f"RT @news: $FB {meta}", 30, ("META",)) == "meta"
    apple = "Apple shares plunge 9% after CEO abruptly resigns"
    assert ix.decide("aapl", f"{apple} $AAPL", 40, ("AAPL",)) is None
    assert ix.decide("spy", f"{apple} $SPY", 50, ("AAPL",)) == "aapl"


@pytest.mark.parametrize(("story", "message", "other"), [
    ({"ACME"}, {"ZETA"}, True),
    ({"ACME", "SPY"}, {"ZETA", "SPY"}, True),
    ({"ACME"}, {"ACME", "SPY"}, False),
    ({"AAPL"}, {"SPY"}, False),
    ({"SPY"}, {"QQQ"}, False),
    ({"AAPL"}, set(), False),
])
def test_other_cashtags_vetoes_only_two_texts_that_name_different_companies(
    story: set[str], message: set[str], other: bool
) -> None:
    assert other_cashtags(story, frozenset(message)) is other


def test_a_ticker_list_names_no_company_and_keeps_no_cashtags() -> None:
    """Found by the regression review: every cashtag was kept for the story's window, 137 KiB a story for a 10 KB
    list of 2,000 (2.7 GiB for 20,000 stories)."""
    symbols = [f"{a}{b}{c}" for a in "ABCDEFGHIJ" for b in "ABCDEFGHIJ" for c in "ABCDEFGHIJKLMNOPQRST"]
    assert company_cashtags(" ".join(f"${s}" for s in symbols[:5]), str) == frozenset()
    assert company_cashtags("$FB and $ZETA", lambda symbol: {"FB": "META"}.get(symbol, symbol)) == {"META", "ZETA"}
    ix = index(max_entries=1000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(20):
            ix.decide(f"m{n}", " ".join(f"${s}" for s in symbols[n * 100 :][:1000]) + f" n{n}", n, ())
        per_story = (tracemalloc.get_traced_memory()[0] - before) / 20
    finally:
        tracemalloc.stop()
    assert per_story < 16 * 1024


def test_short_chinese_opinions_written_independently_stay_separate_but_their_copies_fold() -> None:
    """Found by the regression review: counted in character pairs, a 9-character opinion had 8 "words", missed the
    short-text bar, and four people's takes on $TSLA counted as one story."""
    ix = index()
    takes = ("特斯拉就是个骗局", "特斯拉就是个骗局吧", "特斯拉就是个大骗局",
             "我觉得特斯拉就是个骗局")
    opinions = [f"$TSLA {take}" for take in takes]
    assert [ix.decide(f"o{n}", text, n, ("TSLA",)) for n, text in enumerate(opinions)] == [None] * 4
    assert ix.decide("rt", f"RT @x: {opinions[1]}", 10, ("TSLA",)) == "o1"


def test_two_long_bodies_with_one_preamble_and_opposite_endings_stay_two_stories() -> None:
    """Found by the regression review: only the first 2,000 tokens were compared, so a long shared disclaimer made
    'shares fell' and 'shares rose' one story, past the direction guard."""
    preamble = " ".join(f"disclaimer{n}" for n in range(2_500))
    ix = index()
    assert ix.decide("a", f"{preamble} acme shares fell sharply today", 0, ("ACME",)) is None
    assert ix.decide("b", f"{preamble} acme shares rose sharply today", 10, ("ACME",)) is None
