"""The backtest's run: what it records besides the windows."""

from __future__ import annotations

import asyncio

from monitor.backtest.runner import NegativesRecorder
from monitor.types import ClassifiedMessage, Prediction, Sentiment
from monitor.windows.base import Applied
from tests.fakes import msg

NEG = Prediction("earnings", 0.9, Sentiment.NEGATIVE, 0.6, -0.5, (0.6, 0.3, 0.1))
VERY_NEG = Prediction("earnings", 0.9, Sentiment.NEGATIVE, 0.99, -0.98, (0.99, 0.01, 0.0))
NEUTRAL = Prediction("earnings", 0.9, Sentiment.NEUTRAL, 0.8, 0.0, (0.1, 0.8, 0.1))


def test_first_negative_is_the_earliest_negative_message_inside_the_span_not_the_most_negative() -> None:
    """Found by review: it was read from the buckets' kept evidence (the most negative messages, not the
    earliest) and skipped the bucket the incident starts in."""
    store = NegativesRecorder(600, 86_400 * 30, 2, trace_keys=["ticker:ACME"])
    items = [ClassifiedMessage(msg("a", "before", 1_000, ("ACME",)), NEG),       # before the incident
             ClassifiedMessage(msg("b", "calm", 1_205, ("ACME",)), NEUTRAL),
             ClassifiedMessage(msg("c", "mild", 1_210, ("ACME",)), NEG),          # first negative inside
             *(ClassifiedMessage(msg(f"d{n}", "awful", 1_500 + n, ("ACME",)), VERY_NEG) for n in range(3)),
             ClassifiedMessage(msg("e", "other", 1_100, ("OTHER",)), NEG)]
    asyncio.run(store.apply(items))
    asyncio.run(store.apply(items[2:3]))  # a redelivery changes nothing
    assert store.first_negative_s("ticker:ACME", 1_200, 5_000) == 1_210
    assert store.first_negative_s("ticker:ACME", 1_600, 5_000) is None
    assert store.first_negative_s("ticker:OTHER", 0, 5_000) is None  # not traced


def test_an_id_reused_within_one_batch_is_noted_once_as_the_store_counts_it() -> None:
    store = NegativesRecorder(600, 86_400, 2, trace_keys=["ticker:ACME"])
    items = [ClassifiedMessage(msg("a", "bad", 1_300, ("ACME",)), NEG),
             ClassifiedMessage(msg("a", "bad", 1_300, ("ACME",)), NEG),             # redelivered
             ClassifiedMessage(msg("a", "corrected", 1_250, ("ACME",)), VERY_NEG)]  # another story, same id

    assert asyncio.run(store.apply(items)) == Applied(fresh=1, conflicts=(2,))
    assert store.negative_times_s["ticker:ACME"] == [1_300]


def test_a_folded_repeat_of_an_older_story_is_not_the_first_negative() -> None:
    # found by review: a retweet inside the incident of a story from before it shortened the delay shown
    store = NegativesRecorder(600, 86_400, 2, trace_keys=["ticker:ACME"])
    retweet = ClassifiedMessage(msg("rt", "RT: bad", 1_300, ("ACME",)), NEG, repeat_of="a")
    asyncio.run(store.apply([ClassifiedMessage(msg("a", "bad", 900, ("ACME",)), NEG), retweet]))
    assert store.first_negative_s("ticker:ACME", 1_200, 5_000) is None


def test_a_backtest_run_does_not_warn_about_settings_the_user_never_set() -> None:
    """Found by review: the run's settings were re-validated from a full dump, so every setting counted as given
    and `monitor backtest` on production.toml warned "settings_ignored_by_detection ... remove them" for twelve
    per-bucket settings that are in no file."""
    from monitor.backtest.runner import settings_with
    from monitor.config import DEFAULT_CONFIG, load_settings

    production = DEFAULT_CONFIG.with_name("production.toml")
    multiscale = load_settings(production, alerts={"burst_log10p": 4.0})
    assert multiscale.alerts.ignored_by_detection() == []
    assert settings_with(multiscale, {}).alerts.ignored_by_detection() == []
    swept = settings_with(multiscale, {"shift_log10p": 6.0})
    assert swept.alerts.ignored_by_detection() == []
    assert (swept.alerts.shift_log10p, swept.alerts.burst_log10p) == (6.0, 4.0)
    mixed = load_settings(production, alerts={"z_threshold": 4.0})
    assert settings_with(mixed, {}).alerts.ignored_by_detection() == ["z_threshold"]
