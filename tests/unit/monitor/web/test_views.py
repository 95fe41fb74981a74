from __future__ import annotations

from dataclasses import dataclass, field, replace

from alerts.detectors import Finding
from alerts.lifecycle import AlertState
from alerts.model import AlertItem, AlertStatus, Notification, Silence
from monitor.web.console import _episode_range, _templates
from monitor.web.views import (
    alert_view,
    distinct_evidence,
    fmt_duration,
    fmt_time,
    history_rows,
    key_markers,
    signal_fields,
)
from monitor.windows.buckets import EvidenceItem
from tests.unit.alerts.builders import signal

T = 1_793_893_200  # 2026-11-05 15:40 UTC


@dataclass(frozen=True)
class Scale:
    scale_s: int
    p_value: float


@dataclass(frozen=True)
class FutureSignal:
    """A detector signal with fields the dashboard has never heard of."""

    key: str
    neg_share: float
    tail_probability: float
    expected_count: float
    bucket_end_s: int
    triggered: tuple[str, ...] = ("burst",)
    scales: tuple[Scale, ...] = field(default_factory=tuple)


def test_every_numeric_field_of_an_unknown_signal_is_shown_formatted_by_its_name() -> None:
    sig = FutureSignal("ticker:X", 0.533, 0.00012, 4.25, T, scales=(Scale(1800, 0.003), Scale(86_400, 0.2)))
    shown = {f.name: f.text for f in signal_fields(sig)}
    assert shown == {
        "neg_share": "53.3%", "tail_probability": "0.00012", "expected_count": "4.25",
        "bucket_end_s": "2026-11-05 15:40 UTC", "triggered": "burst",
        "scales[0].scale_s": "30m", "scales[0].p_value": "0.003",
        "scales[1].scale_s": "1d", "scales[1].p_value": "0.2",
    }


def test_todays_signal_shows_all_its_numbers() -> None:
    sig = signal("ticker:X", T, active=True)
    names = {f.name for f in signal_fields(sig) if f.numeric}
    assert {"z_ewma", "z_robust", "cusum", "baseline_neg_share", "volume", "score_drop"} <= names


def test_distinct_evidence_counts_a_syndicated_headline_once() -> None:
    def ev(i: int, text: str) -> EvidenceItem:
        return EvidenceItem(f"m{i}", "news", text, -0.8, T)

    items = [ev(1, "WFC hit with record fine"), ev(2, "wfc hit with  record fine!"), ev(3, "WFC sued"),
             ev(4, "WFC probe")]
    assert [e.message_id for e in distinct_evidence(items, 2)] == ["m1", "m3"]


def _state(status: AlertStatus, **kw: object) -> AlertState:
    return AlertState(dedup_key="d", rule="negative_sentiment", window_key="ticker:X", status=status,
                      last_signal=signal("ticker:X", T, active=True), **kw)  # type: ignore[arg-type]


def test_alert_view_is_silenced_by_a_ticker_silence_at_event_time() -> None:
    state = _state(AlertStatus.FIRING, started_at_s=T, episode_starts_s=(T,))
    silence = Silence("s1", "ticker:X", T - 1200, T + 3600)
    assert alert_view(state, T, [silence]).silenced
    assert not alert_view(state, T + 3600, [silence]).silenced  # ended in event time
    assert alert_view(state, T, []).since_s == T


def _notification(status: AlertStatus, at: int, key: str = "ticker:X") -> Notification:
    item = AlertItem(dedup_key="d", rule="r", window_key=key, status=status, sequence=1, started_at_s=T,
                     signal=signal(key, T, active=status is AlertStatus.FIRING))
    return Notification(id=f"n{at}", group_key=key, status=status, event_time_s=at, alerts=(item,))


def test_history_is_newest_first_and_filters_by_key() -> None:
    notes = [_notification(AlertStatus.FIRING, T), _notification(AlertStatus.RESOLVED, T + 600),
             _notification(AlertStatus.FIRING, T + 60, key="ticker:Y"), object()]
    assert [(r.at_s, r.status) for r in history_rows(notes, 10)] == [
        (T + 600, "resolved"), (T + 60, "firing"), (T, "firing")]
    assert [r.keys for r in history_rows(notes, 10, key="ticker:Y")] == [["ticker:Y"]]


def test_history_adds_episodes_from_the_alert_state_that_no_notification_covers() -> None:
    notes = [_notification(AlertStatus.FIRING, T)]  # this process saw the firing notice only
    state = _state(AlertStatus.RESOLVED, started_at_s=T, resolved_at_s=T + 1200)
    rows = history_rows(notes, 10, states=[state])
    assert [(r.at_s, r.status, r.keys) for r in rows] == [
        (T + 1200, "resolved", ["ticker:X"]), (T, "firing", ["ticker:X"])]
    assert rows[1].summary.startswith("ticker:X 70%")  # the notification's row, not a duplicate from state


def test_key_markers_come_from_notices_and_stored_episodes_of_that_key_only() -> None:
    notes = [_notification(AlertStatus.RESOLVED, T + 600), _notification(AlertStatus.FIRING, T, key="ticker:Y")]
    state = _state(AlertStatus.RESOLVED, episode_starts_s=(T,), resolved_at_s=T + 600)
    found = {(m.at_s, m.kind) for m in key_markers("ticker:X", [state], notes)}
    assert found == {(T, "firing"), (T + 600, "resolved")}


def test_times_say_utc_and_durations_are_human() -> None:
    assert fmt_time(T) == "2026-11-05 15:40 UTC"
    assert [fmt_duration(s) for s in (40, 720, 3900, 86_400, 2_260_800, -90)] == [
        "40s", "12m", "1h 05m", "1d", "26d 4h", "-1m"]


def test_a_firing_alert_shows_the_numbers_it_fired_on_not_its_latest_quiet_bucket() -> None:
    """Found by review: while a firing alert waited out its quiet buckets the card said ``detectors: -``."""
    fired = signal("ticker:X", T - 600, active=True, neg_share=0.8)
    state = replace(_state(AlertStatus.FIRING, started_at_s=T - 600, firing_signal=fired),
                    last_signal=signal("ticker:X", T, active=False, neg_share=0.1))
    view = alert_view(state, T, [])
    assert view.fired_on and view.neg_share == 0.8 and view.detectors != "-" and view.bucket_end_s == T - 600
    pending = alert_view(_state(AlertStatus.PENDING, firing_signal=fired), T, [])
    assert not pending.fired_on and pending.bucket_end_s == T, "not firing: the latest bucket"


def test_a_firing_cards_headlines_come_from_the_whole_window_it_fired_on() -> None:
    """Found by review: the card read evidence from the firing bucket on, so for a 2 h burst none of the headlines
    the notification quoted (from the 2 h before) was shown."""
    fired = replace(signal("ticker:X", T, active=True), scale_s=7_200)
    state = _state(AlertStatus.FIRING, started_at_s=T, firing_signal=fired)
    start_s, _ = _episode_range(state, 300) or (0, 0)
    assert start_s == T - 7_200


def test_a_multiscale_signal_hides_the_per_bucket_z_scores_and_sigmas_it_does_not_compute() -> None:
    """Found by review: the card showed z_ewma 7.8 (a -log10 p), baseline_sigma 0 and a CUSUM in nats as if z."""
    finding = Finding("burst", 1800, 4, 15, 0.021, 7.8, baseline=0.043, observed=8.0)
    sig = replace(signal("ticker:X", T, active=True), baseline_kind="multiscale", findings=(finding,),
                  triggered=(finding.name,), z_ewma=7.8, z_robust=7.8, baseline_sigma=0.0, cusum=10.7)
    shown = {f.name: f.text for f in signal_fields(sig)}
    assert not {"z_ewma", "z_robust", "baseline_sigma", "baseline_mad_sigma", "cusum"} & set(shown)
    assert shown["cusum_llr_nats"] == "10.7" and shown["findings[0].log10p"] == "7.8"


def test_a_resolved_rows_summary_is_what_fired_not_the_quiet_bucket_that_resolved_it() -> None:
    fired = signal("ticker:X", T - 600, active=True, neg_share=0.8)
    quiet = signal("ticker:X", T, active=False, neg_share=1.0)
    note = _notification(AlertStatus.RESOLVED, T)
    note = replace(note, alerts=(replace(note.alerts[0], signal=quiet, firing_signal=fired),))
    state = replace(_state(AlertStatus.RESOLVED, started_at_s=T - 600, resolved_at_s=T + 600, firing_signal=fired),
                    last_signal=quiet)
    rows = history_rows([note], 10, states=[state])
    assert [r.summary for r in rows if r.status == "resolved"] == ["ticker:X 80% vs 10%", "ticker:X 80% vs 10%"]


def test_after_a_reminder_a_firing_cards_headlines_still_start_when_the_episode_did() -> None:
    """Found by the regression review: a reminder replaces the firing signal, and the card then showed only the
    latest bucket's headlines."""
    reminder = signal("ticker:X", T, active=True)
    state = _state(AlertStatus.FIRING, started_at_s=T - 7_200, firing_signal=reminder)
    start_s, _ = _episode_range(state, 300) or (0, 0)
    assert start_s <= T - 7_200 - 300


def _multiscale_firing() -> AlertState:
    """Fired on the bucket ending 15:35 by a 2 h burst (13:35-15:35: 4 negatives of 7), now quiet."""
    end = T - 300
    burst = Finding("burst", 7_200, 4, 7, 0.5, 5.2, baseline=0.25, observed=2.0)
    fired = replace(signal("ticker:X", end, active=True), baseline_kind="multiscale", findings=(burst,),
                    triggered=(burst.name,), scale_s=7_200, volume=7, neg_share=4 / 7, mean_score=-0.4,
                    expected_negatives_per_h=0.3)
    return replace(_state(AlertStatus.FIRING, started_at_s=end, firing_signal=fired),
                   last_signal=replace(fired, bucket_start_s=end, bucket_end_s=T, findings=(), triggered=()))


def test_a_multiscale_card_labels_its_numbers_with_the_top_findings_window_not_the_bucket() -> None:
    """Found by review: the card said "volume 7 / negative share 57% / fired on bucket ending 15:35", but 7 and 57%
    were the 2 h window's; the 15:30 bucket held 3 messages."""
    view = alert_view(_multiscale_firing(), T, [])
    assert (view.window, view.window_span) == ("burst@2h", "2026-11-05 13:35\u201315:35 UTC")
    assert view.findings == ["burst@2h 13:35\u201315:35 UTC: 4 negative of 7 messages vs 0.5 expected "
                             "(-log10 p 5.2); usual 0.25 negatives/h, now 2/h"]
    html = _templates().get_template("_alert.html").render(a=view, show_evidence=False)
    assert "negative share \u00b7 burst@2h" in html and "volume \u00b7 burst@2h" in html
    assert "fired on window" in html and "fired on bucket ending" not in html
    assert "4 negative of 7 messages" in html


def test_a_multiscale_signals_fields_name_the_window_each_number_counts() -> None:
    """Found by review: ``expected_negatives_per_h`` and ``mean_score`` (the 30 min window's) sat next to
    ``volume 7`` and ``scale_s 2h`` as if they were the 2 h window's."""
    shown = {f.name: f.text for f in alert_view(_multiscale_firing(), T, []).fields}
    assert (shown["volume@2h"], shown["neg_share@2h"]) == ("7", "57.1%")
    assert {"expected_negatives_per_h@shortest_scale", "mean_score@shortest_scale",
            "score_drop@shortest_scale"} <= set(shown)
    assert not {"volume", "neg_share", "mean_score", "expected_negatives_per_h"} & set(shown)


def test_a_per_bucket_card_hides_the_multiscale_fields_it_leaves_empty() -> None:
    """Found by review: every per-bucket card (and /api/overview) said ``findings -``, ``scale_s 0s`` and
    ``expected_negatives_per_h 0``, read as "the detector expected no negatives"."""
    view = alert_view(_state(AlertStatus.FIRING, started_at_s=T), T, [])
    names = {f.name for f in view.fields}
    assert not {"findings", "scale_s", "expected_negatives_per_h"} & names
    assert {"z_ewma", "volume", "neg_share", "mean_score"} <= names
    assert (view.window, view.window_span, view.findings) == (None, None, [])
    html = _templates().get_template("_alert.html").render(a=view, show_evidence=False)
    assert "fired on bucket ending" not in html and "last bucket ends" in html and "\u00b7" not in html
