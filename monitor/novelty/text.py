"""Text normalisation and shingling for near-duplicate detection (pure).

Normalising removes what differs between copies of one story but says nothing new: how the letters are
encoded (``monitor.entities.fold``: zero-width characters, soft hyphens, fullwidth forms, HTML entities,
curly apostrophes; a copy with a zero-width space in every word shares no word with its story), retweet
prefixes (``RT @user:``), @mentions, URLs, wire reissue prefixes (``UPDATE 2-``, ``REFILE-``,
``CORRECTED-``, ``RPT-``, ``BRIEF-``), a trailing outlet attribution (`` - Reuters``), case,
punctuation, and Cyrillic or Greek look-alike letters inside a Latin word (``whistleblower`` with a Cyrillic
o, U+043E: such copies shared no disguised word, 5 copies counted as 4 stories: found by review). Features are the
unigrams and bigrams of what is left: unigrams keep a reworded headline close, bigrams keep word order from making
unrelated headlines look alike. Scripts written without spaces (Chinese, Japanese, Korean words, Thai) are cut into
overlapping character pairs first: a whole clause was one "word", so a Chinese retweet had fewer words than
``min_tokens`` and never folded.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from functools import cache

from monitor.entities.fold import fold
from monitor.entities.linker import cashtags

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_RETWEET = re.compile(r"^\s*(?:RT|MT)\b\s*:?\s*(?:@\w+\s*:?\s*)?", re.IGNORECASE)
_MENTION = re.compile(r"(?<!\w)@\w+")
_REISSUE = re.compile(
    r"^\s*(?:(?:CORRECTED|REFILE|RPT|UPDATE\s*\d*|WRAPUP\s*\d*|BRIEF|BUZZ|EXCLUSIVE|BREAKINGVIEWS|FACTBOX)"
    r"\s*[-:]\s*)+",
    re.IGNORECASE,
)
_OUTLET = re.compile(
    r"\s*[-\u2013\u2014|]\s*(?:Reuters|Bloomberg(?: News)?|CNBC|MarketWatch|Yahoo Finance|WSJ|Dow Jones|"
    r"Financial Times|FT|AP|Associated Press|Barron's|Forbes|Business Insider|Seeking Alpha|Benzinga)\s*$",
    re.IGNORECASE,
)
_NON_WORD = re.compile(r"[^\w]+")


_MARK_PLANES = (range(0x0300, 0x20000), range(0xE0000, 0xE1000))
"""Where combining marks are, in every Unicode version so far (planes 0, 1 and 14): walking only these builds the
class in ~20 ms, where every code point took 180 ms on the event loop."""


def _ignorable(code: int) -> bool:
    """Marks with no letter of their own: variation selectors (an emoji's U+FE0F, kept, made a stray token that
    lifted a 7-word comment past the short-text bar, found by the regression review), the combining grapheme
    joiner, Mongolian free variation selectors."""
    return (0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF or code == 0x034F
            or 0x180B <= code <= 0x180F)


@cache
def _non_word() -> re.Pattern[str]:
    """A run of characters that are neither word characters nor combining marks (Mn, Mc): Thai vowel and tone
    marks are not ``\\w``, and splitting at them cut ``หุ้น`` apart (found by review). NFKC has already composed
    Latin accents, so Latin words are as before. Built on the first non-ASCII text."""
    ranges: list[list[int]] = []
    for code in (code for plane in _MARK_PLANES for code in plane):
        if unicodedata.category(chr(code)) in {"Mn", "Mc"} and not _ignorable(code):
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])
    marks = "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)
    return re.compile(rf"[^\w{marks}]+")


def normalise(text: str) -> str:
    """The text reduced to what identifies its story: lower case words separated by single spaces.

    A word mixing Latin letters with Cyrillic or Greek look-alikes gets their Latin skeleton, repeated to a fixed
    point (an ``RT`` prefix with a Cyrillic te, once Latin, is then stripped too); only such texts pass twice."""
    out = _normalised(text)
    while (latin := _latin_skeleton(out)) != out:  # terminates: each pass leaves fewer non-ASCII letters
        out = _normalised(latin)
    return out


def _normalised(text: str) -> str:
    """``normalise`` without the look-alike letters: fold, strip what copies add, lower case, split into words.

    Whitespace runs are collapsed before the patterns run (and again where a removal leaves one): their
    ``\\s*`` on both sides of a dash backtrack quadratically over a long run (measured: 10,000 characters of
    spaces around a dash took 5.9 s, 3,333 mentions 0.4 s)."""
    text = _collapse(_URL.sub(" ", fold(text)))
    previous = None
    while previous != text:  # "RT @a: RT @b: UPDATE 1-..." peels layer by layer
        previous = text
        text = _RETWEET.sub("", text)
        text = _REISSUE.sub("", text)
    text = _OUTLET.sub("", _collapse(_MENTION.sub(" ", text))).casefold()
    if text.isascii():
        return " ".join(_NON_WORD.sub(" ", text.replace("_", " ")).split())
    text = unicodedata.normalize("NFKC", text)  # case folding can undo NFKC (a decomposed accent): as NFKC_Casefold
    return " ".join(_non_word().sub(" ", text.replace("_", " ")).split())


def _collapse(text: str) -> str:
    return " ".join(text.split())


LOOK_ALIKES = str.maketrans({
    # Cyrillic: a, ve, ie, shha, en, i, je, ka, palochka, em, o
    "\u0430": "a", "\u0432": "b", "\u0435": "e", "\u04bb": "h", "\u043d": "h", "\u0456": "i", "\u0458": "j",
    "\u043a": "k", "\u04cf": "l", "\u043c": "m", "\u043e": "o",
    # Cyrillic: er, qa, es, dze, te, u, straight u, we, ha, komi de
    "\u0440": "p", "\u051b": "q", "\u0441": "c", "\u0455": "s", "\u0442": "t", "\u0443": "y", "\u04af": "y",
    "\u051d": "w", "\u0445": "x", "\u0501": "d",
    # Greek: alpha, beta, gamma, epsilon, zeta, eta, iota, kappa, mu, nu, omicron, rho, tau, upsilon, chi
    "\u03b1": "a", "\u03b2": "b", "\u03b3": "y", "\u03b5": "e", "\u03b6": "z", "\u03b7": "h", "\u03b9": "i",
    "\u03ba": "k", "\u03bc": "m", "\u03bd": "v", "\u03bf": "o", "\u03c1": "p", "\u03c4": "t", "\u03c5": "u",
    "\u03c7": "x",
})
"""Cyrillic and Greek letters that render like a Latin one, to that letter: a small TR39-style skeleton table of
lower-case letters, as ``normalise`` sees them (ve, ka, em, en, te, beta, epsilon, zeta, eta, mu, tau and chi by
their capitals, which are the look-alikes)."""
_MIXED_WORD = re.compile(r"\b(?=[^\s]*[a-z])(?=[^\s]*[\u0370-\u03ff\u0400-\u052f])[^\s]+")
"""A word of the normalised text with both Latin letters and Greek or Cyrillic ones (all-Cyrillic words stay)."""


def _latin_skeleton(text: str) -> str:
    if text.isascii():
        return text
    return _MIXED_WORD.sub(lambda word: word.group().translate(LOOK_ALIKES), text)


DENSE_SCRIPT = re.compile(
    "[\u0e01-\u0e5b\u1100-\u11ff\u3005\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]+"
)
"""A run of Han, Hiragana, Katakana, Hangul or Thai: scripts whose words are not separated by spaces."""


MAX_TOKENS = 2_000
"""Tokens kept per text (the first and the last half of them): a 10 KB Chinese text made 9,999 character pairs and
took 15.9 ms a decision on the event loop (found by review); the bottom-k sketch keeps 256 features anyway, and
every headline, tweet or body under ~10 KB of English is whole. The head only let two bodies with one long
preamble and opposite endings ("shares fell" / "shares rose") fold (found by the regression review)."""


def tokens(text: str, limit: int = MAX_TOKENS) -> list[str]:
    """Words of the normalised text (the first ``limit``); a run of a script written without spaces becomes its
    overlapping character pairs ("特斯拉股价" -> "特斯" "斯拉" "拉股" "股价"), so copies and rewordings share
    features as words do."""
    return tokens_and_length(text, limit)[0]


def tokens_and_length(text: str, limit: int = MAX_TOKENS) -> tuple[list[str], int]:
    """``tokens`` and how many words the text has, measured before cutting into pairs: a run of n characters
    counts as about n / 2 words (rounded up), the length of a Chinese word. Counted in pairs, a 9-character
    Chinese opinion had 8 "words", so independently written short posts missed the short-text bar and folded
    (found by review)."""
    norm = normalise(text)
    if norm.isascii():
        words = norm.split()
        return _ends(words, limit), len(words)
    out: list[str] = []
    length = 0
    for word in norm.split():
        start = 0
        for run in DENSE_SCRIPT.finditer(word):
            if run.start() > start:
                out.append(word[start : run.start()])
                length += 1
            chars = run.group()
            length += (len(chars) + 1) // 2
            out.extend([chars] if len(chars) == 1 else [chars[i : i + 2] for i in range(len(chars) - 1)])
            start = run.end()
        if start < len(word):
            out.append(word[start:])
            length += 1
    return _ends(out, limit), length


def _ends(words: list[str], limit: int) -> list[str]:
    """The first and the last ``limit // 2`` words when there are more than ``limit``."""
    if len(words) <= limit:
        return words
    return words[: limit // 2] + words[len(words) - (limit - limit // 2):]


def cashtag_set(text: str) -> frozenset[str]:
    """Every cashtag of ``text`` (``monitor.entities.linker.cashtags``, normalised), linked or not: which companies
    a message names, where unlinked symbols ($ACME, off the watchlist) leave it with no ticker at all."""
    folded = fold(text)
    return frozenset(cashtags(folded)) if "$" in folded else frozenset()


def features(words: list[str]) -> set[str]:
    """Unigrams and bigrams (``"a b"``): the set whose Jaccard similarity defines "the same story"."""
    out = set(words)
    out.update(f"{a} {b}" for a, b in itertools.pairwise(words))
    return out


RISING = frozenset({
    "up", "higher", "rise", "rises", "rising", "rose", "gain", "gains", "gained", "gaining", "jump", "jumps",
    "jumped", "jumping", "surge", "surges", "surged", "surging", "soar", "soars", "soared", "soaring", "rally",
    "rallies", "rallied", "rallying", "climb", "climbs", "climbed", "climbing", "beat", "beats", "raise", "raises",
    "raised", "upgrade", "upgrades", "upgraded", "advance", "advances", "advanced", "advancing", "spike", "spikes",
    "spiked", "spiking", "rebound", "rebounds", "rebounded", "rebounding", "recover", "recovers", "recovered",
    "tops", "topped", "lift", "lifts", "lifted", "boost", "boosts", "boosted", "stronger", "outperforms",
})
FALLING = frozenset({
    "down", "lower", "lowers", "lowered", "fall", "falls", "falling", "fell", "drop", "drops", "dropped",
    "dropping", "slide", "slides", "slid", "sliding", "plunge", "plunges", "plunged", "plunging", "tumble",
    "tumbles", "tumbled", "tumbling", "sink", "sinks", "sank", "sinking", "slump", "slumps", "slumped", "slumping",
    "miss", "misses", "missed", "cut", "cuts", "loss", "losses", "downgrade", "downgrades", "downgraded",
    "decline", "declines", "declined", "declining", "slip", "slips", "slipped", "slipping", "dip", "dips",
    "dipped", "plummet", "plummets", "plummeted", "plummeting", "tank", "tanks", "tanked", "tanking", "shed",
    "sheds", "retreat", "retreats", "retreated", "weaker", "trails", "trailed", "lose", "loses", "losing",
    "slash", "slashes", "slashed", "crash", "crashes", "crashed", "underperforms",
})


def direction(words: list[str]) -> int:
    """+1 when the words move only one way up (``higher``, ``beats``, ``raises``), -1 only down (``lower``,
    ``misses``, ``cuts``), 0 for neither or both. A template filled in both directions ("shares are trading
    higher by 3% ... buyback" / "... lower by 3% ... lawsuit") shares most words, and folding the second into
    the first hid a negative story from the burst count (found by review; again with words the lists lacked,
    "gain" / "decline", "advance" / "slip", "spikes" / "plummets": the index also compares the classifier's
    sentiment since)."""
    found = set(words)
    up, down = not found.isdisjoint(RISING), not found.isdisjoint(FALLING)
    return int(up) - int(down)
