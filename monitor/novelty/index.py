"""Bounded, deterministic index of recent stories: is this message a copy of one already counted?

A message *repeats* an earlier story when, within ``window_s`` of event time, an indexed story has
a Jaccard similarity of at least ``min_similarity`` (unigrams + bigrams of the
normalised text, see ``monitor.novelty.text``) and the two share a ticker (or both have none), so
one generic headline about two companies stays two stories. Only stories are indexed, not their
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
from dataclasses import dataclass

from monitor import metrics
from monitor.novelty.minhash import BANDS, NUM_PERM, Hashes, MinHasher, feature_hashes, jaccard
from monitor.novelty.text import direction, features, tokens

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
"""Texts of fewer words than this (and at least ``min_tokens``) fold only when near-identical."""
SHORT_MIN_SIMILARITY = 0.9
"""Similarity a short text needs to be a copy: at 0.6, independently written short comments about one ticker
("$XYZ is a total scam", "... scam imo", "... scam!!") folded into one story (found by review), so a pile-on
of opinions counted once. Copies (retweets, reposts) of a short text are near-identical and still fold."""


@dataclass(frozen=True, slots=True)
class _Story:
    story_id: str
    event_s: int
    tickers: frozenset[str]
    keys: tuple[int, ...]
    hashes: Hashes
    direction: int = 0
    """+1 / -1: its words move only up / only down (``monitor.novelty.text.direction``): no copy of the other way."""


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
    ) -> None:
        if window_s < 1 or max_entries < 1 or not 0 < min_similarity <= 1:
            raise ValueError("window_s and max_entries must be >= 1, min_similarity in (0, 1]")
        self.window_s = window_s
        self.max_entries = max_entries
        self.min_similarity = min_similarity
        self.min_tokens = min_tokens
        self._hasher = MinHasher(num_perm, bands)
        self._stories: list[_Story | None] = [None] * max_entries
        self._bands: dict[int, _Slots] = {}
        self._next = 0
        self._decisions: OrderedDict[str, str | None] = OrderedDict()

    def __len__(self) -> int:
        return sum(s is not None for s in self._stories)

    def decide(self, message_id: str, text: str, event_s: int, tickers: tuple[str, ...]) -> str | None:
        """The story ``message_id`` repeats (None: it is a story of its own). Same id, same answer."""
        if message_id in self._decisions:
            self._decisions.move_to_end(message_id)
            return self._decisions[message_id]
        decision = self._decide(message_id, text, event_s, frozenset(tickers))
        self._decisions[message_id] = decision
        if len(self._decisions) > self.max_entries:
            self._decisions.popitem(last=False)
        return decision

    def _decide(self, message_id: str, text: str, event_s: int, tickers: frozenset[str]) -> str | None:
        words = tokens(text)
        if len(words) < self.min_tokens:  # "sell $TSLA" from two people is two opinions, not a copy
            return None
        hashes = feature_hashes(features(words))
        moves = direction(words)
        keys = self._hasher.band_keys(self._hasher.signature(hashes))
        needed = self.min_similarity if len(words) >= SHORT_TEXT_TOKENS else max(self.min_similarity,
                                                                                SHORT_MIN_SIMILARITY)
        best: tuple[float, int, int] | None = None  # (-similarity, event time, slot): most similar, then oldest
        for slot in {s for k in keys if k in self._bands for s in _members(self._bands[k])}:
            story = self._stories[slot]
            if story is None or abs(event_s - story.event_s) > self.window_s:
                continue
            if story.tickers.isdisjoint(tickers) and (story.tickers or tickers):
                continue
            if story.direction * moves < 0:  # the same template, the other way: another story
                continue
            sim = jaccard(story.hashes, hashes)
            if sim >= needed and (best is None or (-sim, story.event_s, slot) < best):
                best = (-sim, story.event_s, slot)
        if best is not None:
            story = self._stories[best[2]]
            assert story is not None
            return None if story.story_id == message_id else story.story_id
        self._insert(_Story(message_id, event_s, tickers, tuple(keys), hashes, moves))
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
