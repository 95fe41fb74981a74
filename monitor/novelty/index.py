"""Bounded, deterministic index of recent stories: is this message a copy of one already counted?

A message *repeats* an earlier story when, within ``window_s`` of event time, an indexed story has
a Jaccard similarity of at least ``min_similarity`` (unigrams + bigrams of the
normalised text, see ``monitor.novelty.text``; the short-text bar when either of the two is short) and the two
are about the same companies (``same_companies``), so one generic headline about two companies stays two
stories, and they do not go opposite ways (their direction words, or the classifier's sentiment: a negative
message never folds into a positive story, nor the reverse). Only stories are indexed, not their
repeats: a story's copies fold into it until the window has passed since the story itself.

Bounded memory: stories (their feature hashes and band keys) live in a ring of ``max_entries``
slots (the oldest story is forgotten first), so the horizon is ``min(window_s, max_entries stories)``:
at 100 new stories a second 20,000 slots hold 200 s, and a copy that arrives later counts again.
``finsent_novelty_evicted_in_window_total`` counts the stories forgotten while still inside their window
(rising: raise ``windows.novelty_max_entries``); the LSH band table holds ``bands`` keys per slot, each
naming at most ``MAX_SLOTS_PER_KEY`` stories (the newest: one generic headline about many tickers
must not grow a bucket without bound), and drops a slot's keys when the slot is reused.
Decisions are remembered per message id (bounded LRU of the same size), so a redelivered message
gets the decision it got the first time, and a message whose own story is in the index is never a
repeat of itself.

The index is per process and starts empty: after a restart, or across instances of a cluster that
split the partitions, a copy whose story was counted elsewhere counts once more (README "Novelty").
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass

from monitor import metrics
from monitor.entities.linker import MAX_CASHTAGS
from monitor.novelty.minhash import BANDS, NUM_PERM, Hashes, MinHasher, feature_hashes, jaccard
from monitor.novelty.text import cashtag_set, direction, features, tokens_and_length
from monitor.types import Sentiment

MAX_SLOTS_PER_KEY = 8

_Slots = int | tuple[int, ...]
"""Stories under one band key: a bare slot number for the common single story (saves memory)."""


def _with(slots: _Slots | None, slot: int) -> _Slots:
    if slots is None:
        return slot
    kept = (slots,) if isinstance(slots, int) else slots
    return (*kept[-(MAX_SLOTS_PER_KEY - 1) :], slot)


def _without(slots: _Slots, slot: int) -> _Slots | None:
    kept = tuple(s for s in ((slots,) if isinstance(slots, int) else slots) if s != slot)
    return None if not kept else kept[0] if len(kept) == 1 else kept


def _members(slots: _Slots) -> tuple[int, ...]:
    return (slots,) if isinstance(slots, int) else slots


SHORT_TEXT_TOKENS = 8
"""Texts of fewer words than this (and at least ``min_tokens``) fold only when near-identical; so does a text
into a story of fewer words: with the message's length alone, "$BA is a total scam" then "... scam. Get out now"
folded, and the same two the other way round did not (found by review)."""
SHORT_MIN_SIMILARITY = 0.9
"""Similarity a short text needs to be a copy: at 0.6, independently written short comments about one ticker
("$XYZ is a total scam", "... scam imo", "... scam!!") folded into one story (found by review), so a pile-on
of opinions counted once. Copies (retweets, reposts) of a short text are near-identical and still fold."""


BROAD_MARKET_TICKERS = frozenset({"SPY", "QQQ", "DIA", "IWM", "VOO", "VTI"})
"""Index funds a feed tags on any company's story ("... $SPY"): they say nothing about which company it is, so
``same_companies`` looks past them. Two companies' stories in one template both tagged SPY folded into one (found
by review: "Apple shares plunge 9% after CEO abruptly resigns ... $SPY", then Microsoft's)."""

_SIGN = {Sentiment.POSITIVE: 1, Sentiment.NEGATIVE: -1}


def same_companies(story: frozenset[str], message: frozenset[str]) -> bool:
    """Whether a message with these tickers may be a copy of a story with those (both sets already normalised).

    Broad market tickers aside, the two name the same companies, or one names all the other's and more (a copy
    that adds a cashtag, which then counts as a repeat under the added ticker's key too: the window store counts a
    message as a story or a repeat for all its keys at once). Sharing one company is not enough: "Dell shares
    plunge ... Nvidia supplier checks soft" and the same about HP share NVDA and are two stories. When neither
    names a company, the broad tickers decide as before: both none, or one in common."""
    if story == message:  # the common case: the same tickers (or none)
        return True
    ours, theirs = story - BROAD_MARKET_TICKERS, message - BROAD_MARKET_TICKERS
    if ours or theirs:
        return not ours.isdisjoint(theirs) and (ours <= theirs or theirs <= ours)
    return not story.isdisjoint(message) or not (story or message)


def other_cashtags(story: Collection[str], message: frozenset[str]) -> bool:
    """Both texts carry cashtags besides broad market ones, linked or not, and name no company in common:
    "$ACME shares plunge 40% after auditor resigns" and the same of $ZETA, both off the watchlist so with no
    ticker at all, folded into one story on the ``all`` and topic keys (found by review). Both sets already say
    each company once (``company_cashtags``); a text tagged only $SPY names no company, so never vetoes."""
    ours, theirs = frozenset(story) - BROAD_MARKET_TICKERS, message - BROAD_MARKET_TICKERS
    return bool(ours) and bool(theirs) and ours.isdisjoint(theirs)


def company_cashtags(text: str, company_ticker: Callable[[str], str]) -> frozenset[str]:
    """The text's cashtags, each company's other symbols as its ticker (``$FB`` is META, ``$GOOG`` GOOGL, by the
    linker's ``company_ticker``: compared as written, copies tagged with the other symbol were other stories,
    found by review). More than the linker's ``MAX_CASHTAGS`` make a ticker list, which names no company: none
    (a 10 KB list of 2,000 cashtags cost 137 KiB a story, kept for the whole window)."""
    tags = cashtag_set(text)
    return frozenset() if len(tags) > MAX_CASHTAGS else frozenset(map(company_ticker, tags))


def _as_written(symbol: str) -> str:
    return symbol


@dataclass(frozen=True, slots=True)
class _Story:
    story_id: str
    event_s: int
    tickers: frozenset[str]
    keys: tuple[int, ...]
    hashes: Hashes
    direction: int = 0
    """+1 / -1: its words move only up / only down (``monitor.novelty.text.direction``): no copy of the other way."""
    sentiment: int = 0
    """+1 / -1: classified positive / negative (0: neutral or not given): no copy classified the other way."""
    words: int = SHORT_TEXT_TOKENS
    """How many words it has: a short story takes only near-identical copies, whatever the copy's length."""
    cashtags: tuple[str, ...] = ()
    """Its text's cashtags, linked to a ticker or not (``company_cashtags``: at most ``MAX_CASHTAGS``; a tuple: a
    one-element frozenset costs 216 bytes a story)."""


class NoveltyIndex:
    """``decide`` returns the id of the story a message repeats, or None for a new story."""

    def __init__(
        self,
        *,
        window_s: int,
        max_entries: int,
        min_similarity: float = 0.6,
        min_tokens: int = 4,
        num_perm: int = NUM_PERM,
        bands: int = BANDS,
        company_ticker: Callable[[str], str] | None = None,
    ) -> None:
        """``company_ticker``: a symbol to its company's ticker (``EntityLinker.company_ticker``: FB is META);
        None: symbols as written (no linker)."""
        if window_s < 1 or max_entries < 1 or not 0 < min_similarity <= 1:
            raise ValueError("window_s and max_entries must be >= 1, min_similarity in (0, 1]")
        self.window_s = window_s
        self.max_entries = max_entries
        self.min_similarity = min_similarity
        self.min_tokens = min_tokens
        self.company_ticker = company_ticker or _as_written
        self._hasher = MinHasher(num_perm, bands)
        self._stories: list[_Story | None] = [None] * max_entries
        self._bands: dict[int, _Slots] = {}
        self._next = 0
        self._decisions: OrderedDict[str, str | None] = OrderedDict()

    def __len__(self) -> int:
        return sum(s is not None for s in self._stories)

    def decide(self, message_id: str, text: str, event_s: int, tickers: tuple[str, ...],
               sentiment: Sentiment | None = None) -> str | None:
        """The story ``message_id`` repeats (None: it is a story of its own). Same id, same answer.

        ``sentiment``: the classifier's label, when known (the pipeline decides after classification)."""
        if message_id in self._decisions:
            self._decisions.move_to_end(message_id)
            return self._decisions[message_id]
        sign = _SIGN.get(sentiment, 0) if sentiment is not None else 0
        decision = self._decide(message_id, text, event_s, frozenset(tickers), sign)
        self._decisions[message_id] = decision
        if len(self._decisions) > self.max_entries:
            self._decisions.popitem(last=False)
        return decision

    def _decide(self, message_id: str, text: str, event_s: int, tickers: frozenset[str], sign: int) -> str | None:
        words, length = tokens_and_length(text)
        if length < self.min_tokens:  # "sell $TSLA" from two people is two opinions, not a copy
            return None
        hashes = feature_hashes(features(words))
        moves = direction(words)
        tags = company_cashtags(text, self.company_ticker)
        keys = self._hasher.band_keys(self._hasher.signature(hashes))
        short = max(self.min_similarity, SHORT_MIN_SIMILARITY)
        best: tuple[float, int, int] | None = None  # (-similarity, event time, slot): most similar, then oldest
        for slot in {s for k in keys if k in self._bands for s in _members(self._bands[k])}:
            story = self._stories[slot]
            if story is None or abs(event_s - story.event_s) > self.window_s:
                continue
            if not same_companies(story.tickers, tickers) or other_cashtags(story.cashtags, tags):
                continue
            if story.direction * moves < 0 or story.sentiment * sign < 0:  # the other way: another story
                continue
            sim = jaccard(story.hashes, hashes)
            needed = self.min_similarity if min(length, story.words) >= SHORT_TEXT_TOKENS else short
            if sim >= needed and (best is None or (-sim, story.event_s, slot) < best):
                best = (-sim, story.event_s, slot)
        if best is not None:
            story = self._stories[best[2]]
            assert story is not None
            return None if story.story_id == message_id else story.story_id
        self._insert(_Story(message_id, event_s, tickers, tuple(keys), hashes, moves, sign, length, tuple(tags)))
        return None

    def _insert(self, story: _Story) -> None:
        slot = self._next
        self._next = (slot + 1) % self.max_entries
        old = self._stories[slot]
        if old is not None:
            if abs(story.event_s - old.event_s) <= self.window_s:  # its copies would still have folded
                metrics.NOVELTY_EVICTED_IN_WINDOW.inc()
            for key in old.keys:
                rest = _without(self._bands[key], slot) if key in self._bands else None
                if rest is None:
                    self._bands.pop(key, None)
                else:
                    self._bands[key] = rest
        self._stories[slot] = story
        for key in story.keys:
            self._bands[key] = _with(self._bands.get(key), slot)
