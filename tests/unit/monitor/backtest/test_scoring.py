from __future__ import annotations

from pathlib import Path

import pytest

from monitor.backtest.runner import parse_sweep
from monitor.backtest.scoring import FiredAlert, Incident, load_incidents, score

DAY = 86_400
INCIDENTS = [Incident("ticker:BA", 10_000, 14_000), Incident("ticker:NVDA", 50_000, 53_000)]


def test_alert_on_incident_key_inside_its_window_is_a_hit_with_delay() -> None:
    s = score([FiredAlert(10_600, ("ticker:BA",))], INCIDENTS, span_s=DAY)
    assert (s.hits, s.false_alarms, s.detected) == (1, 0, 1)
    assert s.precision == 1.0
    assert s.recall == 0.5
    assert s.lead_times_s == (600, None)


def test_grouped_topic_ticker_key_counts_for_its_ticker_incident() -> None:
    s = score([FiredAlert(50_100, ("topic_ticker:earnings|NVDA",))], INCIDENTS, span_s=DAY)
    assert s.hits == 1 and s.lead_times_s == (None, 100)


def test_alert_on_another_key_or_outside_the_window_is_a_false_alarm() -> None:
    alerts = [FiredAlert(10_600, ("ticker:TSLA",)), FiredAlert(30_000, ("ticker:BA",))]
    s = score(alerts, INCIDENTS, span_s=2 * DAY, late_s=3600)
    assert s.false_alarms == 2
    assert s.false_alarms_per_day == 1.0
    assert s.precision == 0.0


def test_aggregate_key_during_an_incident_is_attributed_not_a_false_alarm() -> None:
    s = score([FiredAlert(11_000, ("all",)), FiredAlert(90_000, ("all",))], INCIDENTS, span_s=DAY)
    assert (s.attributed, s.false_alarms, s.hits) == (1, 1, 0)


def test_lead_time_percentiles_use_the_first_hit_per_incident() -> None:
    alerts = [FiredAlert(10_300, ("ticker:BA",)), FiredAlert(10_900, ("ticker:BA",)),
              FiredAlert(51_200, ("ticker:NVDA",))]
    s = score(alerts, INCIDENTS, span_s=DAY)
    assert s.lead_times_s == (300, 1200)
    assert s.lead_time_median_s == 750
    assert s.lead_time_p90_s == pytest.approx(300 + 0.9 * 900)


def test_incident_csv_accepts_iso_and_epoch_times(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text("key,start,end,description\nticker:BA,2026-11-03T14:00:00Z,1793718600,grounding\n")
    [inc] = load_incidents(path)
    assert (inc.key, inc.start_s, inc.end_s, inc.description) == ("ticker:BA", 1793714400, 1793718600, "grounding")


@pytest.mark.parametrize(("body", "message"), [
    ("key,start,end\nticker:BA,2026-11-03T14:00:00Z\n", r"events.csv:2: column 'end' is empty"),
    ("key,start,end\nticker:BA,yesterday,2026-11-03T15:00:00Z\n", r"events.csv:2: column 'start' = 'yesterday'"),
    ("key,start,end\nticker:BA,2026-11-03T15:00:00Z,2026-11-03T14:00:00Z\n", r"events.csv:2: end .* is before start"),
    ("key,start,end\nBA,2026-11-03T14:00:00Z,2026-11-03T15:00:00Z\n", r"did you mean ticker:BA\?"),
    ("key,start,end\n", None),
    ("key;start;end\n", r"needs a header with columns key,start,end"),
])
def test_a_bad_incident_row_names_the_file_line_column_and_fix(tmp_path: Path, body: str, message: str | None) -> None:
    """Found by review: a missing cell was an AttributeError, a bad time blamed published_at, and an end before
    its start or a bare ``BA`` key were accepted and scored recall 0."""
    path = tmp_path / "events.csv"
    path.write_text(body)
    if message is None:
        assert load_incidents(path) == []  # a header alone: no incident, not "missing columns"
        return
    with pytest.raises(ValueError, match=message):
        load_incidents(path)


def test_an_incident_file_saved_by_a_spreadsheet_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_bytes("key,start,end\nticker:BA,2026-11-03T14:00:00Z,1793718600\n".encode("utf-8-sig"))
    assert [i.key for i in load_incidents(path)] == ["ticker:BA"]


def test_sweep_is_the_cartesian_product_of_axes() -> None:
    grid = parse_sweep(["z_threshold=2,3", "min_volume=10,20,30"])
    assert len(grid) == 6
    assert {"z_threshold": 3.0, "min_volume": 30.0} in grid
    with pytest.raises(ValueError, match="NAME=V1"):
        parse_sweep(["z_threshold"])


def test_false_alarms_are_listed_by_position_for_the_report() -> None:
    alerts = [FiredAlert(10_600, ("ticker:BA",)), FiredAlert(30_000, ("ticker:TSLA",)), FiredAlert(31_000, ("all",))]
    s = score(alerts, INCIDENTS, span_s=2 * DAY)
    assert s.false_alarm_indices == (1, 2)
    assert s.alerts_per_day == 1.5


def test_delay_is_also_measured_from_the_first_negative_message() -> None:
    alerts = [FiredAlert(12_000, ("ticker:BA",)), FiredAlert(52_000, ("ticker:NVDA",))]
    s = score(alerts, INCIDENTS, span_s=DAY, first_negative_s=[11_000, None])
    assert s.lead_times_s == (2_000, 2_000)
    assert s.from_first_negative_s == (1_000, None)
    assert s.from_first_negative_median_s == 1_000.0


def test_sweeping_a_setting_the_configured_detection_does_not_read_is_refused() -> None:
    """Found by a walkthrough: burst_log10p on the default per-bucket detection gave identical rows and a 'best'."""
    from monitor.backtest.runner import READ_ONLY_BY, settings_with
    from monitor.config import AlertSettings, load_settings

    assert all(name in AlertSettings.model_fields for names in READ_ONLY_BY.values() for name in names)
    with pytest.raises(ValueError, match=r"only alerts\.detection = 'multiscale' reads it"):
        settings_with(load_settings(), {"burst_log10p": 4.0})
    assert settings_with(load_settings(), {"z_threshold": 4.0}).alerts.z_threshold == 4.0
    multiscale = load_settings(alerts={"detection": "multiscale"})
    assert settings_with(multiscale, {"burst_log10p": 4.0}).alerts.burst_log10p == 4.0
    with pytest.raises(ValueError, match=r"only alerts\.detection = 'bucket' reads it"):
        settings_with(multiscale, {"z_threshold": 4.0})
