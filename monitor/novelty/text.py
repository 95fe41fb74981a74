"""Text normalisation and shingling for near-duplicate detection (pure).

Normalising removes what differs between copies of one story but says nothing new: how the letters are
encoded (``monitor.entities.fold``: zero-width characters, soft hyphens, fullwidth forms, HTML entities,
curly apostrophes; a copy with a zero-width space in every word shares no word with its story), retweet
prefixes (``RT @user:``), @mentions, URLs, wire reissue prefixes (``UPDATE 2-``, ``REFILE-``,
``CORRECTED-``, ``RPT-``, ``BRIEF-``), a trailing outlet attribution (`` - Reuters``), case and
punctuation. Features are the unigrams and bigrams of what is left: unigrams keep a reworded
headline close, bigrams keep word order from making unrelated headlines look alike.
"""

from __future__ import annotations

import itertools
import re
import unicodedata

from monitor.entities.fold import fold

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


def normalise(text: str) -> str:
    """The text reduced to what identifies its story: lower case words separated by single spaces.

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
    if not text.isascii():  # case folding can undo NFKC (a decomposed accent): fold again, as NFKC_Casefold does
        text = unicodedata.normalize("NFKC", text)
    return " ".join(_NON_WORD.sub(" ", text.replace("_", " ")).split())


def _collapse(text: str) -> str:
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    """Words of the normalised text."""
    return normalise(text).split()


def features(words: list[str]) -> set[str]:
    """Unigrams and bigrams (``"a b"``): the set whose Jaccard similarity defines "the same story"."""
    out = set(words)
    out.update(f"{a} {b}" for a, b in itertools.pairwise(words))
    return out


RISING = frozenset({
    "up", "higher", "rise", "rises", "rising", "rose", "gain", "gains", "gained", "jump", "jumps", "jumped",
    "surge", "surges", "surged", "soar", "soars", "soared", "rally", "rallies", "rallied", "climb", "climbs",
    "climbed", "beat", "beats", "raise", "raises", "raised", "upgrade", "upgrades", "upgraded",
})
FALLING = frozenset({
    "down", "lower", "lowers", "lowered", "fall", "falls", "falling", "fell", "drop", "drops", "dropped", "slide",
    "slides", "slid", "plunge", "plunges", "plunged", "tumble", "tumbles", "tumbled", "sink", "sinks", "sank",
    "slump", "slumps", "slumped", "miss", "misses", "missed", "cut", "cuts", "loss", "losses", "downgrade",
    "downgrades", "downgraded",
})


def direction(words: list[str]) -> int:
    """+1 when the words move only one way up (``higher``, ``beats``, ``raises``), -1 only down (``lower``,
    ``misses``, ``cuts``), 0 for neither or both. A template filled in both directions ("shares are trading
    higher by 3% ... buyback" / "... lower by 3% ... lawsuit") shares most words, and folding the second into
    the first hid a negative story from the burst count (found by review)."""
    found = set(words)
    up, down = not found.isdisjoint(RISING), not found.isdisjoint(FALLING)
    return int(up) - int(down)
