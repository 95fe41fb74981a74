from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.novelty.text import direction, features, normalise, tokens

STORY = "Acme shares plunge after fraud probe"


@pytest.mark.parametrize("copy", [
    "RT @jane_doe: Acme shares plunge after fraud probe",
    "RT @a: RT @b: Acme shares plunge after fraud probe",
    "UPDATE 1-Acme shares plunge after fraud probe",
    "REFILE-UPDATE 2-Acme shares plunge after fraud probe",
    "CORRECTED-Acme shares plunge after fraud probe",
    "Acme shares plunge after fraud probe https://t.co/abc123",
    "Acme shares plunge after fraud probe - Reuters",
    "ACME SHARES PLUNGE AFTER FRAUD PROBE!!!",
    "@trader Acme shares plunge, after fraud probe",
])
def test_copies_of_a_story_normalise_to_the_same_text(copy: str) -> None:
    assert normalise(copy) == normalise(STORY) == "acme shares plunge after fraud probe"


@pytest.mark.parametrize("copy", [
    "Acme sh\u200bares plu\u200bnge after fr\u200baud probe",
    "\uff21\uff43\uff4d\uff45 shares plunge after fraud probe",
    "Acme sha\u00adres plun\u00adge after fraud probe",
    "Acme shares plunge after fraud probe&#8203;",
])
def test_copies_written_with_other_code_points_normalise_like_the_story(copy: str) -> None:
    assert normalise(copy) == normalise(STORY)


def test_html_entities_and_curly_apostrophes_fold_before_punctuation_is_dropped() -> None:
    assert normalise("Macy\u2019s &amp; Acme") == normalise("Macy's & Acme") == "macy s acme"


def test_words_that_carry_meaning_are_kept() -> None:
    assert normalise("Acme shares RISE 5% after $ACME beats") == "acme shares rise 5 after acme beats"


@given(st.text(max_size=200))
def test_normalising_is_idempotent_and_yields_lowercase_words(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once
    assert once == " ".join(once.split())
    assert once == once.casefold()


@given(st.lists(st.text(alphabet="abcxyz", min_size=1, max_size=4), max_size=12))
def test_features_are_the_unigrams_and_bigrams(words: list[str]) -> None:
    feats = features(words)
    assert set(words) <= feats
    assert len(feats) <= 2 * len(words)
    assert all(f"{a} {b}" in feats for a, b in itertools.pairwise(words))


@given(st.lists(st.sampled_from(["UPDATE 2-", "RT @desk:", "@desk", "-", "Reuters", "Apple", "beats", "https://t.co/x",
                                 "\u2014", "|"]), max_size=30),
       st.lists(st.integers(min_value=1, max_value=300), min_size=30, max_size=30))
def test_how_much_whitespace_separates_the_words_changes_nothing(words: list[str], gaps: list[int]) -> None:
    """Whitespace runs are collapsed before any pattern runs (long runs made the patterns backtrack
    quadratically: 5.9 s for one 10,000-character message), so a run's length cannot change the result."""
    spaced = "".join(word + " " * gap for word, gap in zip(words, gaps, strict=False))
    assert normalise(spaced) == normalise(" ".join(words))


@pytest.mark.parametrize(("text", "expected"), [
    ("Acme shares jump after earnings beat", 1),
    ("Acme misses estimates, cuts guidance", -1),
    ("Acme rose early then fell on the outlook", 0),
    ("Acme holds its annual meeting", 0),
])
def test_direction_is_one_way_or_none(text: str, expected: int) -> None:
    assert direction(tokens(text)) == expected
