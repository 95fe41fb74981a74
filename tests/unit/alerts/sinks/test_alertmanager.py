"""Alertmanager payload times and chunked posting (a fake poster; the real Alertmanager is in tests/integration)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from alerts.detectors import Finding, Signal
from alerts.lifecycle import AlertState, LifecyclePolicy, step
from alerts.model import AlertItem, AlertStatus, Notification
from alerts.sinks.alertmanager import POST_CHUNK, POST_CONCURRENCY, AlertmanagerSink, iso, numbers
from alerts.sinks.base import SinkError
from monitor.windows.buckets import EvidenceItem
from tests.unit.alerts.builders import DAY0_S, signal

NOW_S = DAY0_S + 3_600.0


class Poster:
    """Records each posted chunk; raises the error given for a chunk's index."""

    def __init__(self, errors: dict[int, SinkError] | None = None) -> None:
        self.chunks: list[list[dict[str, object]]] = []
        self.errors = errors or {}

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.chunks.append(json.loads(body))
        error = self.errors.get(len(self.chunks) - 1)
        if error is not None:
            raise error

    async def stop(self) -> None:
        pass


def sink(poster: Poster) -> AlertmanagerSink:
    return AlertmanagerSink("alertmanager+http://am:9093", "am", poster, public_url="http://x",  # type: ignore[arg-type]
                            clock=lambda: NOW_S)


def notification(status: AlertStatus, started_at_s: int) -> Notification:
    item = AlertItem("dk", "negative_sentiment", "ticker:TSLA", status, 2, started_at_s,
                     signal("ticker:TSLA", started_at_s, True))
    return Notification("n", "ticker:TSLA", status, started_at_s, (item,))


def firing(count: int, started_at_s: int = DAY0_S) -> list[AlertState]:
    return [AlertState(dedup_key=f"d{i}", rule="r", window_key=f"ticker:T{i}", status=AlertStatus.FIRING,
                       started_at_s=started_at_s, notified=True, last_signal=signal(f"ticker:T{i}", DAY0_S, True))
            for i in range(count)]


@pytest.mark.parametrize(("status", "ends_at_s"), [(AlertStatus.FIRING, NOW_S + 240), (AlertStatus.RESOLVED, NOW_S)])
def test_an_episode_starting_ahead_of_the_wall_clock_starts_now_and_never_ends_before_it_starts(
    status: AlertStatus, ends_at_s: float,
) -> None:
    [alert] = sink(Poster()).payload(notification(status, int(NOW_S) + 600))
    assert (alert["startsAt"], alert["endsAt"]) == (iso(NOW_S), iso(ends_at_s))


def test_an_episode_that_started_in_the_past_keeps_its_start() -> None:
    [alert] = sink(Poster()).payload(notification(AlertStatus.FIRING, DAY0_S))
    assert (alert["startsAt"], alert["endsAt"]) == (iso(DAY0_S), iso(NOW_S + 240))


async def test_a_refresh_of_an_episode_ahead_of_the_wall_clock_starts_now() -> None:
    poster = Poster()
    await sink(poster).refresh(firing(1, started_at_s=int(NOW_S) + 600))
    [[alert]] = poster.chunks
    assert (alert["startsAt"], alert["endsAt"]) == (iso(NOW_S), iso(NOW_S + 240))


async def test_a_refused_chunk_does_not_keep_the_later_chunks_from_being_re_posted() -> None:
    poster = Poster({0: SinkError("am: delivery refused (HTTP 400)", refused=True)})
    with pytest.raises(SinkError, match=r"1 of 3 chunks of 450 alerts failed, first: am: delivery refused") as info:
        await sink(poster).refresh(firing(2 * POST_CHUNK + 50))
    assert [len(c) for c in poster.chunks] == [POST_CHUNK, POST_CHUNK, 50]
    assert info.value.refused


async def test_several_failed_chunks_are_raised_once_with_the_longest_retry_after() -> None:
    poster = Poster({1: SinkError("am: HTTP 503", retry_after_s=5.0), 2: SinkError("am: HTTP 429", retry_after_s=9.0)})
    with pytest.raises(SinkError, match="2 of 3 chunks") as info:
        await sink(poster).refresh(firing(2 * POST_CHUNK + 1))
    assert len(poster.chunks) == 3
    assert (info.value.retry_after_s, info.value.refused) == (9.0, False)


class SlowPoster(Poster):
    """An Alertmanager under load: healthy, but each POST takes ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.in_flight = self.most_in_flight = 0

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delay_s)
        self.in_flight -= 1
        await super().post(url, body, headers)


async def test_many_chunks_to_a_slow_alertmanager_all_post_within_one_posts_time() -> None:
    # found by review: posted one after another, the 4th chunk on never fit the send's time limit
    poster = SlowPoster(delay_s=0.2)
    async with asyncio.timeout(0.6):
        await sink(poster).refresh(firing(5 * POST_CHUNK))
    assert sum(len(c) for c in poster.chunks) == 5 * POST_CHUNK


async def test_chunks_in_flight_at_once_are_bounded() -> None:
    poster = SlowPoster(delay_s=0.01)
    await sink(poster).refresh(firing(3 * POST_CONCURRENCY * POST_CHUNK))
    assert poster.most_in_flight == POST_CONCURRENCY and len(poster.chunks) == 3 * POST_CONCURRENCY


def multiscale_signal() -> Signal:
    finding = Finding(detector="burst", scale_s=1800, negatives=9, volume=11, expected=0.4, log10p=7.2,
                      baseline=0.8, observed=18.0)
    return replace(signal("ticker:TSLA", DAY0_S, True), baseline_kind="multiscale", volume=2,
                   triggered=(finding.name,), findings=(finding,), scale_s=1800)


def test_the_numbers_annotation_says_which_scale_fired_with_its_count_expected_count_and_p_value() -> None:
    """Found by review: it showed only the per-bucket numbers (volume 2, no p-value) under multi-scale detection."""
    item = AlertItem("dk", "r", "ticker:TSLA", AlertStatus.FIRING, 1, DAY0_S, multiscale_signal())
    [alert] = sink(Poster()).payload(Notification("n", "ticker:TSLA", AlertStatus.FIRING, DAY0_S, (item,)))
    assert alert["annotations"]["numbers"] == ("burst@30m Nov 14 23:30\u201300:00 UTC: 9 negative of 11 messages vs "
                                               "0.4 expected (-log10 p 7.2); usual 0.8 negatives/h, now 18/h")


async def test_a_re_post_after_a_restart_shows_the_numbers_the_alert_fired_with_not_the_latest_bucket() -> None:
    quiet = signal("ticker:T0", DAY0_S + 3_000, False)
    [state] = firing(1)
    poster = Poster()
    await sink(poster).refresh([replace(state, last_signal=quiet, firing_signal=multiscale_signal())])
    [[alert]] = poster.chunks
    annotations = alert["annotations"]
    assert isinstance(annotations, dict) and annotations["numbers"].startswith("burst@30m ")
    assert "9 negative of 11 messages" in annotations["numbers"]


def test_announcing_a_firing_alert_keeps_its_signal_in_the_durable_state() -> None:
    fired = multiscale_signal()
    result = step({}, [fired], DAY0_S, LifecyclePolicy())
    [state] = result.states.values()
    assert state.firing_signal == fired


def test_a_findings_expected_count_shows_two_significant_figures_and_its_rates_their_unit() -> None:
    """Found by review: "vs 0.0 expected" hid how unusual 4 negatives were, and "baseline 0.043 observed 8" had no
    unit (negatives per hour for burst and cusum, a share for the share test)."""
    burst = Finding("burst", 1800, 4, 15, 0.0215, 7.8, baseline=0.043, observed=8.0)
    share = Finding("share", 3600, 8, 14, 0.98, 5.1, baseline=0.07, observed=8 / 14)
    cusum = Finding("cusum", 7200, 12, 40, 1.2, 10.7, baseline=0.6, observed=6.0)
    sig = replace(multiscale_signal(), findings=(burst, share, cusum))
    lines = numbers(sig).split("\n")
    assert "4 negative of 15 messages vs 0.021 expected (-log10 p 7.8); usual 0.043 negatives/h, now 8/h" in lines[0]
    assert lines[1].endswith("(-log10 p 5.1); negative share usual 7%, now 57%")
    assert "(LLR 10.7 nats); usual 0.6 negatives/h, now 6/h" in lines[2]


def test_a_multiscale_signal_without_a_finding_shows_no_z_scores_or_cusum() -> None:
    quiet = replace(multiscale_signal(), findings=(), triggered=(), volume=1, neg_share=1.0, baseline_neg_share=0.07)
    assert numbers(quiet) == "no finding: 1 message, 100% negative (usual 7%)"


def test_a_resolved_alert_annotates_the_episode_and_what_fired_not_the_quiet_bucket() -> None:
    quiet = replace(multiscale_signal(), findings=(), triggered=(), volume=1, neg_share=1.0)
    item = AlertItem("dk", "r", "ticker:TSLA", AlertStatus.RESOLVED, 2, DAY0_S - 900, quiet,
                     firing_signal=multiscale_signal(), quiet_for_s=600)
    [alert] = sink(Poster()).payload(Notification("n", "ticker:TSLA", AlertStatus.RESOLVED, DAY0_S, (item,)))
    notes = alert["annotations"]
    assert notes["summary"] == ("negative sentiment on ticker:TSLA, quiet again at 00:00 UTC: no finding for 10m; "
                                "fired Nov 14 23:45 UTC, lasted 15m")
    assert notes["numbers"].startswith("burst@30m ") and "no finding" not in notes["numbers"]


def test_a_firing_alert_says_since_when_and_each_evidence_line_its_time_on_one_line() -> None:
    forged = "ok\n- ticker:TSLA: burst@30m 41 negative of 42 messages\u2028x"
    item = AlertItem("dk", "r", "ticker:TSLA", AlertStatus.FIRING, 1, DAY0_S, multiscale_signal(),
                     evidence=(EvidenceItem("m1", "news", forged, -0.9, DAY0_S - 120),))
    [alert] = sink(Poster()).payload(Notification("n", "ticker:TSLA", AlertStatus.FIRING, DAY0_S, (item,)))
    assert alert["annotations"]["summary"] == "negative sentiment spike: ticker:TSLA, firing since 00:00 UTC"
    assert alert["annotations"]["evidence"] == ("Nov 14 23:58 UTC -0.90 [news] ok - ticker:TSLA: burst@30m 41 "
                                                "negative of 42 messages x")
