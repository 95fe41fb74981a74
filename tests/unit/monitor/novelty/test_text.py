from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.novelty.text import (
    MAX_TOKENS,
    cashtag_set,
    direction,
    features,
    normalise,
    tokens,
    tokens_and_length,
)

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
    # found by review: movement words the lists lacked, so each pair's negative story folded into its positive one
    ("Boeing shares gain as investors cheer", 1), ("Boeing shares decline as investors weigh", -1),
    ("Boeing shares advance 3%", 1), ("Boeing shares slip 3%", -1), ("Boeing stock spikes 6%", 1),
    ("Boeing stock plummets 6%", -1), ("EPS tops consensus", 1), ("EPS trails consensus", -1),
    ("shares rebound 5%", 1), ("shares dip 5%", -1), ("stock tanks 4%", -1), ("Boeing sheds 4%", -1),
    ("the guidance lifts shares", 1), ("buyback boost for Boeing", 1), ("shares retreat", -1),
    ("weaker demand", -1),
])
def test_direction_is_one_way_or_none(text: str, expected: int) -> None:
    assert direction(tokens(text)) == expected


def test_a_run_of_chinese_or_japanese_becomes_overlapping_character_pairs() -> None:
    """Found by review: a clause without spaces was one "word", so a Chinese retweet had fewer words than
    ``min_tokens`` and never folded."""
    assert tokens("RT @x: 特斯拉股价暴跌8%\uff0c因上海工厂停产") == [
        "特斯", "斯拉", "拉股", "股价", "价暴", "暴跌", "8", "因上", "上海", "海工", "工厂", "厂停", "停产"]
    assert tokens("トヨタ株が急落 abc") == ["トヨ", "ヨタ", "タ株", "株が", "が急", "急落", "abc"]
    assert tokens("삼성전자 주가") == ["삼성", "성전", "전자", "주가"]
    assert tokens("Acme 涨 shares") == ["acme", "涨", "shares"]


def test_cyrillic_and_greek_look_alikes_inside_latin_words_become_latin() -> None:
    """Found by review: copies disguised with look-alike letters shared no word with their story."""
    disguised = "B\u043eeing wh\u0456stleblower s\u0430ys \u0440lanes \u03bfk, \u0421EO quits"
    assert normalise(disguised) == "boeing whistleblower says planes ok ceo quits"
    assert normalise("Сбербанк акции упали, Boeing тоже") == "сбербанк акции упали boeing тоже"  # Russian stays
    assert normalise("R\u0442 @desk: Boeing halts deliveries") == "boeing halts deliveries"  # then the prefix goes


def test_cashtags_are_kept_whether_or_not_they_link() -> None:
    assert cashtag_set("$ACME plunges; $acme and $BRK-B, not $5 or US$20") == {"ACME", "BRK.B"}
    assert cashtag_set("\uff04ZETA shares") == {"ZETA"}
    assert cashtag_set("no symbols here") == frozenset()


def test_thai_vowel_and_tone_marks_stay_inside_their_word() -> None:
    """Found by the regression review: combining marks are not word characters, so ``หุ้น`` (share) was split at
    its vowel and tone marks before the Thai run was cut into pairs."""
    assert tokens("ราคาหุ้นลดลง") == ["รา", "าค", "คา", "าห", "หุ", "ุ้", "้น", "นล", "ลด", "ดล", "ลง"]
    assert normalise("ราคาหุ้น ลดลง!") == "ราคาหุ้น ลดลง"


def test_accented_latin_words_normalise_as_before_whether_composed_or_not() -> None:
    assert normalise("Caf\u00e9 na\u00efve") == normalise("Cafe\u0301 nai\u0308ve") == "caf\u00e9 na\u00efve"
    assert normalise("Acme's CEO: \"we\u2019re fine\"") == "acme s ceo we re fine"


def test_a_dense_run_counts_as_half_its_characters_in_words() -> None:
    """Found by the regression review: counted in character pairs, short Chinese posts missed the short-text bar."""
    assert tokens_and_length("$TSLA 特斯拉就是个骗局") == (
        ["tsla", "特斯", "斯拉", "拉就", "就是", "是个", "个骗", "骗局"], 5)
    assert tokens_and_length("$TSLA 快卖了")[1] == 3
    assert tokens_and_length("Acme 涨 shares") == (["acme", "涨", "shares"], 3)
    assert tokens_and_length("Acme shares plunge") == (["acme", "shares", "plunge"], 3)


def test_a_long_text_keeps_its_first_and_last_tokens_but_counts_all_its_words() -> None:
    """Found by the regression review: 10 KB of Chinese made 9,999 pairs, 15.9 ms a decision on the event loop; then
    keeping only the head let two bodies with one long preamble and opposite endings fold."""
    han = "".join(chr(0x4E00 + (n * 7919) % 20_000) for n in range(10_000))
    words, length = tokens_and_length(han)
    pairs = [han[i : i + 2] for i in range(9_999)]
    half = MAX_TOKENS // 2
    assert words == pairs[:half] + pairs[-half:] and length == 5_000
    english = " ".join(f"w{n}" for n in range(3 * MAX_TOKENS))
    kept = [f"w{n}" for n in range(half)] + [f"w{n}" for n in range(3 * MAX_TOKENS - half, 3 * MAX_TOKENS)]
    assert tokens_and_length(english) == (kept, 3 * MAX_TOKENS)


def test_an_emoji_variation_selector_is_no_word() -> None:
    """Found by the regression review: U+FE0F (a combining mark) survived as a stray token, lifting a 7-word
    comment past the short-text bar, and a copy without it (many clients strip it) no longer folded."""
    assert tokens_and_length("Huge beat raised \U0001F680\ufe0f") == tokens_and_length("Huge beat raised \U0001F680")
    assert tokens("top 3\ufe0f\u20e3 picks") == ["top", "3", "picks"]
