from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumers.schema import MAX_TICKERS
from monitor.entities import linker as linker_module
from monitor.entities.linker import (
    EntityLinker,
    _is_boundary,
    cashtags,
)
from monitor.entities.watchlist import Company, load_watchlist

COMPANIES = [
    Company("AAPL", ("Apple Inc.", "Apple")),
    Company("JPM", ("JPMorgan Chase", "JPMorgan"), ambiguous=("Chase",)),
    Company("TGT", ("Target Corporation",), ambiguous=("Target",)),
    Company("V", (), ambiguous=("Visa",)),
    Company("META", ("Meta Platforms", "Facebook"), ambiguous=("Meta",)),
]


@pytest.fixture(scope="module")
def linker() -> EntityLinker:
    return EntityLinker(COMPANIES, cashtag_scope="any")


@pytest.mark.parametrize(("text", "expected"), [
    ("$AAPL up 3%", ["AAPL"]),
    ("buying $aapl and $TSLA today", ["AAPL", "TSLA"]),
    ("($NVDA) beats", ["NVDA"]),
    ("$BRK.B and $BF-B and $brk/b", ["BRK.B", "BF.B", "BRK.B"]),
    ("costs $5 or $100M, US$20, $3.5bn", []),
    ("$AAPL2 is not a ticker, nor is a$AAPL or $$AAPL", []),
    ("$TOOLONGX", []),
])
def test_cashtags_need_a_letter_right_after_the_dollar_and_a_boundary_after_the_symbol(
    text: str, expected: list[str]
) -> None:
    assert cashtags(text) == expected


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["", "M", "bn", "k", ".5", ",000"]))
def test_dollar_amounts_never_link(amount: int, suffix: str) -> None:
    assert cashtags(f"raised ${amount}{suffix} from investors") == []


def test_company_names_link_with_their_spelling_or_in_capitals(linker: EntityLinker) -> None:
    assert linker.tickers("Apple shares fall") == ("AAPL",)
    assert linker.tickers("APPLE SHARES FALL") == ("AAPL",)
    assert linker.tickers("apple pie recipe") == ()


def test_names_need_word_boundaries(linker: EntityLinker) -> None:
    assert linker.tickers("Pineapple and Applebee's and Facebooks") == ()
    assert linker.tickers("Apple's CEO, (Apple) and Apple-branded") == ("AAPL",)


def test_the_longest_overlapping_name_wins(linker: EntityLinker) -> None:
    assert linker.tickers("JPMorgan Chase reports") == ("JPM",)
    assert linker.tickers("Meta Platforms is fined") == ("META",)


@pytest.mark.parametrize("text", [
    "Target misses the mark", "Chase the dream", "Visa rules for students tightened", "Meta analysis of trials",
])
def test_ambiguous_names_without_a_cue_do_not_link(linker: EntityLinker, text: str) -> None:
    assert linker.tickers(text) == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("Target shares fall after weak holiday sales", ("TGT",)),
    ("Target's CEO steps down", ("TGT",)),
    ("Target (TGT) cuts outlook", ("TGT",)),
    ("Visa Inc beats", ("V",)),
    ("analysts downgrade Visa", ("V",)),
    ("Visa earnings beat", ("V",)),
])
def test_ambiguous_names_link_with_a_company_word_or_their_symbol_nearby(
    linker: EntityLinker, text: str, expected: tuple[str, ...]
) -> None:
    assert linker.tickers(text) == expected


def test_an_ambiguous_name_links_when_its_ticker_is_already_present(linker: EntityLinker) -> None:
    assert linker.tickers("Target misses the mark", given=("TGT",)) == ("TGT",)
    assert linker.tickers("$TGT: Target misses the mark") == ("TGT",)


def test_payload_tickers_come_first_and_the_union_is_deduplicated(linker: EntityLinker) -> None:
    assert linker.tickers("Apple and $MSFT and $AAPL", given=("MSFT", "IBM")) == ("MSFT", "IBM", "AAPL")


def test_cashtags_outside_the_watchlist_link_only_with_the_any_scope() -> None:
    scoped = EntityLinker(COMPANIES, cashtag_scope="watchlist")
    assert scoped.tickers("$AAPL and $ZZZZ, NYSE:QQQQ") == ("AAPL",)
    assert scoped.tickers("$ZZZZ", given=("ZZZZ",)) == ("ZZZZ",)
    assert EntityLinker(COMPANIES, cashtag_scope="any").tickers("$AAPL and $ZZZZ") == ("AAPL", "ZZZZ")


def test_exchange_prefixed_symbols_link() -> None:
    assert EntityLinker([], cashtag_scope="any").tickers("NYSE:TGT and NASDAQ: AAPL") == ("TGT", "AAPL")


def test_the_result_is_capped() -> None:
    text = " ".join(f"${a}{b}" for a in string.ascii_uppercase for b in string.ascii_uppercase[:3])
    assert len(EntityLinker([], max_cashtags=100, cashtag_scope="any").tickers(text)) == MAX_TICKERS


def test_a_list_of_many_cashtags_links_none_of_them_but_keeps_payload_and_names(linker: EntityLinker) -> None:
    spam = "Stocks to watch $AAPL $DY $LMT $MDVN $ITB #investing, Apple too"
    assert linker.tickers(spam, given=("LMT",)) == ("LMT", "AAPL")
    assert linker.tickers("$AAPL $MSFT $GOOG $AMZN move") == ("AAPL", "MSFT", "GOOG", "AMZN")


def test_switches_turn_each_kind_of_linking_off() -> None:
    no_names = EntityLinker(COMPANIES, link_names=False, cashtag_scope="any")
    no_tags = EntityLinker(COMPANIES, link_cashtags=False, cashtag_scope="any")
    assert no_names.tickers("Apple and $TSLA") == ("TSLA",)
    assert no_tags.tickers("Apple and $TSLA") == ("AAPL",)


def test_the_bundled_watchlist_links_common_aliases() -> None:
    linker = EntityLinker(load_watchlist())
    assert linker.tickers("Google and Facebook face EU fine") == ("GOOGL", "META")
    assert linker.tickers("JP Morgan and Goldman Sachs cut jobs") == ("JPM", "GS")
    assert linker.tickers("Gap widens between rich and poor") == ()
    assert linker.tickers("Gap shares tumble on weak sales") == ("GPS",)


@pytest.fixture(scope="module")
def bundled() -> EntityLinker:
    return EntityLinker(load_watchlist())


@pytest.mark.parametrize("text", [
    "ANALYSTS RAISE PRICE TARGET ON NVIDIA SHARES",
    "UBS Cuts Price Target on Nike Shares",
    "Goldman Sachs Cuts Tesla Price Target; Shares Fall",
    "GAP DOWN: Nvidia shares open lower",
    "Tesla Shares Gap Down After Deliveries Miss",
    "Shares gap up; stock of the day",
    "Stocks Gap lower at open",
    "Dow drops as stocks slide",
    "Stocks Slide, Dow Drops 500 Points",
    "The Dow fell 2% as shares of banks slid",
    "The Dow Jones Industrial Average: shares slide",
    "Dow futures slip, stock market set for lower open",
    "Investors Chase AI Stocks",
    "Bitcoin Miners Chase Rally as Shares Jump",
])
def test_market_phrases_around_an_ambiguous_name_link_no_company(bundled: EntityLinker, text: str) -> None:
    assert not {"TGT", "GPS", "DOW", "JPM"} & set(bundled.tickers(text))


@pytest.mark.parametrize(("text", "expected"), [
    ("Dow Inc shares fall", "DOW"),
    ("Dow Inc. cuts jobs", "DOW"),
    ("$DOW slides", "DOW"),
    ("Target shares fall", "TGT"),
    ("Target Corp cuts outlook", "TGT"),
    ("Analysts raise price target; Target shares slide", "TGT"),
    ("Gap Inc. shares fall", "GPS"),
    ("Chase Bank outage leaves customers locked out", "JPM"),
])
def test_the_company_still_links_next_to_a_market_phrase(bundled: EntityLinker, text: str, expected: str) -> None:
    assert expected in bundled.tickers(text)


def test_a_cue_in_the_next_sentence_does_not_count(linker: EntityLinker) -> None:
    assert linker.tickers("Target misses. Shares of rivals fall") == ()
    assert linker.tickers("Chase the dream; shares are for later") == ()
    assert linker.tickers("Target U.S. sales rose") == ("TGT",)  # "U.S." ends no sentence


@pytest.mark.parametrize("text", ["Bought GE. Shares of Apple fell", "Sold shares.GE fell"])
def test_a_stop_right_next_to_an_ambiguous_name_ends_its_sentence_even_after_a_capital(text: str) -> None:
    assert EntityLinker([Company("GE", (), ambiguous=("GE",))]).tickers(text) == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("Target&Co shares", ("TGT",)),  # "&Co" is the word after the name
    ("Target " + "x" * 52 + " shares fell", ("TGT",)),  # "shares" ends the 60-character window
    ("Target " + "x" * 58 + " shares fell", ()),  # "shares" starts past it
])
def test_cue_words_are_found_as_in_the_text_right_after_the_name(
    linker: EntityLinker, text: str, expected: tuple[str, ...]
) -> None:
    assert linker.tickers(text) == expected


def test_plural_stocks_and_investors_are_no_company_cue(linker: EntityLinker) -> None:
    assert linker.tickers("Investors Chase AI Stocks") == ()
    assert linker.tickers("Visa rules hit travel stocks") == ()
    assert linker.tickers("Visa stock slides") == ("V",)


def test_a_blocker_links_nothing_and_beats_the_shorter_name_inside_it() -> None:
    linker = EntityLinker([Company("AMZN", ("Amazon",), blockers=("Amazon rainforest",))], blockers=())
    for text in ["Amazon rainforest fires", "AMAZON RAINFOREST FIRES", "Amazon Rainforest Fires"]:
        assert linker.tickers(text) == ()
    assert linker.tickers("Amazon shares fall near the Amazon rainforest") == ("AMZN",)


def test_a_name_wins_over_the_same_words_given_as_a_blocker() -> None:
    linker = EntityLinker([Company("DJ", ("Dow Jones",))])  # the bundled market phrases block "Dow Jones"
    assert linker.tickers("Dow Jones sold") == ("DJ",)


@pytest.mark.parametrize("text", [
    "Amazon rainforest fires worsen", "AMAZON RAINFOREST FIRES", "Intel officials say Iran attack imminent",
    "US Intel agencies warn of threat", "Klaus Schwab steps down from WEF", "Berkshire police hunt suspect",
    "Big Apple hit by blackout", "I baked an Apple pie for dinner", "Citi Field flooded",
    "Caterpillar invasion destroys crops", "Colgate University students protest", "AMEX: FOO",
])
def test_ordinary_words_that_contain_a_bundled_name_link_nothing(bundled: EntityLinker, text: str) -> None:
    assert bundled.tickers(text) == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("Amazon shares fall", ("AMZN",)), ("Apple earnings miss", ("AAPL",)), ("Intel cuts guidance", ("INTC",)),
    ("Schwab raises fees", ("SCHW",)), ("Citi downgrades Caterpillar", ("C", "CAT")), ("Amex raises fees", ("AXP",)),
    ("NYSE:AXP and AMEX: FOO", ("AXP",)),
])
def test_the_bundled_companies_still_link_by_name(bundled: EntityLinker, text: str, expected: tuple[str, ...]) -> None:
    assert bundled.tickers(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Tes\u200bla recalls cars", ("TSLA",)),
    ("\uff34\uff45\uff53\uff4c\uff41 recalls cars", ("TSLA",)),
    ("AT&amp;T outage", ("T",)),
    ("Macy\u2019s cuts jobs", ("M",)),
    ("Visa\u02bcs CEO resigns", ("V",)),
    ("Este\u0301e Lauder shares", ("EL",)),
    ("\uff04\uff21\uff21\uff30\uff2c up", ("AAPL",)),
])
def test_text_is_folded_before_matching(bundled: EntityLinker, text: str, expected: tuple[str, ...]) -> None:
    assert bundled.tickers(text) == expected


@pytest.mark.parametrize(("text", "given", "expected"), [
    ("$BRK-B falls", (), ("BRK.B",)),
    ("$BRK/B falls", (), ("BRK.B",)),
    ("$brk.b falls", (), ("BRK.B",)),
    ("$BF.B falls", (), ("BF.B",)),
    ("NYSE: BRK-B hits a record", (), ("BRK.B",)),
    ("Berkshire Hathaway falls", ("brk-b",), ("BRK.B",)),
])
def test_class_share_symbols_have_one_spelling_everywhere(
    bundled: EntityLinker, text: str, given: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert bundled.tickers(text, given=given) == expected


def test_watchlist_tickers_are_normalised_too() -> None:
    linker = EntityLinker([Company("brk-b", ("Berkshire Hathaway",))])
    assert linker.tickers("$BRK.B and Berkshire Hathaway") == ("BRK.B",)


@given(st.text(max_size=300), st.lists(st.sampled_from(["AAPL", "X", "BRK.B"]), max_size=3, unique=True))
def test_any_text_links_without_error_and_keeps_the_payload_tickers(text: str, given_tickers: list[str]) -> None:
    got = EntityLinker(COMPANIES, cashtag_scope="any").tickers(text, given=given_tickers)
    assert got[: len(given_tickers)] == tuple(given_tickers)
    assert len(got) == len(set(got)) <= MAX_TICKERS


def _brute_force_spans(found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The overlap rule stated plainly: longest first (leftmost among equals), keep what overlaps nothing kept."""
    kept: list[tuple[int, int]] = []
    for span in sorted(found, key=lambda s: (s[0] - s[1], s[0])):
        if all(span[1] <= k[0] or span[0] >= k[1] for k in kept):
            kept.append(span)
    return sorted(kept)


@given(st.lists(st.sampled_from(["Apple", "Apple Inc.", "Inc.", "Meta", "Meta Platforms", "Platforms", "x", "Chase",
                                 "JPMorgan Chase", "Target"]), max_size=40))
def test_overlapping_names_resolve_like_the_plain_longest_first_rule(words: list[str]) -> None:
    linker = EntityLinker([*COMPANIES, Company("INC", ("Inc.",)), Company("PLAT", ("Platforms",))])
    text = " ".join(words)
    found = [(last - length + 1, last + 1) for last, (length, _) in linker._automaton.iter(text)
             if _is_boundary(text, last - length) and _is_boundary(text, last + 1)]
    assert [(start, end) for start, end, _ in linker._spans(text)] == _brute_force_spans(found)


@pytest.fixture(scope="module")
def renamed() -> EntityLinker:
    """Companies with another symbol each: a former ticker (FB) and another share class (GOOG)."""
    return EntityLinker([
        Company("META", ("Meta Platforms", "Facebook"), ambiguous=("Meta",), symbols=("FB",)),
        Company("GOOGL", ("Alphabet", "Google"), symbols=("GOOG",)),
    ])


@pytest.mark.parametrize(("text", "given", "expected"), [
    ("Facebook shares fall after $FB misses", ("FB",), ("META",)),  # the reviewer's backtest story
    ("$FB beats", (), ("META",)),
    ("NASDAQ: FB opens lower", (), ("META",)),
    ("Google fined", ("GOOG", "GOOGL"), ("GOOGL",)),
    ("$goog up", (), ("GOOGL",)),
])
def test_a_companys_other_symbols_count_once_under_its_ticker(
    renamed: EntityLinker, text: str, given: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert renamed.tickers(text, given=given) == expected


def test_a_payload_ticker_outside_the_watchlist_stays_as_it_is(renamed: EntityLinker) -> None:
    assert renamed.tickers("Facebook", given=("ZZZZ", "fb")) == ("ZZZZ", "META")


def test_an_other_symbol_in_parentheses_is_a_cue_for_the_ambiguous_name(renamed: EntityLinker) -> None:
    assert renamed.tickers("Meta (FB) falls") == ("META",)


def test_a_companys_own_ticker_is_never_mapped_to_another_company() -> None:
    linker = EntityLinker([Company("A", ("Alpha",), symbols=("B",)), Company("B", ("Beta",))])
    assert linker.tickers("$B up", given=("B",)) == ("B",)


@pytest.mark.parametrize(("text", "given", "expected"), [
    ("Facebook shares fall after $FB misses", ("FB",), ("META",)),
    ("Google and $GOOG", ("GOOG",), ("GOOGL",)),
    ("$BRK.A hits $500,000", (), ("BRK.B",)),
])
def test_the_bundled_watchlist_counts_former_tickers_and_share_classes_once(
    bundled: EntityLinker, text: str, given: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert bundled.tickers(text, given=given) == expected


def test_a_ticker_list_is_counted_as_written_before_other_symbols_are_mapped() -> None:
    """Found by the regression review: five cashtags naming three companies passed a cap of four and linked."""
    from monitor.entities.watchlist import load_watchlist

    linked = EntityLinker(load_watchlist(), max_cashtags=4, cashtag_scope="any")
    assert "AAPL" not in linked.tickers("Stocks to watch: $FB $META $GOOG $GOOGL $AAPL")


def test_with_a_watchlist_payload_scope_only_watchlist_payload_tickers_count() -> None:
    """A wave of spam payload tickers grew the window store without bound (review): a desk that watches a universe
    can keep the keys to it; the default still counts every payload ticker (a vendor's tags)."""
    from monitor.entities.watchlist import load_watchlist

    companies = load_watchlist()
    scoped = EntityLinker(companies, payload_scope="watchlist")
    assert scoped.tickers("quarterly results", ["AAPL", "ZZJUNK", "FB"]) == ("AAPL", "META")
    assert EntityLinker(companies).tickers("quarterly results", ["AAPL", "ZZJUNK"]) == ("AAPL", "ZZJUNK")


def test_the_payload_scope_setting_reaches_the_linker_even_with_linking_off() -> None:
    from monitor.config import load_settings
    from monitor.engine.enrich import build_enricher

    settings = load_settings(source={"link_names": False, "link_cashtags": False, "payload_ticker_scope": "watchlist"},
                             windows={"novelty_window_s": 0})
    enricher = build_enricher(settings)
    assert enricher is not None and enricher.linker is not None
    assert enricher.linker.tickers("x", ["AAPL", "ZZJUNK"]) == ("AAPL",)


@pytest.mark.parametrize(("text", "expected"), [
    ("Coca\u2011Cola cuts jobs", ("KO",)),
    ("T\u2011Mobile outage", ("TMUS",)),
    ("Coca\u2013Cola shares rise", ("KO",)),
])
def test_a_name_written_with_a_unicode_hyphen_links(
    bundled: EntityLinker, text: str, expected: tuple[str, ...]
) -> None:
    assert bundled.tickers(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Bank Of America shares fall", ("BAC",)),
    ("Royal Bank Of Canada beats", ("RY",)),
    ("Paypal shares fall", ("PYPL",)),
    ("Blackrock buys stake", ("BLK",)),
    ("Abbvie drug approved", ("ABBV",)),
])
def test_names_link_in_headline_case_and_camel_case_names_with_one_capital(
    bundled: EntityLinker, text: str, expected: tuple[str, ...]
) -> None:
    assert bundled.tickers(text) == expected


def test_lower_case_spellings_of_names_still_link_nothing(bundled: EntityLinker) -> None:
    assert bundled.tickers("paypal and blackrock and bank of america") == ()


def test_a_guessed_spelling_of_an_ambiguous_name_still_needs_a_cue() -> None:
    linker = EntityLinker([Company("APRN", ("Blue Apron Holdings",), ambiguous=("Blue apron", "BlackBerry"))])
    assert linker.tickers("A Blue Apron for the chef; Blackberry jam") == ()
    assert linker.tickers("Blue Apron shares fall") == ("APRN",)
    assert linker.tickers("Blackberry stock jumps") == ("APRN",)


def test_a_guessed_spelling_yields_to_a_name_or_blocker_written_that_way() -> None:
    linker = EntityLinker([
        Company("ACB", ("Acme Bank",)), Company("ACX", ("Acme bank",)),
        Company("DD", ("DuPont",), ambiguous=("Dupont",)),
        Company("PYPL", ("PayPal",), blockers=("Paypal",)),
    ])
    assert linker.tickers("Acme Bank opens") == ("ACB",)
    assert linker.tickers("Pierre Dupont said") == ()
    assert linker.tickers("Paypal") == ()


@pytest.mark.parametrize("text", ["Dupont Circle protest grows", "Pierre Dupont said on Monday"])
def test_a_surname_spelled_like_a_camel_case_name_links_nothing(bundled: EntityLinker, text: str) -> None:
    assert bundled.tickers(text) == ()


@pytest.fixture
def cue_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each ``_has_cue_word`` call's start, the cue still judged as before."""
    calls: list[int] = []
    real = linker_module._has_cue_word

    def counted(words: linker_module._Words, start: int, end: int) -> bool:
        calls.append(start)
        return real(words, start, end)

    monkeypatch.setattr(linker_module, "_has_cue_word", counted)
    return calls


def test_a_hostile_run_of_one_ambiguous_name_without_a_cue_word_is_never_checked_for_one(
    linker: EntityLinker, cue_checks: list[int]
) -> None:
    """Found by review: 10,000 characters of "Visa Visa ..." looked for a cue 2,000 times (60-80 ms a message)."""
    assert linker.tickers(("Visa " * 2_000).strip()) == ()
    assert cue_checks == []


def test_a_hostile_run_near_a_cue_word_out_of_its_reach_is_not_checked_for_one_mention_by_mention(
    linker: EntityLinker, cue_checks: list[int]
) -> None:
    """Found by review: "a b c shares d e GE GE ..." put every mention within 60 characters of "shares" but none
    within three words after or two before it, so each one scanned the text around it (2.2 s a source batch)."""
    unit = "a b c shares d e " + "Visa " * 32
    text = (unit * (10_000 // len(unit)))[:10_000]
    assert linker.tickers(text) == ()
    assert len(cue_checks) <= text.count("shares")  # the mention 4 words before it (one more for a possessive)


def test_only_mentions_with_a_cue_word_near_them_are_checked_for_one(cue_checks: list[int]) -> None:
    names = [f"Name{letter}" for letter in string.ascii_uppercase[:8]]
    many = EntityLinker([Company(name.upper(), (), ambiguous=(name,)) for name in names])
    text = " ".join(names * 100) + " today. Shares of nobody fell."
    assert many.tickers(text) == ()
    assert 0 < len(cue_checks) <= 60 // len("NameA ") + 1  # the mentions within reach of "Shares" (another sentence)


def test_a_wire_story_naming_its_company_often_before_the_cue_still_links(linker: EntityLinker) -> None:
    """Found by the regression review: a cap of 16 cue looks dropped "Ford shares fell" after 17 bare mentions."""
    story = " ".join(f"Visa said {n} things on the recall." for n in range(18)) + " Visa shares fell 2.1%."
    assert linker.tickers(story) == ("V",)


def test_a_linked_ticker_is_not_checked_for_a_cue_again(linker: EntityLinker, cue_checks: list[int]) -> None:
    assert linker.tickers("Visa Inc beats. " + "Visa " * 1_000) == ("V",)
    assert len(cue_checks) == 1


def test_names_are_not_judged_once_the_result_is_full(cue_checks: list[int]) -> None:
    capped = EntityLinker(COMPANIES, max_tickers=1)
    assert capped.tickers("Apple beats. " + "Target shares " * 500) == ("AAPL",)
    assert capped.tickers("Target shares fall", given=("MSFT",)) == ("MSFT",)
    assert cue_checks == []


def test_a_mention_with_its_cue_after_many_bare_ones_still_links(linker: EntityLinker) -> None:
    bare = "Visa. " * 40
    assert linker.tickers(bare + "Visa earnings beat") == ("V",)
    assert linker.tickers(bare + "Visa. Visa earnings beat") == ("V",)
    assert linker.tickers(bare + "Visa. Visa (V) fell") == ("V",)
