"""Entity linking, then novelty: which tickers a message counts under, and whether it repeats a story.

The pipeline links in its reader, before classification (the tickers are fixed before anything is written),
and decides novelty in its writer, in source order, once the model has accepted the batch: a story the model
rejects (dead-lettered) is never indexed, so its first copy becomes the story instead of every copy folding
into one that was never counted (found by review). A retried window write reuses the decisions, and a replay
of the same history makes the same ones (the novelty index remembers each message id's decision).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from monitor.config import ConfigError, Settings
from monitor.entities.linker import EntityLinker
from monitor.entities.watchlist import WatchlistError, load_watchlist
from monitor.novelty.index import NoveltyIndex
from monitor.types import RawMessage, Sentiment, SourceRecord


class Enricher:
    """Links tickers from the text and marks repeats of a story already counted."""

    def __init__(self, linker: EntityLinker | None, novelty: NoveltyIndex | None) -> None:
        self.linker = linker
        self.novelty = novelty

    def link(self, msg: RawMessage) -> RawMessage:
        if self.linker is None:
            return msg
        tickers = self.linker.tickers(msg.text, msg.tickers)
        return msg if tickers == msg.tickers else dataclasses.replace(msg, tickers=tickers)

    def repeat_of(self, msg: RawMessage, sentiment: Sentiment | None = None) -> str | None:
        """Id of the story ``msg`` repeats, None when it is a story of its own (or novelty is off). With its
        ``sentiment``, a negative message never repeats a positive story, nor the reverse."""
        if self.novelty is None:
            return None
        return self.novelty.decide(msg.id, msg.text, int(msg.event_time.timestamp()), msg.tickers, sentiment)

    def link_all(self, records: Sequence[SourceRecord]) -> list[SourceRecord]:
        """The records with linked tickers (the reader does this before classification)."""
        out: list[SourceRecord] = []
        for rec in records:
            msg = self.link(rec.message)
            out.append(rec if msg is rec.message else dataclasses.replace(rec, message=msg))
        return out

    def repeats(self, records: Sequence[SourceRecord],
                sentiments: Mapping[str, Sentiment] | None = None) -> dict[str, str]:
        """``{message id: story id}`` for the records that repeat a story, decided in their order
        (``sentiments``: the classifier's label per message id, where known)."""
        found: dict[str, str] = {}
        for rec in records:
            story = self.repeat_of(rec.message, sentiments.get(rec.message.id) if sentiments else None)
            if story is not None:
                found[rec.message.id] = story
        return found

    def process(self, records: Sequence[SourceRecord]) -> tuple[list[SourceRecord], dict[str, str]]:
        """The records with linked tickers, and ``{message id: story id}`` for those that repeat one."""
        linked = self.link_all(records)
        return linked, self.repeats(linked)


def build_enricher(settings: Settings) -> Enricher | None:
    """From ``[source]`` (watchlist, linking switches) and ``[windows]`` (novelty); None when all off."""
    src, win = settings.source, settings.windows
    linker = None
    scoped = src.payload_ticker_scope == "watchlist"
    if src.link_names or src.link_cashtags or scoped:
        try:
            wanted = src.link_names or src.cashtag_scope == "watchlist" or scoped
            companies = load_watchlist(src.watchlist_path) if wanted else []
        except WatchlistError as exc:
            raise ConfigError(str(exc)) from exc
        linker = EntityLinker(companies, link_names=src.link_names, link_cashtags=src.link_cashtags,
                              max_cashtags=src.max_cashtags_per_message, cashtag_scope=src.cashtag_scope,
                              payload_scope=src.payload_ticker_scope)
    novelty = None
    if win.novelty_window_s > 0:
        novelty = NoveltyIndex(window_s=win.novelty_window_s, max_entries=win.novelty_max_entries,
                               min_similarity=win.novelty_min_similarity, min_tokens=win.novelty_min_tokens,
                               company_ticker=linker.company_ticker if linker else None)
    if linker is None and novelty is None:
        return None
    return Enricher(linker, novelty)
